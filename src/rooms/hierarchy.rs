//! Spaces: a space's children (its `m.space.child` state) and who may see a room's summary
//! when walking a space (`/hierarchy`, `/room_summary`).

use ruma::{events::StateEventType, OwnedRoomId, OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{json, Value};

use super::Rooms;
use crate::{error::Result, events::client::stripped_state};

/// Who is looking at a room's summary.
#[derive(Clone, Copy)]
pub enum Viewer<'a> {
    User(&'a UserId),
    /// Another server, asking for its users (it filters restricted rooms itself).
    Server(&'a ServerName),
    /// Someone not logged in.
    Anyone,
}

/// A child of a space and the servers to reach it through.
pub struct Child {
    pub room: OwnedRoomId,
    pub via: Vec<OwnedServerName>,
}

/// The servers an `m.space.child` (or `m.space.parent`) content names to reach the room.
pub fn via_servers(content: &Value) -> Vec<OwnedServerName> {
    content["via"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .filter_map(|s| OwnedServerName::try_from(s).ok())
        .collect()
}

impl Rooms {
    /// What a room is: its directory entry with its version, encryption and, for restricted
    /// rooms, the rooms whose members may join.
    pub fn summary_entry(&self, room: &RoomId) -> Result<Value> {
        let mut entry = self.directory_entry(room)?;
        if let Some(meta) = self.meta(room)? {
            entry["room_version"] = json!(meta.version);
        }
        let encryption = self
            .current_state(room, &StateEventType::RoomEncryption, "")?
            .and_then(|e| e.content_value()["algorithm"].as_str().map(str::to_owned));
        if let Some(a) = encryption {
            entry["encryption"] = json!(a);
        }
        let allowed = self.allowed_room_ids(room)?;
        if !allowed.is_empty() {
            entry["allowed_room_ids"] = json!(allowed);
        }
        Ok(entry)
    }

    /// The rooms a restricted room's join rule lets members of join.
    fn allowed_room_ids(&self, room: &RoomId) -> Result<Vec<OwnedRoomId>> {
        let Some(rules) = self.current_state(room, &StateEventType::RoomJoinRules, "")? else {
            return Ok(Vec::new());
        };
        let content = rules.content_value();
        if !matches!(
            content["join_rule"].as_str(),
            Some("restricted" | "knock_restricted")
        ) {
            return Ok(Vec::new());
        }
        Ok(content["allow"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == "m.room_membership")
            .filter_map(|a| a["room_id"].as_str())
            .filter_map(|r| OwnedRoomId::try_from(r).ok())
            .collect())
    }

    /// The children of a space (`m.space.child` with servers to reach them through), and
    /// those events stripped as `/hierarchy` shows them.
    pub fn space_children(
        &self,
        room: &RoomId,
        suggested_only: bool,
    ) -> Result<(Vec<Child>, Vec<Value>)> {
        let mut children = Vec::new();
        let mut events = Vec::new();
        let mut found = self.current_state_of_type(room, "m.space.child")?;
        // The spec's order: `order` when set (lexicographic), then the newest last.
        found.sort_by(|a, b| {
            let order = |p: &crate::events::PduRef| {
                p.content_value()["order"]
                    .as_str()
                    .filter(|o| o.len() <= 50)
                    .map(str::to_owned)
            };
            match (order(a), order(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.origin_server_ts.cmp(&b.origin_server_ts),
            }
        });
        for pdu in found {
            let content = pdu.content_value();
            let via = via_servers(&content);
            let Some(child) = pdu
                .state_key
                .as_deref()
                .and_then(|k| OwnedRoomId::try_from(k).ok())
            else {
                continue;
            };
            if via.is_empty() || (suggested_only && content["suggested"] != true) {
                continue;
            }
            let mut e = stripped_state(&pdu);
            e["origin_server_ts"] = json!(pdu.origin_server_ts);
            events.push(e);
            children.push(Child { room: child, via });
        }
        Ok((children, events))
    }

    /// Whether `viewer` may see a room's summary: members (a server with a member), anyone
    /// when the room is public, knockable or world-readable, and for restricted rooms the
    /// members of an allowed room (a server is shown the allowed rooms and decides).
    pub fn may_view(&self, room: &RoomId, viewer: Viewer<'_>) -> Result<bool> {
        let entry = self.directory_entry(room)?;
        if matches!(
            entry["join_rule"].as_str(),
            Some("public" | "knock" | "knock_restricted")
        ) || entry["world_readable"] == true
        {
            return Ok(true);
        }
        let allowed = self.allowed_room_ids(room)?;
        match viewer {
            Viewer::User(user) => {
                if matches!(
                    self.membership(room, user)?
                        .map(|m| m.membership)
                        .as_deref(),
                    Some("join" | "invite" | "knock")
                ) {
                    return Ok(true);
                }
                for r in allowed {
                    if self
                        .membership(&r, user)?
                        .is_some_and(|m| m.membership == "join")
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Viewer::Anyone => Ok(false),
            Viewer::Server(server) => Ok(!allowed.is_empty()
                || self.members(room)?.iter().any(|(u, m)| {
                    u.server_name() == server && matches!(m.membership.as_str(), "join" | "invite")
                })),
        }
    }
}
