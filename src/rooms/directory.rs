//! The public room directory (rooms published with `visibility: public` or
//! `/directory/list/room`) and the room facts it and the user directory show.

use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{json, Value};

use ruma::{directory::PublicRoomsChunk, UInt};

use super::Rooms;
use crate::{error::Result, events::PduRef};

/// A page of a room directory: rooms, next and previous tokens, total.
pub struct DirectoryPage {
    pub chunk: Vec<PublicRoomsChunk>,
    pub next: Option<String>,
    pub prev: Option<String>,
    pub total: UInt,
}

/// A directory filter's room types as names (`None`: rooms without a type).
pub fn room_type_names(types: &[ruma::directory::RoomTypeFilter]) -> Vec<Option<String>> {
    types
        .iter()
        .map(|t| {
            serde_json::to_value(t)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        })
        .collect()
}

impl Rooms {
    pub fn is_published(&self, room: &RoomId) -> Result<bool> {
        Ok(self.db.t.published_rooms.contains(&room.to_string())?)
    }

    pub fn set_published(&self, room: &RoomId, published: bool) -> Result<()> {
        if published {
            self.db.t.published_rooms.put(&room.to_string(), &())?;
        } else {
            self.db.t.published_rooms.remove(&room.to_string())?;
        }
        Ok(())
    }

    pub fn published_rooms(&self) -> Result<Vec<OwnedRoomId>> {
        let mut out = Vec::new();
        for item in self.db.t.published_rooms.scan_prefix(&[]) {
            let (room, ()) = item?;
            if let Ok(r) = OwnedRoomId::try_from(room) {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn state_content(&self, room: &RoomId, kind: &str) -> Result<Option<Value>> {
        let ev: Option<PduRef> = self.current_state(room, &kind.into(), "")?;
        Ok(ev.map(|e| e.content_value()))
    }

    /// The join rule (`invite` when unset).
    pub fn join_rule(&self, room: &RoomId) -> Result<String> {
        Ok(self
            .state_content(room, "m.room.join_rules")?
            .and_then(|c| c["join_rule"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "invite".into()))
    }

    /// A directory entry: `PublicRoomsChunk` as JSON.
    pub fn directory_entry(&self, room: &RoomId) -> Result<Value> {
        let name = self.state_content(room, "m.room.name")?;
        let topic = self.state_content(room, "m.room.topic")?;
        let alias = self.state_content(room, "m.room.canonical_alias")?;
        let avatar = self.state_content(room, "m.room.avatar")?;
        let guests = self.state_content(room, "m.room.guest_access")?;
        let create = self.state_content(room, "m.room.create")?;
        let mut e = json!({
            "room_id": room,
            "num_joined_members": self.joined_members(room)?.len(),
            "world_readable": self.history_visibility(room)? == "world_readable",
            "guest_can_join": guests.is_some_and(|g| g["guest_access"] == "can_join"),
            "join_rule": self.join_rule(room)?,
        });
        let mut set = |k: &str, v: Option<&Value>| {
            if let Some(v) = v.filter(|v| v.is_string()) {
                e[k] = v.clone();
            }
        };
        set("name", name.as_ref().map(|c| &c["name"]));
        set("topic", topic.as_ref().map(|c| &c["topic"]));
        set("canonical_alias", alias.as_ref().map(|c| &c["alias"]));
        set("avatar_url", avatar.as_ref().map(|c| &c["url"]));
        set("room_type", create.as_ref().map(|c| &c["type"]));
        Ok(e)
    }

    /// One page of the published rooms matching `term` (name, topic or alias) and `types`,
    /// busiest first.
    pub fn directory_page(
        &self,
        since: Option<&str>,
        limit: Option<UInt>,
        term: Option<&str>,
        types: &[Option<String>],
    ) -> Result<DirectoryPage> {
        let term = term.map(str::to_lowercase).filter(|t| !t.is_empty());
        let mut entries: Vec<Value> = Vec::new();
        for room in self.published_rooms()? {
            if self.meta(&room)?.is_none() {
                continue;
            }
            let e = self.directory_entry(&room)?;
            if let Some(t) = &term {
                let hay = ["name", "topic", "canonical_alias"]
                    .iter()
                    .filter_map(|k| e[*k].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                if !hay.contains(t.as_str()) {
                    continue;
                }
            }
            if !types.is_empty() {
                let ty = e["room_type"].as_str().map(str::to_owned);
                if !types.contains(&ty) {
                    continue;
                }
            }
            entries.push(e);
        }
        // Busiest first, then by ID for a stable order across pages.
        entries.sort_by(|a, b| {
            b["num_joined_members"]
                .as_u64()
                .cmp(&a["num_joined_members"].as_u64())
                .then(a["room_id"].as_str().cmp(&b["room_id"].as_str()))
        });
        let total = UInt::try_from(entries.len()).unwrap_or_default();
        let start: usize = match since {
            Some(s) => s
                .parse()
                .map_err(|_| crate::error::Error::invalid_param("Unknown pagination token"))?,
            None => 0,
        };
        let limit = limit.map_or(usize::MAX, |l| u64::from(l) as usize).max(1);
        let page: Vec<PublicRoomsChunk> = entries
            .iter()
            .skip(start)
            .take(limit)
            .filter_map(|e| serde_json::from_value(e.clone()).ok())
            .collect();
        let next = (start + page.len() < entries.len()).then(|| (start + page.len()).to_string());
        let prev = (start > 0).then(|| start.saturating_sub(limit).to_string());
        Ok(DirectoryPage {
            chunk: page,
            next,
            prev,
            total,
        })
    }

    /// Users `searcher` may find: those sharing a room with them and members of public rooms.
    pub fn searchable_users(&self, searcher: &UserId) -> Result<Vec<ruma::OwnedUserId>> {
        let mut rooms = self.joined_rooms(searcher)?;
        for item in self.db.t.rooms.scan_prefix(&[]) {
            let (room, _) = item?;
            if let Ok(r) = OwnedRoomId::try_from(room) {
                if !rooms.contains(&r) && self.join_rule(&r)? == "public" {
                    rooms.push(r);
                }
            }
        }
        let mut users = Vec::new();
        for r in rooms {
            users.extend(self.joined_members(&r)?);
        }
        users.sort();
        users.dedup();
        Ok(users)
    }
}
