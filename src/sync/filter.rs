//! Event filters (`/user/{userId}/filter`, inline `filter=` on /sync and /messages): storing
//! them and matching events against them.

use ruma::{
    api::client::filter::{FilterDefinition, RoomEventFilter, RoomFilter},
    RoomId, UserId,
};

use crate::{
    error::{Error, Result},
    events::Pdu,
    storage::{Json, Storage},
};

/// Stores a filter and returns its ID: random, so concurrent uploads never share one.
pub fn store(db: &Storage, user: &UserId, filter: serde_json::Value) -> Result<String> {
    let id = crate::util::random_string(12);
    db.t.filters
        .put(&(user.to_string(), id.clone()), &Json(filter))?;
    Ok(id)
}

pub fn load(db: &Storage, user: &UserId, id: &str) -> Result<Option<serde_json::Value>> {
    Ok(db
        .t
        .filters
        .get(&(user.to_string(), id.to_owned()))?
        .map(|j| j.0))
}

/// A filter given either inline (JSON) or by ID.
pub fn resolve(db: &Storage, user: &UserId, param: Option<&str>) -> Result<FilterDefinition> {
    let Some(p) = param else {
        return Ok(FilterDefinition::default());
    };
    let json = if p.trim_start().starts_with('{') {
        serde_json::from_str(p).map_err(|e| Error::bad_json(format!("invalid filter: {e}")))?
    } else {
        load(db, user, p)?.ok_or_else(|| Error::not_found("Unknown filter"))?
    };
    serde_json::from_value(json).map_err(|e| Error::bad_json(format!("invalid filter: {e}")))
}

/// `*` wildcards at the end of a type pattern, as in the spec's examples.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

pub fn room_allowed(f: &RoomFilter, room: &RoomId) -> bool {
    if f.not_rooms.iter().any(|r| r == room) {
        return false;
    }
    f.rooms
        .as_ref()
        .is_none_or(|rs| rs.iter().any(|r| r == room))
}

pub fn event_matches(f: &RoomEventFilter, pdu: &Pdu) -> bool {
    let kind = pdu.kind.to_string();
    if f.not_types.iter().any(|t| type_matches(t, &kind)) {
        return false;
    }
    if let Some(types) = &f.types {
        if !types.iter().any(|t| type_matches(t, &kind)) {
            return false;
        }
    }
    if f.not_senders.contains(&pdu.sender) {
        return false;
    }
    if let Some(senders) = &f.senders {
        if !senders.contains(&pdu.sender) {
            return false;
        }
    }
    if f.not_rooms.contains(&pdu.room_id) {
        return false;
    }
    if let Some(rooms) = &f.rooms {
        if !rooms.contains(&pdu.room_id) {
            return false;
        }
    }
    true
}

/// Same matching for non-room filters (types only).
pub fn type_allowed(types: Option<&Vec<String>>, not_types: &[String], kind: &str) -> bool {
    !not_types.iter().any(|t| type_matches(t, kind))
        && types.is_none_or(|ts| ts.iter().any(|t| type_matches(t, kind)))
}
