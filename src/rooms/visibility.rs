//! History visibility: which stream positions of a room a user may read, from their
//! membership and the room's `m.room.history_visibility`.

use ruma::{events::StateEventType, RoomId, UserId};

use super::Rooms;
use crate::error::Result;

/// The inclusive range of positions a user may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible {
    pub from: u64,
    pub to: u64,
}

impl Visible {
    pub fn contains(&self, pos: u64) -> bool {
        self.from <= pos && pos <= self.to
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
        let vis = self.history_visibility(room_id)?;
        if vis == "world_readable" {
            return Ok(Some(Visible {
                from: 0,
                to: u64::MAX,
            }));
        }
        if self.is_forgotten(room_id, user)? {
            return Ok(None);
        }
        let Some(m) = self.membership(room_id, user)? else {
            return Ok(None);
        };
        let from = if vis == "shared" {
            0
        } else {
            self.membership_start(room_id, user, m.pos)?
        };
        Ok(match m.membership.as_str() {
            "join" => Some(Visible { from, to: u64::MAX }),
            "invite" if vis == "invited" => Some(Visible { from, to: u64::MAX }),
            // Left, kicked or banned: up to and including the event that removed them, if they
            // were ever joined.
            "leave" | "ban" => {
                if self.was_joined_before(room_id, user, m.pos)? {
                    Some(Visible { from, to: m.pos })
                } else {
                    None
                }
            }
            _ => None,
        })
    }

    /// Position where the user's current run of membership began (first of their consecutive
    /// join/invite events), used for `joined`/`invited` visibility.
    fn membership_start(&self, room_id: &RoomId, user: &UserId, mut pos: u64) -> Result<u64> {
        let mut event = self
            .db
            .t
            .room_members
            .get(&(room_id.to_string(), user.to_string()))?
            .map(|m| m.0.event_id);
        while let Some(id) = event {
            let extras = self.extras(&id)?;
            let Some(prev) = extras.replaces_state else {
                break;
            };
            let Some(p) = self.get_pdu(&prev)? else { break };
            let m = p.content_str("membership").unwrap_or_default();
            if m != "join" && m != "invite" {
                break;
            }
            pos = self.event_pos(&prev)?.unwrap_or(pos);
            event = Some(prev);
        }
        Ok(pos)
    }

    fn was_joined_before(&self, room_id: &RoomId, user: &UserId, _pos: u64) -> Result<bool> {
        let Some(m) = self.membership(room_id, user)? else {
            return Ok(false);
        };
        let mut cur = self.extras(&m.event_id)?.replaces_state;
        while let Some(id) = cur {
            let Some(p) = self.get_pdu(&id)? else { break };
            if p.content_str("membership").as_deref() == Some("join") {
                return Ok(true);
            }
            cur = self.extras(&id)?.replaces_state;
        }
        Ok(false)
    }
}
