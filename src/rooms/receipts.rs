//! Read receipts (`m.read`, `m.read.private`), stored with the stream position of their last
//! change.

use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use super::Rooms;
use crate::{
    error::{Error, Result},
    storage::Json,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub event_id: OwnedEventId,
    pub ts: u64,
    pub pos: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

impl Rooms {
    pub async fn set_receipt(
        &self,
        room_id: &RoomId,
        user: &UserId,
        receipt_type: &str,
        event_id: &EventId,
        thread_id: Option<String>,
    ) -> Result<()> {
        self.require_joined(room_id, user)?;
        let pdu = self
            .get_pdu(event_id)?
            .ok_or_else(|| Error::not_found("Event not found"))?;
        if pdu.room_id != room_id {
            return Err(Error::not_found("Event not found in this room"));
        }
        let pos = {
            let mut c = self.stream.begin(&self.db).await;
            let pos = c.allocate()?;
            let rec = ReceiptRecord {
                event_id: event_id.to_owned(),
                ts: u64::from(MilliSecondsSinceUnixEpoch::now().get()),
                pos,
                thread_id,
            };
            let key = (
                room_id.to_string(),
                receipt_type.to_owned(),
                user.to_string(),
            );
            let mut edu = serde_json::json!({ "type": "m.receipt", "content": {
                event_id.as_str(): { receipt_type: { user.as_str(): { "ts": rec.ts } } }
            } });
            if let Some(t) = &rec.thread_id {
                edu["content"][event_id.as_str()][receipt_type][user.as_str()]["thread_id"] =
                    serde_json::json!(t);
            }
            if receipt_type == "m.read.private" {
                // Marks whose private receipt this is; removed before delivery.
                edu["private_of"] = serde_json::json!(user);
            }
            let federated = (receipt_type == "m.read" && user.server_name() == self.server_name())
                .then(|| {
                    let mut data = serde_json::json!({ "ts": rec.ts });
                    if let Some(t) = &rec.thread_id {
                        data["thread_id"] = serde_json::json!(t);
                    }
                    serde_json::json!({ "edu_type": "m.receipt", "content": { room_id.as_str(): {
                        "m.read": { user.as_str(): { "data": data, "event_ids": [event_id] } }
                    } } })
                });
            self.db.t.receipts.put(&key, &Json(rec))?;
            let _ = self.edus.send((room_id.to_owned(), edu));
            if let Some(e) = federated {
                self.outbox.send_edu(self, room_id, e)?;
            }
            pos
        };
        self.db.durable().await?;
        self.stream
            .publish_to(pos, &[crate::stream::Topic::Room(room_id.to_owned())]);
        Ok(())
    }

    /// Receipts in a room changed after `since`: (type, user, record).
    pub fn receipts_since(
        &self,
        room_id: &RoomId,
        since: u64,
    ) -> Result<Vec<(String, String, ReceiptRecord)>> {
        let prefix = crate::storage::prefix(room_id.as_str());
        let mut out = Vec::new();
        for item in self.db.t.receipts.scan_prefix(&prefix) {
            let ((_, rtype, user), rec) = item?;
            if rec.0.pos > since {
                out.push((rtype, user, rec.0));
            }
        }
        Ok(out)
    }

    /// Stream position of the event the user last marked read (public or private), 0 if none.
    pub fn read_pos(&self, room: &RoomId, user: &UserId) -> Result<u64> {
        let mut pos = 0;
        for rtype in ["m.read", "m.read.private"] {
            let key = (room.to_string(), rtype.to_owned(), user.to_string());
            if let Some(r) = self.db.t.receipts.get(&key)? {
                pos = pos.max(self.event_pos(&r.0.event_id)?.unwrap_or(0));
            }
        }
        Ok(pos)
    }
}
