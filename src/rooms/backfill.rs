//! History older than this server's part of a room: events fetched from other servers
//! (backfill) are indexed apart from the live timeline, numbered 1, 2, 3... going back in
//! time, so the stream positions of the live timeline never have to make room for them.
//! The room's backfill edge remembers which events are still missing.

use std::collections::{BinaryHeap, HashMap, HashSet};

use ruma::{EventId, OwnedEventId, RoomId};
use serde::{Deserialize, Serialize};

use super::{timeline::TimelineEntry, Rooms};
use crate::{
    error::{Error, Result},
    events::PduRef,
    storage::Json,
};

/// Where a room's known history begins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackfillEdge {
    /// The index the next (older) backfilled event gets.
    pub next: u64,
    /// Events referenced as predecessors that this server does not have in any timeline.
    pub missing: Vec<OwnedEventId>,
}

impl BackfillEdge {
    /// The room's creation has been reached: there is nothing older.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

impl Rooms {
    /// The room's backfill edge; at first, the predecessors of its oldest local event.
    pub fn backfill_edge(&self, room: &RoomId) -> Result<BackfillEdge> {
        if let Some(e) = self.db.t.backfill_edges.get(&room.to_string())? {
            return Ok(e.0);
        }
        let mut edge = BackfillEdge {
            next: 1,
            missing: Vec::new(),
        };
        if let Some((_, first)) = self.timeline_entries(room, 0, u64::MAX, 1)?.pop() {
            let id = EventId::parse(&first.event_id).map_err(Error::internal)?;
            if let Some(p) = self.get_pdu(&id)? {
                edge.missing = p.prev_events.clone();
            }
        }
        Ok(edge)
    }

    /// Whether the event has a place in the room's history (live or backfilled).
    pub fn in_history(&self, id: &EventId) -> Result<bool> {
        let id = id.to_string();
        Ok(self.db.t.event_pos.contains(&id)? || self.db.t.backfill_index.contains(&id)?)
    }

    /// The backfill index of an event, if it came that way.
    pub fn backfill_index(&self, id: &EventId) -> Result<Option<u64>> {
        Ok(self.db.t.backfill_index.get(&id.to_string())?)
    }

    /// Adds checked events older than everything the room has (newest first by depth) and
    /// moves the edge past them. Answers how many were new.
    pub fn add_backfilled(&self, room: &RoomId, mut events: Vec<PduRef>) -> Result<usize> {
        let mut edge = self.backfill_edge(room)?;
        let rules = super::rules_for(&self.meta_or_404(room)?.version)?;
        let now = super::CurrentState {
            rooms: self,
            room_id: room,
        };
        events.sort_by(|a, b| {
            b.depth
                .cmp(&a.depth)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        let t = &self.db.t;
        let mut added = 0;
        let mut missing: HashSet<OwnedEventId> = edge.missing.iter().cloned().collect();
        for pdu in events {
            if pdu.room_id != room || self.in_history(&pdu.event_id)? {
                continue;
            }
            let id = pdu.event_id.to_string();
            if !t.pdus.contains(&id)? {
                match self.pending_redaction(&pdu, &rules)? {
                    Some((redacted, _)) => {
                        t.redacted_originals.put(&id, &pdu.to_bytes()?)?;
                        t.pdus.put(&id, &redacted.to_bytes()?)?;
                    }
                    None => t.pdus.put(&id, &pdu.to_bytes()?)?,
                }
            }
            if pdu.kind == ruma::events::TimelineEventType::RoomRedaction {
                if let Some(target) = &pdu.redacts {
                    // The state before a backfilled event is not known here: judged by the
                    // room's power levels now.
                    self.apply_redaction(target, &pdu, &rules, &now)?;
                }
            }
            let n = edge.next;
            edge.next += 1;
            t.backfill.put(
                &(room.to_string(), n),
                &TimelineEntry {
                    event_id: id.clone(),
                    sender: pdu.sender.to_string(),
                    kind: pdu.kind.to_string(),
                },
            )?;
            t.backfill_index.put(&id, &n)?;
            missing.remove(&pdu.event_id);
            missing.extend(pdu.prev_events.iter().cloned());
            added += 1;
        }
        let mut still = Vec::new();
        for id in missing {
            if !self.in_history(&id)? {
                still.push(id);
            }
        }
        still.sort();
        edge.missing = still;
        t.backfill_edges.put(&room.to_string(), &Json(edge))?;
        Ok(added)
    }

    /// Backfilled events going back (`index > after`, oldest last) or forward (`index <=
    /// after`, newest last), at most `limit`.
    pub fn backfilled_range(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
        backward: bool,
    ) -> Result<Vec<(u64, PduRef)>> {
        use crate::storage::keys::Key;
        let (from, to) = if backward {
            (
                (room.to_string(), after.saturating_add(1)),
                (room.to_string(), u64::MAX),
            )
        } else {
            (
                (room.to_string(), 1),
                (room.to_string(), after.saturating_add(1)),
            )
        };
        let mut out = Vec::new();
        for item in self
            .db
            .t
            .backfill
            .range(&from.encode(), &to.encode(), !backward)
        {
            if out.len() >= limit {
                break;
            }
            let ((_, n), entry) = item?;
            let id = EventId::parse(&entry.event_id).map_err(Error::internal)?;
            if let Some(pdu) = self.get_pdu(&id)? {
                out.push((n, pdu));
            }
        }
        Ok(out)
    }

    /// The events `from` and their predecessors, newest (deepest) first, at most `limit`:
    /// what another server backfilling the room gets.
    pub fn history_before(
        &self,
        room: &RoomId,
        from: &[OwnedEventId],
        limit: usize,
    ) -> Result<Vec<PduRef>> {
        // Deepest first; `found` holds the events queued.
        let mut queue = BinaryHeap::new();
        let mut found = HashMap::new();
        let mut todo: Vec<OwnedEventId> = from.to_vec();
        let mut out = Vec::new();
        loop {
            for id in todo.drain(..) {
                if found.contains_key(&id) {
                    continue;
                }
                if let Some(p) = self.get_pdu(&id)?.filter(|p| p.room_id == room) {
                    queue.push((p.depth, p.event_id.clone()));
                    found.insert(id, Some(p));
                }
            }
            let Some((_, id)) = queue.pop() else { break };
            if out.len() >= limit {
                break;
            }
            if let Some(p) = found.get_mut(&id).and_then(Option::take) {
                todo.extend(p.prev_events.iter().cloned());
                out.push(p);
            }
        }
        Ok(out)
    }
}
