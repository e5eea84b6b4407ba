//! End-to-end encryption key storage (the server never sees plaintext): device keys, one-time
//! and fallback keys, and which users' device lists changed at which stream position.

use std::collections::BTreeMap;

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    storage::{keys::KeyPart, Json, Storage},
    stream::Stream,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FallbackKey {
    pub key_id: String,
    pub key: Value,
    pub used: bool,
}

fn prefix2(a: &str, b: &str) -> Vec<u8> {
    let mut p = Vec::new();
    a.encode_into(&mut p);
    b.encode_into(&mut p);
    p
}

/// Stores uploaded keys; returns the one-time key counts per algorithm.
pub async fn upload(
    db: &Storage,
    stream: &Stream,
    user: &UserId,
    device: &DeviceId,
    device_keys: Option<Value>,
    one_time: Vec<(String, Value)>,
    fallback: Vec<(String, Value)>,
) -> Result<BTreeMap<String, u64>> {
    if let Some(dk) = &device_keys {
        if dk.get("user_id").and_then(|v| v.as_str()) != Some(user.as_str())
            || dk.get("device_id").and_then(|v| v.as_str()) != Some(device.as_str())
        {
            return Err(Error::invalid_param(
                "device_keys must be for the requesting user and device",
            ));
        }
    }
    for (id, key) in &one_time {
        let k = (user.to_string(), device.to_string(), id.clone());
        if let Some(Json(existing)) = db.t.one_time_keys.get(&k)? {
            if existing != *key {
                return Err(Error::invalid_param(format!(
                    "one-time key {id} already exists with other content"
                )));
            }
        }
    }
    let changed = match &device_keys {
        Some(dk) => {
            db.t.device_keys
                .get(&(user.to_string(), device.to_string()))?
                .map(|j| j.0)
                .as_ref()
                != Some(dk)
        }
        None => false,
    };
    for (id, key) in one_time {
        db.t.one_time_keys
            .put(&(user.to_string(), device.to_string(), id), &Json(key))?;
    }
    for (id, key) in fallback {
        let alg = id.split(':').next().unwrap_or_default().to_owned();
        db.t.fallback_keys.put(
            &(user.to_string(), device.to_string(), alg),
            &Json(FallbackKey {
                key_id: id,
                key,
                used: false,
            }),
        )?;
    }
    if let Some(dk) = device_keys {
        db.t.device_keys
            .put(&(user.to_string(), device.to_string()), &Json(dk))?;
    }
    if changed {
        mark_changed(db, stream, user).await?;
    } else {
        db.durable().await?;
    }
    counts(db, user, device)
}

/// Records that `user`'s device list changed now, so others' syncs report it (waking the
/// long-polls of the user and of everyone in a room with them, on this server or another).
pub async fn mark_changed(db: &Storage, stream: &Stream, user: &UserId) -> Result<()> {
    let pos = {
        let mut c = stream.begin(db).await;
        let pos = c.allocate()?;
        db.t.key_changes.put(&user.to_string(), &pos)?;
        db.t.key_changes_by_pos.put(&pos, &user.to_string())?;
        pos
    };
    db.durable().await?;
    stream.publish_to(
        pos,
        &crate::rooms::membership::user_and_room_topics(db, user)?,
    );
    Ok(())
}

/// Position of `user`'s last device-list change (0 if none).
pub fn last_change(db: &Storage, user: &UserId) -> Result<u64> {
    Ok(db.t.key_changes.get(&user.to_string())?.unwrap_or(0))
}

/// Unclaimed one-time keys per algorithm.
pub fn counts(db: &Storage, user: &UserId, device: &DeviceId) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for item in
        db.t.one_time_keys
            .scan_prefix(&prefix2(user.as_str(), device.as_str()))
    {
        let ((_, _, id), _) = item?;
        *out.entry(id.split(':').next().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    Ok(out)
}

/// Algorithms with a fallback key that has not been used yet.
pub fn unused_fallback_types(
    db: &Storage,
    user: &UserId,
    device: &DeviceId,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for item in
        db.t.fallback_keys
            .scan_prefix(&prefix2(user.as_str(), device.as_str()))
    {
        let ((_, _, alg), Json(k)) = item?;
        if !k.used {
            out.push(alg);
        }
    }
    Ok(out)
}

/// Device keys of `user` (all devices when `devices` is empty).
pub fn query(
    db: &Storage,
    user: &UserId,
    devices: &[OwnedDeviceId],
) -> Result<BTreeMap<OwnedDeviceId, Value>> {
    let mut out = BTreeMap::new();
    for item in
        db.t.device_keys
            .scan_prefix(&crate::storage::prefix(user.as_str()))
    {
        let ((_, d), Json(mut keys)) = item?;
        let d = OwnedDeviceId::from(d);
        if devices.is_empty() || devices.contains(&d) {
            if let Some(Json(dev)) = db.t.devices.get(&(user.to_string(), d.to_string()))? {
                if let Some(name) = dev.display_name {
                    keys["unsigned"]["device_display_name"] = Value::String(name);
                }
            }
            out.insert(d, keys);
        }
    }
    Ok(out)
}

/// Claims one key of `algorithm` for a device: a one-time key (removed) or else the fallback
/// key (marked used). Returns `(key id, key)`.
pub fn claim(
    db: &Storage,
    user: &UserId,
    device: &DeviceId,
    algorithm: &str,
) -> Result<Option<(String, Value)>> {
    let prefix = prefix2(user.as_str(), device.as_str());
    for item in db.t.one_time_keys.scan_prefix(&prefix) {
        let ((u, d, id), Json(key)) = item?;
        if id.split(':').next() == Some(algorithm) {
            db.t.one_time_keys.remove(&(u, d, id.clone()))?;
            return Ok(Some((id, key)));
        }
    }
    let fk = (user.to_string(), device.to_string(), algorithm.to_owned());
    if let Some(Json(mut f)) = db.t.fallback_keys.get(&fk)? {
        f.used = true;
        db.t.fallback_keys.put(&fk, &Json(f.clone()))?;
        return Ok(Some((f.key_id, f.key)));
    }
    Ok(None)
}

/// Removes every key of a deleted device.
pub fn delete_device(db: &Storage, user: &UserId, device: &DeviceId) -> Result<()> {
    db.t.device_keys
        .remove(&(user.to_string(), device.to_string()))?;
    let prefix = prefix2(user.as_str(), device.as_str());
    let otks: Vec<_> =
        db.t.one_time_keys
            .scan_prefix(&prefix)
            .map(|r| r.map(|(k, _)| k))
            .collect::<std::result::Result<_, _>>()?;
    for k in otks {
        db.t.one_time_keys.remove(&k)?;
    }
    let fbs: Vec<_> =
        db.t.fallback_keys
            .scan_prefix(&prefix)
            .map(|r| r.map(|(k, _)| k))
            .collect::<std::result::Result<_, _>>()?;
    for k in fbs {
        db.t.fallback_keys.remove(&k)?;
    }
    Ok(())
}

/// Users whose device lists changed in `(since, upto]` (a range scan of the change log).
pub fn changed_between(
    db: &Storage,
    since: u64,
    upto: u64,
) -> Result<std::collections::BTreeSet<OwnedUserId>> {
    let mut out = std::collections::BTreeSet::new();
    for item in db.t.key_changes_by_pos.range(
        &(since + 1).to_be_bytes(),
        &upto.saturating_add(1).to_be_bytes(),
        false,
    ) {
        let (_, user) = item?;
        if let Ok(u) = UserId::parse(user) {
            out.insert(u);
        }
    }
    Ok(out)
}

/// Users sharing a room with `viewer` whose device lists changed in `(since, upto]` (or who
/// joined one of the viewer's rooms then), and users who stopped sharing any room with them.
pub fn changes(
    rooms: &crate::rooms::Rooms,
    db: &Storage,
    viewer: &UserId,
    since: u64,
    upto: u64,
) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    use std::collections::BTreeSet;
    let mine: BTreeSet<_> = rooms.joined_rooms(viewer)?.into_iter().collect();
    let shares = |user: &UserId| -> Result<bool> {
        Ok(rooms.joined_rooms(user)?.iter().any(|r| mine.contains(r)))
    };
    let mut changed = BTreeSet::new();
    for user in changed_between(db, since, upto)? {
        // Their own changes too, rooms or not (another of their devices, new cross-signing
        // keys), as Synapse reports them.
        if user == viewer || shares(&user)? {
            changed.insert(user);
        }
    }
    let mut left = BTreeSet::new();
    for room in &mine {
        let Some(meta) = rooms.meta(room)? else {
            continue;
        };
        if meta.last_pos <= since {
            continue;
        }
        for (_, e) in rooms.timeline_entries(room, since, upto, usize::MAX)? {
            if e.kind != "m.room.member" {
                continue;
            }
            let Some(pdu) =
                rooms.get_pdu(&ruma::EventId::parse(&e.event_id).map_err(Error::internal)?)?
            else {
                continue;
            };
            let Some(target) = pdu.state_key.as_deref().and_then(|s| UserId::parse(s).ok()) else {
                continue;
            };
            if target == viewer {
                continue;
            }
            match pdu.content_str("membership").as_deref() {
                Some("join") => {
                    changed.insert(target);
                }
                Some("leave") | Some("ban") if !shares(&target)? => {
                    left.insert(target);
                }
                _ => {}
            }
        }
    }
    let left: Vec<_> = left.into_iter().filter(|u| !changed.contains(u)).collect();
    Ok((changed.into_iter().collect(), left))
}
