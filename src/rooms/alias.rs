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
    pub fn delete_alias(&self, alias: &RoomAliasId, user: &UserId, is_admin: bool) -> Result<()> {
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
        Ok(())
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
