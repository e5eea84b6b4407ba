//! Room upgrades: a new room of the requested version carrying the old one's settings (name,
//! topic, avatar, rules, encryption, power levels, published aliases, directory listing) and
//! pointing back at it (`predecessor`); the old room gets an `m.room.tombstone` and is made
//! read-only for ordinary members.

use ruma::{OwnedRoomId, OwnedUserId, RoomId, RoomVersionId};
use serde_json::{json, Map, Value};

use super::{
    create::{CreateRoom, Preset},
    rules_for,
    state::power_levels,
    CurrentState, Rooms,
};
use crate::{
    error::{Error, Result},
    events::EventTemplate,
};

/// State carried over as it is.
const CARRIED: [&str; 8] = [
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
];

impl Rooms {
    pub async fn upgrade(
        &self,
        old: &RoomId,
        user: &OwnedUserId,
        version: RoomVersionId,
        profile: Map<String, Value>,
    ) -> Result<OwnedRoomId> {
        let meta = self.meta_or_404(old)?;
        self.require_joined(old, user)?;
        let rules = rules_for(&meta.version)?;
        let view = CurrentState {
            rooms: self,
            room_id: old,
        };
        let pl = power_levels(&view, &rules)?;
        if pl.user_level(user) < pl.event_level("m.room.tombstone", true) {
            return Err(Error::forbidden(
                "You need the power to send m.room.tombstone to upgrade this room",
            ));
        }
        let state = |kind: &str| -> Result<Option<Value>> {
            Ok(self
                .current_state(old, &kind.into(), "")?
                .map(|p| p.content_value()))
        };
        let mut creation = Map::new();
        creation.insert("predecessor".into(), json!({ "room_id": old }));
        if let Some(t) = state("m.room.create")?.and_then(|c| c.get("type").cloned()) {
            creation.insert("type".into(), t);
        }
        // Power levels as they were; in a version-12 room the upgrader is its creator and so
        // not listed, while creators of a version-12 room keep 100 in an older version.
        let mut pl_content = state("m.room.power_levels")?
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let new_rules = rules_for(&version)?;
        let users = pl_content
            .entry("users")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut users: Map<String, Value> = users;
        if new_rules.authorization.explicitly_privilege_room_creators {
            users.remove(user.as_str());
        } else {
            for c in pl.creators.iter().chain(std::iter::once(user)) {
                users.insert(c.to_string(), json!(100));
            }
        }
        pl_content.insert("users".into(), Value::Object(users));
        let mut initial_state = Vec::new();
        for kind in CARRIED {
            if let Some(c) = state(kind)? {
                initial_state.push(EventTemplate::state(kind, "", c));
            }
        }
        let preset = if self.join_rule(old)? == "public" {
            Preset::PublicChat
        } else {
            Preset::PrivateChat
        };
        let new = self
            .create_room(
                user,
                CreateRoom {
                    version,
                    preset,
                    creation_content: creation,
                    power_level_override: Some(pl_content),
                    initial_state,
                    name: None,
                    topic: None,
                    alias: None,
                    invite: Vec::new(),
                    is_direct: false,
                    creator_profile: profile,
                    invite_profiles: Default::default(),
                },
            )
            .await?;
        // The old room points at the new one and goes quiet.
        self.append(
            old,
            user,
            EventTemplate::state(
                "m.room.tombstone",
                "",
                json!({ "body": "This room has been replaced", "replacement_room": new }),
            ),
            None,
        )
        .await?;
        let mut old_pl = state("m.room.power_levels")?
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let quiet = (pl.users_default + 1).max(50);
        for k in ["events_default", "invite"] {
            let cur = old_pl.get(k).and_then(Value::as_i64).unwrap_or(0);
            old_pl.insert(k.into(), json!(cur.max(quiet)));
        }
        if let Err(e) = self
            .append(
                old,
                user,
                EventTemplate::state("m.room.power_levels", "", Value::Object(old_pl)),
                None,
            )
            .await
        {
            tracing::warn!(room = %old, error = %e, "old room not made read-only after upgrade");
        }
        // Published aliases and the directory listing move to the new room.
        let aliases = self.room_aliases(old)?;
        for a in &aliases {
            if let Some(mut rec) = self.db.t.aliases.get(a)? {
                rec.0.room_id = new.clone();
                self.db.t.aliases.put(a, &rec)?;
            }
        }
        if let Some(c) = state("m.room.canonical_alias")? {
            self.append(
                &new,
                user,
                EventTemplate::state("m.room.canonical_alias", "", c),
                None,
            )
            .await?;
        }
        if self.is_published(old)? {
            self.set_published(old, false)?;
            self.set_published(&new, true)?;
        }
        self.db.durable().await?;
        Ok(new)
    }
}
