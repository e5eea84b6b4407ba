//! Reading a room's timeline in stream order and formatting events for a particular viewer.

use ruma::{DeviceId, EventId, MilliSecondsSinceUnixEpoch, RoomId};
use serde_json::{json, Map, Value};

use super::Rooms;
use crate::{
    error::{Error, Result},
    events::{client::client_event, PduRef},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Forward,
    Backward,
}

impl Rooms {
    /// Events with `after < pos <= upto`, at most `limit`, nearest to `after` when going
    /// forward and nearest to `upto` when going backward. Results are in the direction's order.
    pub fn timeline_range(
        &self,
        room_id: &RoomId,
        after: u64,
        upto: u64,
        limit: usize,
        dir: Dir,
    ) -> Result<Vec<(u64, PduRef)>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let from = (room_id.to_string(), after.saturating_add(1));
        let to = (room_id.to_string(), upto.saturating_add(1));
        use crate::storage::keys::Key;
        let (from, to) = (from.encode(), to.encode());
        let mut out = Vec::new();
        for item in self.db.t.timeline.range(&from, &to, dir == Dir::Backward) {
            if out.len() >= limit {
                break;
            }
            let ((_, pos), id) = item?;
            let id = EventId::parse(&id).map_err(Error::internal)?;
            if let Some(pdu) = self.get_pdu(&id)? {
                out.push((pos, pdu));
            }
        }
        Ok(out)
    }

    pub fn event_pos(&self, event_id: &EventId) -> Result<Option<u64>> {
        Ok(self.db.t.event_pos.get(&event_id.to_string())?)
    }

    /// The client format of `pdu` as seen by `device` (which gets its own transaction IDs).
    pub fn format_event(&self, pdu: &PduRef, device: Option<&DeviceId>) -> Result<Value> {
        let extras = self.extras(&pdu.event_id)?;
        let mut unsigned = Map::new();
        let now = u64::from(MilliSecondsSinceUnixEpoch::now().get());
        let ts = u64::from(pdu.origin_server_ts.get());
        unsigned.insert("age".into(), json!(now.saturating_sub(ts)));
        if let (Some((d, txn)), Some(viewer)) = (&extras.txn, device) {
            if d == viewer {
                unsigned.insert("transaction_id".into(), json!(txn));
            }
        }
        if let Some(prev) = &extras.replaces_state {
            unsigned.insert("replaces_state".into(), json!(prev));
            if let Some(p) = self.get_pdu(prev)? {
                unsigned.insert("prev_content".into(), p.content_value());
                unsigned.insert("prev_sender".into(), json!(p.sender));
            }
        }
        if let Some(r) = &extras.redacted_because {
            if let Some(p) = self.get_pdu(r)? {
                unsigned.insert("redacted_because".into(), client_event(&p, Map::new()));
            }
        }
        Ok(client_event(pdu, unsigned))
    }
}
