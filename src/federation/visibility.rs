//! What another server may see of a room's events: the one rule every federation answer that
//! carries events goes through (`/event`, `/get_missing_events`, `/backfill`, `/state`,
//! `/event_auth`). An event the room's history visibility hides from that server is sent
//! redacted: its ID, hashes and signatures still check, and the keys authorisation needs stay,
//! but its content does not travel.

use std::collections::HashMap;

use ruma::{events::StateEventType, ServerName};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    events::PduRef,
    rooms::{rules_for, state::StateMap},
    Haven,
};

/// Answers events as `server` may see them, deciding once per state group (events that follow
/// the same state share the decision).
pub struct ServerView<'a> {
    h: &'a Haven,
    server: &'a ServerName,
    by_group: HashMap<Option<u64>, bool>,
    /// Redaction rules by room (its version's), for the events sent redacted.
    rules: HashMap<ruma::OwnedRoomId, ruma::room_version_rules::RoomVersionRules>,
}

impl<'a> ServerView<'a> {
    pub fn new(h: &'a Haven, server: &'a ServerName) -> Self {
        Self {
            h,
            server,
            by_group: HashMap::new(),
            rules: HashMap::new(),
        }
    }

    /// Whether `server` may see the content of `pdu`.
    pub fn may_see(&mut self, pdu: &PduRef) -> Result<bool> {
        let group = self
            .h
            .db
            .t
            .event_state_before
            .get(&pdu.event_id.to_string())?;
        if let Some(v) = self.by_group.get(&group) {
            return Ok(*v);
        }
        let v = visible_to_server(self.h, pdu, self.server)?;
        self.by_group.insert(group, v);
        Ok(v)
    }

    /// `pdu` as federation JSON: whole when `server` may see it, else redacted.
    pub fn json(&mut self, pdu: &PduRef) -> Result<Value> {
        if self.may_see(pdu)? {
            return super::membership::pdu_json(pdu);
        }
        let rules = match self.rules.get(&pdu.room_id) {
            Some(r) => r,
            None => {
                let version = self.h.rooms.meta_or_404(&pdu.room_id)?.version;
                self.rules
                    .entry(pdu.room_id.clone())
                    .or_insert(rules_for(&version)?)
            }
        };
        let redacted = ruma::canonical_json::redact(pdu.canonical()?, &rules.redaction, None)
            .map_err(Error::internal)?;
        serde_json::to_value(redacted).map_err(Error::internal)
    }
}

/// Whether the room's history visibility at `pdu` lets `server` see it: always for `shared`
/// and `world_readable`, else only if one of its users was a member then (joined, or invited
/// for `invited`). Without the state at the event (history this server backfilled itself),
/// the room's current state decides.
fn visible_to_server(h: &Haven, pdu: &PduRef, server: &ServerName) -> Result<bool> {
    let state: StateMap = match h.rooms.state_before_event(&pdu.event_id)? {
        Some(s) => s,
        None => {
            crate::rooms::state::load_group(&h.db, h.rooms.meta_or_404(&pdu.room_id)?.state_group)?
        }
    };
    let get = |kind: &StateEventType, sk: &str| -> Result<Option<PduRef>> {
        match state.get(&(kind.to_string(), sk.to_owned())) {
            Some(id) => h.rooms.get_pdu(id),
            None => Ok(None),
        }
    };
    let visibility = get(&StateEventType::RoomHistoryVisibility, "")?
        .and_then(|p| p.content_str("history_visibility"))
        .unwrap_or_else(|| "shared".to_owned());
    if matches!(visibility.as_str(), "shared" | "world_readable") {
        return Ok(true);
    }
    let suffix = format!(":{server}");
    for ((kind, sk), id) in &state {
        if kind != "m.room.member" || !sk.ends_with(&suffix) {
            continue;
        }
        let membership = h
            .rooms
            .get_pdu(id)?
            .and_then(|p| p.content_str("membership"))
            .unwrap_or_default();
        if membership == "join" || (membership == "invite" && visibility == "invited") {
            return Ok(true);
        }
    }
    Ok(false)
}
