//! Local room aliases (`#name:server`).

use std::sync::Mutex;

use ruma::{OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use super::{rules_for, state::power_levels, CurrentState, Rooms};
use crate::{
    error::{ErrCode, Error, Result},
    storage::Json,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    pub room_id: OwnedRoomId,
    pub creator: OwnedUserId,
}

/// Serialises check-and-set of aliases.
static ALIAS_LOCK: Mutex<()> = Mutex::new(());

impl Rooms {
    fn check_local(&self, alias: &RoomAliasId) -> Result<()> {
        if alias.server_name() != self.server_name() {
            return Err(Error::invalid_param("Alias must be on this server"));
        }
        Ok(())
    }

    /// Creates `alias` for `room_id`; `M_ROOM_IN_USE` (409 via the API) when taken.
    pub fn claim_alias(
        &self,
        alias: &RoomAliasId,
        room_id: &RoomId,
        creator: &UserId,
    ) -> Result<()> {
        self.check_local(alias)?;
        let _g = ALIAS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let key = alias.to_string();
        if self.db.t.aliases.contains(&key)? {
            return Err(Error::new(
                axum::http::StatusCode::CONFLICT,
                ErrCode::RoomInUse,
                "Room alias already exists",
            ));
        }
        let rec = AliasRecord {
            room_id: room_id.to_owned(),
            creator: creator.to_owned(),
        };
        self.db.t.aliases.put(&key, &Json(rec))?;
        Ok(())
    }

    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>> {
        Ok(self
            .db
            .t
            .aliases
            .get(&alias.to_string())?
            .map(|r| r.0.room_id))
    }

    /// Deletes an alias: allowed for its creator and for room members whose power level
    /// allows changing the canonical alias.
    /// Deletes a local alias, and takes it out of the room's `m.room.canonical_alias` (as
    /// `user`, when they may; Synapse does the same), so neither the room's state nor the public
    /// directory goes on naming an alias that no longer resolves.
    pub async fn delete_alias(
        &self,
        alias: &RoomAliasId,
        user: &OwnedUserId,
        is_admin: bool,
    ) -> Result<()> {
        let room = self.delete_alias_record(alias, user, is_admin)?;
        let Some(current) =
            self.current_state(&room, &ruma::events::StateEventType::RoomCanonicalAlias, "")?
        else {
            return Ok(());
        };
        let mut content = current.content_value();
        let mut changed = false;
        if content["alias"] == alias.as_str() {
            if let Some(m) = content.as_object_mut() {
                m.remove("alias");
            }
            changed = true;
        }
        if let Some(alt) = content["alt_aliases"].as_array_mut() {
            let before = alt.len();
            alt.retain(|a| a != alias.as_str());
            changed |= alt.len() != before;
        }
        if changed {
            let t = crate::events::EventTemplate::state("m.room.canonical_alias", "", content);
            if let Err(e) = self.append(&room, user, t, None).await {
                tracing::info!(%room, %alias, error = %e, "canonical alias not updated after deleting the alias");
            }
        }
        Ok(())
    }

    fn delete_alias_record(
        &self,
        alias: &RoomAliasId,
        user: &UserId,
        is_admin: bool,
    ) -> Result<OwnedRoomId> {
        self.check_local(alias)?;
        let _g = ALIAS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let key = alias.to_string();
        let rec = self
            .db
            .t
            .aliases
            .get(&key)?
            .ok_or_else(|| Error::not_found("Alias not found"))?
            .0;
        let allowed = is_admin || rec.creator == user || {
            match self.meta(&rec.room_id)? {
                Some(meta) => {
                    let rules = rules_for(&meta.version)?;
                    let view = CurrentState {
                        rooms: self,
                        room_id: &rec.room_id,
                    };
                    let pl = power_levels(&view, &rules)?;
                    self.is_joined(&rec.room_id, user)?
                        && pl.user_level(user) >= pl.event_level("m.room.canonical_alias", true)
                }
                None => false,
            }
        };
        if !allowed {
            return Err(Error::forbidden("You may not delete this alias"));
        }
        self.db.t.aliases.remove(&key)?;
        Ok(rec.room_id)
    }

    /// Local aliases pointing at `room_id`.
    pub fn room_aliases(&self, room_id: &RoomId) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in self.db.t.aliases.scan_prefix(&[]) {
            let (alias, rec) = item?;
            if rec.0.room_id == room_id {
                out.push(alias);
            }
        }
        Ok(out)
    }
}
