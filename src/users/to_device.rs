//! Send-to-device messages: an inbox per device, ordered by stream position, delivered in
//! /sync until the client acknowledges them with its next `since` token. Messages for
//! appservice users' devices are also handed to the appservice (MSC4203).

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    error::Result,
    storage::{Json, Storage},
    stream::Stream,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToDeviceRecord {
    pub sender: OwnedUserId,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Value,
}

/// Feed of new to-device messages (recipient, device, event) for appservices.
pub type ToDeviceFeed = tokio::sync::broadcast::Sender<(OwnedUserId, OwnedDeviceId, Value)>;

/// Queues `content` for each (user, device) and makes it visible to their syncs.
pub async fn send(
    db: &Storage,
    stream: &Stream,
    feed: &ToDeviceFeed,
    sender: &UserId,
    kind: &str,
    targets: Vec<(OwnedUserId, OwnedDeviceId, Value)>,
) -> Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    let last = {
        let mut c = stream.begin(db).await;
        let mut last = 0;
        for (user, device, content) in &targets {
            let pos = c.allocate()?;
            let rec = ToDeviceRecord {
                sender: sender.to_owned(),
                kind: kind.to_owned(),
                content: content.clone(),
            };
            db.t.to_device
                .put(&(user.to_string(), device.to_string(), pos), &Json(rec))?;
            last = pos;
        }
        last
    };
    db.durable().await?;
    let users: std::collections::BTreeSet<_> = targets.iter().map(|(u, _, _)| u.clone()).collect();
    let topics: Vec<_> = users.into_iter().map(crate::stream::Topic::User).collect();
    stream.publish_to(last, &topics);
    for (user, device, content) in targets {
        let ev = json!({ "type": kind, "sender": sender, "content": content });
        let _ = feed.send((user, device, ev));
    }
    Ok(())
}

/// Drops what the device has acknowledged (everything up to `since`) and returns the rest
/// up to `upto`, oldest first.
pub fn take(
    db: &Storage,
    user: &UserId,
    device: &DeviceId,
    since: Option<u64>,
    upto: u64,
) -> Result<Vec<Value>> {
    let mut prefix = Vec::new();
    crate::storage::keys::KeyPart::encode_into(&user.as_str(), &mut prefix);
    crate::storage::keys::KeyPart::encode_into(&device.as_str(), &mut prefix);
    let mut out = Vec::new();
    let mut done = Vec::new();
    for item in db.t.to_device.scan_prefix(&prefix) {
        let (key, Json(rec)) = item?;
        let pos = key.2;
        if since.is_some_and(|s| pos <= s) {
            done.push(key);
        } else if pos <= upto {
            out.push(json!({ "type": rec.kind, "sender": rec.sender, "content": rec.content }));
        }
    }
    for k in done {
        db.t.to_device.remove(&k)?;
    }
    Ok(out)
}
