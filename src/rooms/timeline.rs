//! Reading a room's timeline in stream order and formatting events for a particular viewer.

use ruma::{DeviceId, EventId, MilliSecondsSinceUnixEpoch, RoomId, UserId};
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
            let ((_, pos), entry) = item?;
            let id = EventId::parse(&entry.event_id).map_err(Error::internal)?;
            if let Some(pdu) = self.get_pdu(&id)? {
                out.push((pos, pdu));
            }
        }
        Ok(out)
    }

    /// Timeline entries (without loading events) with `after < pos <= upto`, ascending.
    pub fn timeline_entries(
        &self,
        room_id: &RoomId,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, TimelineEntry)>> {
        use crate::storage::keys::Key;
        if upto <= after {
            return Ok(Vec::new());
        }
        let from = (room_id.to_string(), after.saturating_add(1)).encode();
        let to = (room_id.to_string(), upto.saturating_add(1)).encode();
        let mut out = Vec::new();
        for item in self.db.t.timeline.range(&from, &to, false).take(limit) {
            let ((_, pos), entry) = item?;
            out.push((pos, entry));
        }
        Ok(out)
    }

    pub fn event_pos(&self, event_id: &EventId) -> Result<Option<u64>> {
        Ok(self.db.t.event_pos.get(&event_id.to_string())?)
    }

    /// The client format of `pdu` as `viewer` sees it: their own transaction IDs, their
    /// membership at the event (`unsigned.membership`, which clients use to tell what they
    /// could decrypt or were shown), and the aggregations of its relations (edits, threads,
    /// references) bundled.
    pub fn format_event(
        &self,
        pdu: &PduRef,
        viewer: Option<(&UserId, &DeviceId)>,
    ) -> Result<Value> {
        let (mut v, redacted) = self.format_unbundled(pdu, viewer.map(|(_, d)| d))?;
        if let Some((user, _)) = viewer {
            if let Some(pos) = self.event_pos(&pdu.event_id)? {
                v["unsigned"]["membership"] = json!(self.membership_at(&pdu.room_id, user, pos)?);
            }
        }
        if !redacted {
            if let Some(b) = self.bundled(pdu, viewer.map(|(u, _)| u), None)? {
                v["unsigned"]["m.relations"] = b;
            }
        }
        Ok(v)
    }

    /// The client format without bundled aggregations (for events inside bundles).
    pub fn format_plain(&self, pdu: &PduRef) -> Result<Value> {
        Ok(self.format_unbundled(pdu, None)?.0)
    }

    fn format_unbundled(&self, pdu: &PduRef, device: Option<&DeviceId>) -> Result<(Value, bool)> {
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
        Ok((
            client_event(pdu, unsigned),
            extras.redacted_because.is_some(),
        ))
    }
}

/// A timeline index entry: enough to count and filter without loading the event.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub event_id: String,
    pub sender: String,
    pub kind: String,
}

impl crate::storage::table::Value for TimelineEntry {
    fn to_bytes(&self) -> std::result::Result<Vec<u8>, crate::storage::StorageError> {
        Ok(format!("{}\n{}\n{}", self.event_id, self.sender, self.kind).into_bytes())
    }

    fn from_bytes(b: &[u8]) -> std::result::Result<Self, crate::storage::StorageError> {
        let s = std::str::from_utf8(b)
            .map_err(|_| crate::storage::StorageError::Corrupt("timeline entry"))?;
        let mut parts = s.splitn(3, '\n');
        let mut next = || {
            parts
                .next()
                .map(str::to_owned)
                .ok_or(crate::storage::StorageError::Corrupt("timeline entry"))
        };
        Ok(Self {
            event_id: next()?,
            sender: next()?,
            kind: next()?,
        })
    }
}
