//! End-to-end encryption across servers: device keys queried and one-time keys claimed from
//! the users' servers, device-list changes received (`m.device_list_update`; sending them is
//! in [`super::announce`]), and to-device messages carried as `m.direct_to_device` EDUs.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use ruma::{OwnedDeviceId, OwnedServerName, OwnedUserId, ServerName, UserId};
use serde_json::{json, Map, Value};

use crate::{
    error::Result,
    users::{cross_signing, keys},
    Haven,
};

/// How long a client's key query waits for other servers.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys of local users, as `/keys/query` answers them: device keys, master and self-signing
/// keys, and the user-signing key for `owner` only.
pub fn local_keys(
    h: &Haven,
    users: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    owner: Option<&UserId>,
) -> Result<Value> {
    let mut out = json!({
        "device_keys": {}, "master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {},
    });
    for (user, devices) in users {
        if user.server_name() != h.key.server_name {
            continue;
        }
        let mut map = Map::new();
        for (d, k) in keys::query(&h.db, user, devices)? {
            map.insert(d.to_string(), k);
        }
        out["device_keys"][user.as_str()] = Value::Object(map);
        for (kind, field) in [
            ("master", "master_keys"),
            ("self_signing", "self_signing_keys"),
            ("user_signing", "user_signing_keys"),
        ] {
            if kind == "user_signing" && owner != Some(user) {
                continue;
            }
            if let Some(k) = cross_signing::get(&h.db, user, kind)? {
                out[field][user.as_str()] = k;
            }
        }
    }
    Ok(out)
}

/// Device keys of remote users, asked of their servers at once; `failures` names the servers
/// that did not answer.
pub async fn remote_keys(
    h: &Haven,
    users: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
) -> (Vec<Value>, BTreeMap<String, Value>) {
    let per_user = users.iter().map(|(u, d)| (u, json!(d)));
    ask_servers(
        h,
        "/_matrix/federation/v1/user/keys/query",
        "device_keys",
        per_user,
    )
    .await
}

/// One-time keys of remote devices, claimed from their servers.
pub async fn claim_remote(
    h: &Haven,
    wanted: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
) -> (Vec<Value>, BTreeMap<String, Value>) {
    let per_user = wanted.iter().map(|(u, d)| (u, json!(d)));
    ask_servers(
        h,
        "/_matrix/federation/v1/user/keys/claim",
        "one_time_keys",
        per_user,
    )
    .await
}

/// Posts `{field: {user: value}}` to each remote user's server at once (within
/// [`REMOTE_TIMEOUT`]): the answers (each keeping only what concerns its server's users), and
/// the servers that failed with why.
async fn ask_servers<'a>(
    h: &Haven,
    path: &str,
    field: &str,
    per_user: impl Iterator<Item = (&'a OwnedUserId, Value)>,
) -> (Vec<Value>, BTreeMap<String, Value>) {
    let mut by_server: BTreeMap<OwnedServerName, Map<String, Value>> = BTreeMap::new();
    for (user, v) in per_user {
        if user.server_name() != h.key.server_name {
            by_server
                .entry(user.server_name().to_owned())
                .or_default()
                .insert(user.to_string(), v);
        }
    }
    let calls = by_server.into_iter().map(|(server, users)| async move {
        let body = json!({ field: users });
        let r =
            tokio::time::timeout(REMOTE_TIMEOUT, h.federation.post(h, &server, path, &body)).await;
        (server, r)
    });
    let mut answers = Vec::new();
    let mut failures = BTreeMap::new();
    for (server, r) in futures::future::join_all(calls).await {
        match r {
            Ok(Ok(mut v)) => {
                own_users_only(&mut v, &server);
                answers.push(v);
            }
            Ok(Err(e)) => {
                failures.insert(server.to_string(), json!({ "error": e.to_string() }));
            }
            Err(_) => {
                failures.insert(server.to_string(), json!({ "error": "timed out" }));
            }
        }
    }
    (answers, failures)
}

/// A server speaks for its own users only: in each `{user: ...}` section of its answer,
/// whatever it says of other servers' users is dropped.
fn own_users_only(answer: &mut Value, server: &ServerName) {
    for section in answer
        .as_object_mut()
        .into_iter()
        .flat_map(|o| o.values_mut())
    {
        if let Some(by_user) = section.as_object_mut() {
            by_user
                .retain(|u, _| UserId::parse(u.as_str()).is_ok_and(|u| u.server_name() == server));
        }
    }
}

/// A local user's devices, for another server (`/user/devices`).
pub fn local_devices(h: &Haven, user: &UserId) -> Result<Value> {
    let mut devices = Vec::new();
    let keys = keys::query(&h.db, user, &[])?;
    for (id, rec) in h.users.devices(user)? {
        let mut d = json!({ "device_id": id });
        if let Some(k) = keys.get(&id) {
            d["keys"] = k.clone();
        }
        if let Some(name) = rec.display_name {
            d["device_display_name"] = json!(name);
        }
        devices.push(d);
    }
    let mut out = json!({
        "user_id": user,
        "stream_id": keys::last_change(&h.db, user)?,
        "devices": devices,
    });
    for (kind, field) in [
        ("master", "master_key"),
        ("self_signing", "self_signing_key"),
    ] {
        if let Some(k) = cross_signing::get(&h.db, user, kind)? {
            out[field] = k;
        }
    }
    Ok(out)
}

/// `m.device_list_update` from `origin`: local clients that track the user learn the list
/// changed (and query the keys again).
pub async fn receive_device_list_update(
    h: &Haven,
    origin: &ServerName,
    content: &Value,
) -> Result<()> {
    let Some(user) = content["user_id"]
        .as_str()
        .and_then(|u| UserId::parse(u).ok())
    else {
        return Ok(());
    };
    if user.server_name() != origin {
        return Ok(());
    }
    keys::mark_changed(&h.db, &h.stream, &user).await
}

/// `m.direct_to_device` from `origin`: delivered to the local recipients' devices.
pub async fn receive_to_device(h: &Haven, origin: &ServerName, content: &Value) -> Result<()> {
    let Some(sender) = content["sender"]
        .as_str()
        .and_then(|u| UserId::parse(u).ok())
    else {
        return Ok(());
    };
    if sender.server_name() != origin {
        return Ok(());
    }
    let kind = content["type"].as_str().unwrap_or_default();
    let mut targets = Vec::new();
    for (user, devices) in content["messages"].as_object().into_iter().flatten() {
        let Ok(user) = UserId::parse(user) else {
            continue;
        };
        if user.server_name() != h.key.server_name {
            continue;
        }
        for (device, msg) in devices.as_object().into_iter().flatten() {
            if device == "*" {
                for (d, _) in h.users.devices(&user)? {
                    targets.push((user.clone(), d, msg.clone()));
                }
            } else {
                targets.push((
                    user.clone(),
                    OwnedDeviceId::from(device.as_str()),
                    msg.clone(),
                ));
            }
        }
    }
    crate::users::to_device::send(
        &h.db,
        &h.stream,
        &h.users.to_device_feed,
        &sender,
        kind,
        targets,
    )
    .await
}

/// Sends to-device messages for users of other servers, one EDU per server.
pub fn send_to_device(
    h: &Haven,
    sender: &UserId,
    kind: &str,
    messages: BTreeMap<OwnedUserId, Map<String, Value>>,
) -> Result<()> {
    let mut by_server: BTreeMap<OwnedServerName, Map<String, Value>> = BTreeMap::new();
    for (user, devices) in messages {
        by_server
            .entry(user.server_name().to_owned())
            .or_default()
            .insert(user.to_string(), Value::Object(devices));
    }
    for (server, messages) in by_server {
        let edu = json!({ "edu_type": "m.direct_to_device", "content": {
            "sender": sender, "type": kind,
            "message_id": uuid::Uuid::new_v4().simple().to_string(),
            "messages": messages,
        } });
        let dests = BTreeSet::from([server]);
        let woken = h
            .rooms
            .outbox
            .enqueue(&dests, &super::sender::Queued::Edu(edu))?;
        h.rooms.outbox.wake(woken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_cannot_answer_for_another_servers_users() {
        let mut answer = json!({
            "device_keys": { "@a:b.example": { "D": {} }, "@x:c.example": { "EVIL": {} } },
            "master_keys": { "@x:c.example": {} },
        });
        own_users_only(&mut answer, ruma::server_name!("b.example"));
        assert_eq!(
            answer,
            json!({ "device_keys": { "@a:b.example": { "D": {} } }, "master_keys": {} })
        );
    }
}
