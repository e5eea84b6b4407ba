//! Global and per-room account data, each change stamped with a stream position.

use ruma::{RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::Result,
    storage::{Json, Storage},
    stream::Stream,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDataRecord {
    pub pos: u64,
    pub content: Value,
}

fn key(user: &UserId, room: Option<&RoomId>, kind: &str) -> (String, String, String) {
    (
        user.to_string(),
        room.map(|r| r.to_string()).unwrap_or_default(),
        kind.to_owned(),
    )
}

pub async fn set(
    db: &Storage,
    stream: &Stream,
    user: &UserId,
    room: Option<&RoomId>,
    kind: &str,
    content: Value,
) -> Result<()> {
    let pos = {
        let mut c = stream.begin(db).await;
        let pos = c.allocate()?;
        db.t.account_data.put(
            &key(user, room, kind),
            &Json(AccountDataRecord { pos, content }),
        )?;
        pos
    };
    if room.is_none() && kind == crate::push::PUSH_RULES {
        crate::push::forget(user);
    }
    db.durable().await?;
    stream.publish_to(pos, &[crate::stream::Topic::User(user.to_owned())]);
    Ok(())
}

pub fn get(
    db: &Storage,
    user: &UserId,
    room: Option<&RoomId>,
    kind: &str,
) -> Result<Option<Value>> {
    Ok(db
        .t
        .account_data
        .get(&key(user, room, kind))?
        .map(|j| j.0.content))
}

/// Account data of `user` changed after `since`: (room or "", type, content).
pub fn since(db: &Storage, user: &UserId, since: u64) -> Result<Vec<(String, String, Value)>> {
    let prefix = crate::storage::prefix(user.as_str());
    let mut out = Vec::new();
    for item in db.t.account_data.scan_prefix(&prefix) {
        let ((_, room, kind), Json(rec)) = item?;
        if rec.pos > since {
            out.push((room, kind, rec.content));
        }
    }
    Ok(out)
}

/// The users `user` ignores (`m.ignored_user_list`): their events are left out of what
/// `user` is sent.
pub fn ignored_users(db: &Storage, user: &UserId) -> Result<Vec<ruma::OwnedUserId>> {
    let Some(v) = get(db, user, None, "m.ignored_user_list")? else {
        return Ok(Vec::new());
    };
    Ok(v["ignored_users"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| ruma::UserId::parse(k).ok())
                .collect()
        })
        .unwrap_or_default())
}
