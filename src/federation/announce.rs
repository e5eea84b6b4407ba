//! Telling other servers about local users: device-list changes (`m.device_list_update`) and
//! presence (`m.presence`) go to every server sharing a room with the user. Each follows its
//! own change log from a stored watermark, so nothing is missed across restarts.

use std::{collections::BTreeSet, sync::Arc};

use ruma::{OwnedServerName, OwnedUserId, UserId};
use serde_json::{json, Value};

use crate::{
    error::Result,
    storage::Table,
    users::{keys, presence},
    Haven,
};

/// How far the watermark may run ahead of its stored copy when nothing was announced (on a
/// restart the logs are read again from the stored copy; announcing twice is harmless).
const STORE_EVERY: u64 = 10_000;

/// One change log followed: where it is read up to, in memory and as stored.
struct Follower {
    key: &'static str,
    kind: Kind,
    mark: u64,
    stored: u64,
}

/// Starts following both change logs; they are read whenever the stream moves (the stored
/// watermarks are written only when something was announced, not with every event).
pub fn start(h: Arc<Haven>) {
    tokio::spawn(async move {
        let mut followers = Vec::new();
        for (key, kind) in [
            ("federation_device_list_pos", Kind::DeviceList),
            ("federation_presence_pos", Kind::Presence),
        ] {
            let stored = h.db.meta_u64(key).unwrap_or(0);
            followers.push(Follower {
                key,
                kind,
                mark: stored,
                stored,
            });
        }
        let mut rx = h.stream.subscribe();
        loop {
            for f in &mut followers {
                if let Err(e) = announce(&h, f) {
                    tracing::warn!(error = %e, kind = ?f.kind, "changes not announced to other servers");
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    DeviceList,
    Presence,
}

/// Local users who changed in the log between the watermark and `upto`.
fn changed_since(
    log: &Table<u64, String>,
    from: u64,
    upto: u64,
    ours: &ruma::ServerName,
) -> Result<Vec<(u64, OwnedUserId)>> {
    let mut out = Vec::new();
    for item in log.range(
        &(from + 1).to_be_bytes(),
        &upto.saturating_add(1).to_be_bytes(),
        false,
    ) {
        let (pos, user) = item?;
        if let Ok(u) = UserId::parse(&user) {
            if u.server_name() == ours {
                out.push((pos, u));
            }
        }
    }
    Ok(out)
}

/// Servers other than this one that share a room with `user`.
fn servers_sharing(h: &Haven, user: &UserId) -> Result<BTreeSet<OwnedServerName>> {
    let mut out = BTreeSet::new();
    for room in h.rooms.joined_rooms(user)? {
        out.extend(h.rooms.outbox.room_servers(&h.rooms, &room, None)?);
    }
    Ok(out)
}

fn announce(h: &Haven, f: &mut Follower) -> Result<()> {
    let upto = h.stream.current();
    if upto <= f.mark {
        return Ok(());
    }
    let log = match f.kind {
        Kind::DeviceList => &h.db.t.key_changes_by_pos,
        Kind::Presence => &h.db.t.presence_by_pos,
    };
    let mut announced = false;
    for (pos, user) in changed_since(log, f.mark, upto, &h.key.server_name)? {
        let dests = servers_sharing(h, &user)?;
        if dests.is_empty() {
            continue;
        }
        let edus = match f.kind {
            Kind::DeviceList => device_list_edus(h, &user, pos)?,
            Kind::Presence => presence_edu(h, &user)?.into_iter().collect(),
        };
        for edu in edus {
            let woken = h
                .rooms
                .outbox
                .enqueue(&dests, &super::sender::Queued::Edu(edu))?;
            h.rooms.outbox.wake(woken);
            announced = true;
        }
    }
    f.mark = upto;
    if announced || f.mark - f.stored >= STORE_EVERY {
        h.db.put_meta_u64(f.key, f.mark)?;
        f.stored = f.mark;
    }
    Ok(())
}

/// One `m.device_list_update` per device (deleted ones marked); other servers only need to
/// learn that the list changed, and query it again.
fn device_list_edus(h: &Haven, user: &UserId, pos: u64) -> Result<Vec<Value>> {
    let devices = h.users.devices(user)?;
    let keys = keys::query(&h.db, user, &[])?;
    let ids: Vec<String> = if devices.is_empty() {
        vec![String::new()]
    } else {
        devices.iter().map(|(d, _)| d.to_string()).collect()
    };
    Ok(ids
        .into_iter()
        .map(|d| {
            let mut content = json!({
                "user_id": user, "device_id": d, "stream_id": pos, "prev_id": [],
            });
            match keys.get(d.as_str()) {
                Some(k) => content["keys"] = k.clone(),
                None => content["deleted"] = json!(true),
            }
            json!({ "edu_type": "m.device_list_update", "content": content })
        })
        .collect())
}

fn presence_edu(h: &Haven, user: &UserId) -> Result<Option<Value>> {
    let Some(p) = presence::get(&h.db, user)? else {
        return Ok(None);
    };
    let mut c = presence::content(&p);
    c["user_id"] = json!(user);
    Ok(Some(
        json!({ "edu_type": "m.presence", "content": { "push": [c] } }),
    ))
}

/// `m.presence` from `origin`: its users' presence, as local clients sharing a room see it.
pub async fn receive_presence(h: &Haven, origin: &ruma::ServerName, content: &Value) -> Result<()> {
    for p in content["push"].as_array().into_iter().flatten() {
        let Some(user) = p["user_id"].as_str().and_then(|u| UserId::parse(u).ok()) else {
            continue;
        };
        let Some(state) = p["presence"].as_str() else {
            continue;
        };
        if user.server_name() != origin || !matches!(state, "online" | "unavailable" | "offline") {
            continue;
        }
        let msg = p["status_msg"].as_str().map(str::to_owned);
        presence::set(&h.db, &h.stream, &user, state, Some(msg)).await?;
    }
    Ok(())
}
