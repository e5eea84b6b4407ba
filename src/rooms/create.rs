//! Room creation (`/createRoom`): the whole initial event chain is built and authorised in
//! memory first, so a request that fails anywhere creates nothing.

use std::{collections::HashMap, sync::Arc};

use ruma::{
    events::StateEventType, OwnedEventId, OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId,
    RoomVersionId,
};
use serde_json::{json, Map, Value};

use super::{event_topics, rules_for, RoomMeta, Rooms, StateView};
use crate::stream::Topic;
use crate::{
    error::{ErrCode, Error, Result},
    events::{EventTemplate, PduRef},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

/// What `/createRoom` asked for, already parsed by the API layer.
#[derive(Debug, Clone)]
pub struct CreateRoom {
    pub version: RoomVersionId,
    pub preset: Preset,
    pub creation_content: Map<String, Value>,
    pub power_level_override: Option<Map<String, Value>>,
    pub initial_state: Vec<EventTemplate>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub alias: Option<OwnedRoomAliasId>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    /// The creator's displayname and avatar for their join event.
    pub creator_profile: Map<String, Value>,
    /// Invitees' displaynames and avatars for their invite events (clients show them before
    /// the invitee joins).
    pub invite_profiles: std::collections::HashMap<OwnedUserId, Map<String, Value>>,
}

/// In-memory state of a room being created.
#[derive(Default)]
struct Draft {
    state: HashMap<(String, String), PduRef>,
}

impl StateView for Draft {
    fn get(&self, kind: &StateEventType, state_key: &str) -> Result<Option<PduRef>> {
        Ok(self
            .state
            .get(&(kind.to_string(), state_key.to_owned()))
            .cloned())
    }

    fn pending_event(&self, event_id: &ruma::EventId) -> Option<PduRef> {
        self.state
            .values()
            .find(|p| p.event_id == event_id)
            .cloned()
    }
}

impl Rooms {
    pub async fn create_room(&self, creator: &OwnedUserId, req: CreateRoom) -> Result<OwnedRoomId> {
        let rules = rules_for(&req.version)?;
        if let Some(alias) = &req.alias {
            if self.db.t.aliases.contains(&alias.to_string())? {
                return Err(Error::bad_request(
                    ErrCode::RoomInUse,
                    "Room alias already taken",
                ));
            }
        }
        let v12 = rules.authorization.room_create_event_id_as_room_id;
        let room_id: Option<OwnedRoomId> = if v12 {
            None
        } else {
            Some(
                RoomId::parse(format!(
                    "!{}:{}",
                    crate::util::random_string(18),
                    self.server_name()
                ))
                .map_err(Error::internal)?,
            )
        };

        // m.room.create
        let mut create = req.creation_content.clone();
        create.insert("room_version".into(), json!(req.version.as_str()));
        if !rules.authorization.use_room_create_sender {
            create.insert("creator".into(), json!(creator));
        }
        if v12 && req.preset == Preset::TrustedPrivateChat && !req.invite.is_empty() {
            create.insert("additional_creators".into(), json!(req.invite));
        }
        let mut templates = vec![EventTemplate::state(
            "m.room.create",
            "",
            Value::Object(create),
        )];

        // The creator's join.
        let mut member = req.creator_profile.clone();
        member.insert("membership".into(), json!("join"));
        templates.push(EventTemplate::state(
            "m.room.member",
            creator.as_str(),
            Value::Object(member),
        ));

        // Power levels.
        let mut users = Map::new();
        if !v12 {
            users.insert(creator.to_string(), json!(100));
        }
        if req.preset == Preset::TrustedPrivateChat && !v12 {
            for u in &req.invite {
                users.insert(u.to_string(), json!(100));
            }
        }
        let mut pl = json!({
            "users": users,
            "users_default": 0,
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.canonical_alias": 50,
                "m.room.avatar": 50,
                "m.room.tombstone": 100,
                "m.room.server_acl": 100,
                "m.room.encryption": 100
            },
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": if req.preset == Preset::PublicChat { 50 } else { 0 },
            "historical": 100,
            "notifications": { "room": 50 }
        });
        if let (Some(over), Some(obj)) = (&req.power_level_override, pl.as_object_mut()) {
            for (k, v) in over {
                obj.insert(k.clone(), v.clone());
            }
        }
        templates.push(EventTemplate::state("m.room.power_levels", "", pl));

        if let Some(alias) = &req.alias {
            templates.push(EventTemplate::state(
                "m.room.canonical_alias",
                "",
                json!({ "alias": alias }),
            ));
        }
        let (join_rule, guest) = match req.preset {
            Preset::PublicChat => ("public", "forbidden"),
            _ => ("invite", "can_join"),
        };
        templates.push(EventTemplate::state(
            "m.room.join_rules",
            "",
            json!({ "join_rule": join_rule }),
        ));
        templates.push(EventTemplate::state(
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "shared" }),
        ));
        templates.push(EventTemplate::state(
            "m.room.guest_access",
            "",
            json!({ "guest_access": guest }),
        ));
        for t in &req.initial_state {
            if t.kind == "m.room.create" || t.kind == "m.room.member" {
                return Err(Error::bad_request(
                    ErrCode::InvalidRoomState,
                    format!("{} cannot be set in initial_state", t.kind),
                ));
            }
            templates.push(t.clone());
        }
        if let Some(name) = &req.name {
            templates.push(EventTemplate::state(
                "m.room.name",
                "",
                json!({ "name": name }),
            ));
        }
        if let Some(topic) = &req.topic {
            templates.push(EventTemplate::state(
                "m.room.topic",
                "",
                json!({ "topic": topic }),
            ));
        }
        for u in &req.invite {
            let mut c = json!({ "membership": "invite" });
            for (k, v) in req.invite_profiles.get(u).into_iter().flatten() {
                c[k] = v.clone();
            }
            if req.is_direct {
                c["is_direct"] = json!(true);
            }
            templates.push(EventTemplate::state("m.room.member", u.as_str(), c));
        }

        // A v12 room ID is the hash of its create event: two identical creations within the
        // same millisecond collide, so the later one is rebuilt with a later timestamp.
        let mut attempts = 0;
        let (room_id, pdus, _guard) = loop {
            let (room_id, pdus) = self.build_chain(room_id.clone(), creator, &templates, &rules)?;
            let guard = self.room_lock(&room_id).await;
            if self.meta(&room_id)?.is_none() {
                break (room_id, pdus, guard);
            }
            attempts += 1;
            if !v12 || attempts > 5 {
                return Err(Error::bad_request(
                    ErrCode::RoomInUse,
                    "Room already exists",
                ));
            }
            drop(guard);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        };
        let meta = RoomMeta {
            version: req.version.clone(),
            create_event_id: pdus[0].0.event_id.clone(),
            forward_extremities: Vec::new(),
            max_depth: 0,
            state_group: 0,
            last_pos: 0,
            event_count: 0,
        };
        if let Some(alias) = &req.alias {
            // Claimed before the events so that a race on the alias cannot create two rooms.
            self.claim_alias(alias, &room_id, creator)?;
        }
        let mut topics: Vec<Topic> = Vec::new();
        for t in pdus.iter().flat_map(|(p, _)| event_topics(p)) {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        let pos = self.persist(pdus, meta, &rules).await?;
        drop(_guard);
        self.db.durable().await?;
        self.stream.publish_to(pos, &topics);
        Ok(room_id)
    }

    /// Builds and authorises a new room's whole initial chain in memory.
    fn build_chain(
        &self,
        mut room_id: Option<OwnedRoomId>,
        creator: &OwnedUserId,
        templates: &[EventTemplate],
        rules: &ruma::room_version_rules::RoomVersionRules,
    ) -> Result<(OwnedRoomId, Vec<super::PendingEvent>)> {
        let mut draft = Draft::default();
        let mut pdus = Vec::with_capacity(templates.len());
        let mut prev: Vec<OwnedEventId> = Vec::new();
        for (depth, t) in templates.iter().enumerate() {
            let pdu = self
                .build_checked(
                    room_id.as_ref(),
                    creator,
                    t,
                    rules,
                    &draft,
                    prev.clone(),
                    depth as u64 + 1,
                )
                .map_err(|e| match e {
                    Error::Matrix {
                        code: ErrCode::Forbidden,
                        message,
                        ..
                    } if depth > 1 => Error::bad_request(ErrCode::InvalidRoomState, message),
                    e => e,
                })?;
            if depth == 0 {
                room_id = Some(pdu.room_id.clone());
            }
            let pdu = Arc::new(pdu);
            prev = vec![pdu.event_id.clone()];
            if let Some(sk) = &pdu.state_key {
                draft
                    .state
                    .insert((pdu.kind.to_string(), sk.clone()), pdu.clone());
            }
            pdus.push((pdu, None));
        }
        let room_id = room_id.ok_or_else(|| Error::internal("room without id"))?;
        Ok((room_id, pdus))
    }
}
