//! History visibility: which stream positions of a room a user may read, event by event, from
//! the `m.room.history_visibility` in force at each event and the user's membership then —
//! the spec's rule (client-server API, "History visibility"):
//!
//! 1. `world_readable` at the event: visible;
//! 2. the user was joined at the event: visible;
//! 3. `shared` at the event and the user joined at or after it: visible;
//! 4. the user was invited at the event and it was `invited`: visible;
//! 5. otherwise hidden.
//!
//! Both inputs change only at a few positions (visibility changes, the user's membership
//! events), so the answer is a short list of position spans computed once per request.

use ruma::{events::StateEventType, OwnedEventId, RoomId, UserId};

use super::Rooms;
use crate::error::Result;

/// What a user may read of a room: the visible spans of stream positions (inclusive, sorted,
/// apart), with `from`/`to` their outer bounds for range scans. Events between spans are
/// hidden; test each with [`Visible::contains`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible {
    pub from: u64,
    pub to: u64,
    spans: Vec<(u64, u64)>,
}

impl Visible {
    /// Everything, as for a world-readable room that never was anything else.
    fn all() -> Self {
        Self {
            from: 0,
            to: u64::MAX,
            spans: vec![(0, u64::MAX)],
        }
    }

    /// `None` when nothing is visible.
    fn of(spans: Vec<(u64, u64)>) -> Option<Self> {
        Some(Self {
            from: spans.first()?.0,
            to: spans.last()?.1,
            spans,
        })
    }

    pub fn contains(&self, pos: u64) -> bool {
        let i = self.spans.partition_point(|(_, to)| *to < pos);
        self.spans.get(i).is_some_and(|(from, _)| *from <= pos)
    }
}

/// A value that changed at some positions: `(position from which it holds, value)`, sorted.
type Changes = Vec<(u64, String)>;

fn at(changes: &Changes, pos: u64, before_any: &str) -> String {
    let i = changes.partition_point(|(p, _)| *p <= pos);
    match i {
        0 => before_any.to_owned(),
        _ => changes[i - 1].1.clone(),
    }
}

/// How joined a membership is, for an own membership event seen from either side.
fn rank(membership: &str) -> u8 {
    match membership {
        "join" => 2,
        "invite" => 1,
        _ => 0,
    }
}

impl Rooms {
    pub fn history_visibility(&self, room_id: &RoomId) -> Result<String> {
        Ok(self
            .current_state(room_id, &StateEventType::RoomHistoryVisibility, "")?
            .and_then(|p| p.content_str("history_visibility"))
            .unwrap_or_else(|| "shared".to_owned()))
    }

    /// What `user` may read of `room_id`, or `None` for nothing at all.
    pub fn visible_range(&self, room_id: &RoomId, user: &UserId) -> Result<Option<Visible>> {
        let visibility = self.state_changes(
            room_id,
            &StateEventType::RoomHistoryVisibility,
            "",
            "history_visibility",
        )?;
        if visibility.iter().all(|(_, v)| v == "world_readable") && !visibility.is_empty() {
            return Ok(Some(Visible::all()));
        }
        // A forgotten room's history is no longer the user's to read (world-readable parts
        // stay readable to anyone).
        let membership = if self.is_forgotten(room_id, user)? {
            Changes::new()
        } else {
            self.state_changes(
                room_id,
                &StateEventType::RoomMember,
                user.as_str(),
                "membership",
            )?
        };
        let last_join = membership
            .iter()
            .rev()
            .find(|(_, m)| m == "join")
            .map(|(p, _)| *p);
        // Each membership event is a span of its own: the user's own membership event counts
        // with the more joined of their membership before and after it, so they see their
        // own join and their own leave (as on Synapse).
        let mut cuts: Vec<u64> = visibility
            .iter()
            .map(|(p, _)| *p)
            .chain(membership.iter().flat_map(|(p, _)| [*p, p + 1]))
            .chain(last_join.map(|p| p + 1))
            .chain([0])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for (i, &from) in cuts.iter().enumerate() {
            let to = cuts.get(i + 1).map_or(u64::MAX, |next| next - 1);
            let vis = at(&visibility, from, "shared");
            let mut member = at(&membership, from, "leave");
            if from > 0 && membership.iter().any(|(p, _)| *p == from) {
                let before = at(&membership, from - 1, "leave");
                if rank(&before) > rank(&member) {
                    member = before;
                }
            }
            let visible = vis == "world_readable"
                || member == "join"
                || (vis == "shared" && last_join.is_some_and(|j| j >= from))
                || (vis == "invited" && member == "invite");
            if !visible {
                continue;
            }
            match spans.last_mut() {
                Some(last) if last.1.saturating_add(1) == from => last.1 = to,
                _ => spans.push((from, to)),
            }
        }
        Ok(Visible::of(spans))
    }

    /// The values a state entry took in this room's timeline, oldest first, each with the
    /// position from which it holds (the state event's own); read back along
    /// `replaces_state` from the current one.
    fn state_changes(
        &self,
        room_id: &RoomId,
        kind: &StateEventType,
        state_key: &str,
        field: &str,
    ) -> Result<Changes> {
        let mut out = Changes::new();
        let mut cur: Option<OwnedEventId> = self
            .current_state(room_id, kind, state_key)?
            .map(|p| p.event_id.clone());
        while let Some(id) = cur {
            let Some(pdu) = self.get_pdu(&id)? else { break };
            // Events only known by backfill sit before every live position.
            let pos = self.event_pos(&id)?.unwrap_or(0);
            out.push((pos, pdu.content_str(field).unwrap_or_default()));
            cur = self.extras(&id)?.replaces_state;
        }
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_answer_contains() {
        let v = Visible::of(vec![(1, 5), (9, u64::MAX)]).unwrap();
        assert!(v.contains(1) && v.contains(5) && v.contains(9) && v.contains(1000));
        assert!(!v.contains(0) && !v.contains(6) && !v.contains(8));
        assert_eq!((v.from, v.to), (1, u64::MAX));
        assert!(Visible::of(vec![]).is_none());
    }
}
