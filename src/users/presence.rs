//! Presence: online / unavailable / offline with a status message and when the user was last
//! active. A change takes a stream position, so syncs of people sharing a room with the user
//! report it; activity alone (each sync) only moves `last_active` without waking anyone.

use std::collections::BTreeSet;

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    error::Result,
    rooms::Rooms,
    storage::{Json, Storage},
    stream::Stream,
};

/// Reported as active this long after the last activity.
const ACTIVE_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Presence {
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ts: u64,
    pub pos: u64,
}

pub fn get(db: &Storage, user: &UserId) -> Result<Option<Presence>> {
    Ok(db.t.presence.get(&user.to_string())?.map(|j| j.0))
}

/// Sets the user's presence (and status message when given). A new state or message takes a
/// stream position; the same state only records the activity.
pub async fn set(
    db: &Storage,
    stream: &Stream,
    user: &UserId,
    presence: &str,
    status_msg: Option<Option<String>>,
) -> Result<()> {
    let old = get(db, user)?;
    let msg = match status_msg {
        Some(m) => m,
        None => old.as_ref().and_then(|o| o.status_msg.clone()),
    };
    let active = if presence == "offline" {
        old.as_ref().map_or(0, |o| o.last_active_ts)
    } else {
        crate::util::now_ms()
    };
    let changed = old
        .as_ref()
        .is_none_or(|o| o.presence != presence || o.status_msg != msg);
    if !changed {
        // Every sync lands here: record activity only when the stored time has gone stale
        // enough to matter (currently_active looks ACTIVE_MS back), not with a write each time.
        if let Some(mut o) = old {
            if active.saturating_sub(o.last_active_ts) >= ACTIVE_MS / 4 {
                o.last_active_ts = active;
                db.t.presence.put(&user.to_string(), &Json(o))?;
            }
        }
        return Ok(());
    }
    let pos = {
        let mut c = stream.begin(db).await;
        let pos = c.allocate()?;
        if let Some(o) = &old {
            db.t.presence_by_pos.remove(&o.pos)?;
        }
        db.t.presence.put(
            &user.to_string(),
            &Json(Presence {
                presence: presence.to_owned(),
                status_msg: msg,
                last_active_ts: active,
                pos,
            }),
        )?;
        db.t.presence_by_pos.put(&pos, &user.to_string())?;
        pos
    };
    db.durable().await?;
    stream.publish_to(
        pos,
        &crate::rooms::membership::user_and_room_topics(db, user)?,
    );
    Ok(())
}

/// The `m.presence` content as others see it.
pub fn content(p: &Presence) -> Value {
    let ago = crate::util::now_ms().saturating_sub(p.last_active_ts);
    let mut c = json!({
        "presence": p.presence,
        "currently_active": p.presence == "online" && ago < ACTIVE_MS,
    });
    if p.last_active_ts > 0 {
        c["last_active_ago"] = json!(ago);
    }
    if let Some(m) = &p.status_msg {
        c["status_msg"] = json!(m);
    }
    c
}

/// Whether `viewer` may see `user`'s presence: themselves, or someone sharing a room.
pub fn may_see(rooms: &Rooms, viewer: &UserId, user: &UserId) -> Result<bool> {
    if viewer == user {
        return Ok(true);
    }
    let mine: BTreeSet<_> = rooms.joined_rooms(viewer)?.into_iter().collect();
    Ok(rooms.joined_rooms(user)?.iter().any(|r| mine.contains(r)))
}

/// `m.presence` events for `viewer`: changes in `(since, upto]` (everyone known, initially)
/// of users sharing a room with them.
pub fn events(
    db: &Storage,
    rooms: &Rooms,
    viewer: &UserId,
    since: Option<u64>,
    upto: u64,
) -> Result<Vec<Value>> {
    use crate::storage::keys::Key;
    let from = since.unwrap_or(0).saturating_add(1).encode();
    let to = upto.saturating_add(1).encode();
    let mut users: Vec<OwnedUserId> = Vec::new();
    for item in db.t.presence_by_pos.range(&from, &to, false) {
        let (_, u) = item?;
        if let Ok(u) = UserId::parse(u) {
            users.push(u);
        }
    }
    let mut out = Vec::new();
    for u in users {
        if !may_see(rooms, viewer, &u)? {
            continue;
        }
        if let Some(p) = get(db, &u)? {
            out.push(json!({ "type": "m.presence", "sender": u, "content": content(&p) }));
        }
    }
    Ok(out)
}
