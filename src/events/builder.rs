//! The one PDU builder: turns an event template into a hashed, signed PDU with its
//! reference-hash event ID, for any supported room version.

use ruma::{
    room_version_rules::RoomVersionRules, CanonicalJsonObject, CanonicalJsonValue, EventId,
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId,
};
use serde_json::Value;

use super::pdu::Pdu;
use crate::{
    error::{Error, Result},
    signing::ServerKey,
};

/// Largest PDU the spec allows, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

/// What a caller wants to send; the room layer fills in the graph fields.
#[derive(Debug, Clone)]
pub struct EventTemplate {
    pub kind: String,
    pub content: Value,
    pub state_key: Option<String>,
    /// For `m.room.redaction` in room versions before 11.
    pub redacts: Option<OwnedEventId>,
}

impl EventTemplate {
    pub fn new(kind: impl Into<String>, content: Value) -> Self {
        Self {
            kind: kind.into(),
            content,
            state_key: None,
            redacts: None,
        }
    }

    pub fn state(kind: impl Into<String>, state_key: impl Into<String>, content: Value) -> Self {
        Self {
            kind: kind.into(),
            content,
            state_key: Some(state_key.into()),
            redacts: None,
        }
    }
}

/// The graph position of a new event.
pub struct GraphFields<'a> {
    /// `None` for the create event of a v12 room.
    pub room_id: Option<&'a OwnedRoomId>,
    pub sender: &'a OwnedUserId,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub depth: u64,
}

/// Converts client JSON to canonical JSON, rejecting what canonical JSON cannot hold
/// (floats, integers beyond 2^53).
pub fn to_canonical(value: Value) -> Result<CanonicalJsonValue> {
    CanonicalJsonValue::try_from(value)
        .map_err(|e| Error::bad_json(format!("content is not valid canonical JSON: {e}")))
}

pub fn build_pdu(
    template: &EventTemplate,
    graph: GraphFields<'_>,
    rules: &RoomVersionRules,
    key: &ServerKey,
) -> Result<Pdu> {
    let obj = unsigned_pdu(template, graph)?;
    sign_pdu(obj, rules, key)
}

/// The PDU's fields before hashing and signing: what `make_join` and friends hand to another
/// server, which signs it as its own.
pub fn unsigned_pdu(
    template: &EventTemplate,
    graph: GraphFields<'_>,
) -> Result<CanonicalJsonObject> {
    let mut obj = CanonicalJsonObject::new();
    let ids = |v: &[OwnedEventId]| {
        CanonicalJsonValue::Array(
            v.iter()
                .map(|e| CanonicalJsonValue::String(e.to_string()))
                .collect(),
        )
    };
    obj.insert("auth_events".into(), ids(&graph.auth_events));
    obj.insert("prev_events".into(), ids(&graph.prev_events));
    let content = to_canonical(template.content.clone())?;
    if !matches!(content, CanonicalJsonValue::Object(_)) {
        return Err(Error::bad_json("event content must be a JSON object"));
    }
    obj.insert("content".into(), content);
    obj.insert(
        "depth".into(),
        CanonicalJsonValue::Integer(depth_int(graph.depth)?),
    );
    obj.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(
            ruma::Int::try_from(u64::from(MilliSecondsSinceUnixEpoch::now().get()))
                .map_err(Error::internal)?,
        ),
    );
    if let Some(room_id) = graph.room_id {
        obj.insert(
            "room_id".into(),
            CanonicalJsonValue::String(room_id.to_string()),
        );
    }
    obj.insert(
        "sender".into(),
        CanonicalJsonValue::String(graph.sender.to_string()),
    );
    if let Some(sk) = &template.state_key {
        obj.insert("state_key".into(), CanonicalJsonValue::String(sk.clone()));
    }
    obj.insert(
        "type".into(),
        CanonicalJsonValue::String(template.kind.clone()),
    );
    if let Some(r) = &template.redacts {
        obj.insert("redacts".into(), CanonicalJsonValue::String(r.to_string()));
    }
    Ok(obj)
}

/// Longest `type`, `state_key`, `sender` and `room_id` of an event, in bytes (the spec's
/// size limits; a longer one could never be accepted by another server).
pub const MAX_FIELD_BYTES: usize = 255;

/// Refuses an event whose `type`, `state_key`, `sender` or `room_id` is longer than the spec
/// allows (413 `M_TOO_LARGE`): checked on events built here and on events from other servers.
pub fn check_field_sizes(obj: &CanonicalJsonObject) -> Result<()> {
    for field in ["type", "state_key", "sender", "room_id"] {
        if let Some(CanonicalJsonValue::String(v)) = obj.get(field) {
            if v.len() > MAX_FIELD_BYTES {
                return Err(Error::too_large(format!(
                    "the event's {field} is {} bytes; the limit is {MAX_FIELD_BYTES}",
                    v.len()
                )));
            }
        }
    }
    Ok(())
}

/// Hashes and signs PDU fields with this server's key and derives the event ID, within the
/// size limits.
pub fn sign_pdu(
    mut obj: CanonicalJsonObject,
    rules: &RoomVersionRules,
    key: &ServerKey,
) -> Result<Pdu> {
    let too_large = |size: usize| {
        Error::too_large(format!(
            "event is {size} bytes; the limit is {MAX_PDU_BYTES}"
        ))
    };
    check_field_sizes(&obj)?;
    let unsigned_size = serde_json::to_vec(&obj).map_err(Error::internal)?.len();
    if unsigned_size > MAX_PDU_BYTES {
        return Err(too_large(unsigned_size));
    }
    ruma::signatures::hash_and_sign_event(
        key.server_name.as_str(),
        &key.pair,
        &mut obj,
        &rules.redaction,
    )
    .map_err(|e| match e {
        ruma::signatures::JsonError::PduTooLarge => too_large(unsigned_size),
        e => Error::internal(format!("signing event: {e}")),
    })?;

    let size = serde_json::to_vec(&obj).map_err(Error::internal)?.len();
    if size > MAX_PDU_BYTES {
        return Err(too_large(size));
    }
    let hash = ruma::signatures::reference_hash(&obj, rules)
        .map_err(|e| Error::too_large(format!("event cannot be hashed: {e}")))?;
    let event_id = EventId::parse(format!("${hash}")).map_err(Error::internal)?;
    Pdu::from_json(event_id, obj)
}

fn depth_int(depth: u64) -> Result<ruma::Int> {
    ruma::Int::try_from(depth).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_over_255_bytes_are_refused() {
        let mut obj = CanonicalJsonObject::new();
        obj.insert("type".into(), CanonicalJsonValue::String("a".repeat(255)));
        obj.insert(
            "state_key".into(),
            CanonicalJsonValue::String(String::new()),
        );
        assert!(check_field_sizes(&obj).is_ok());
        for field in ["type", "state_key", "sender", "room_id"] {
            let mut long = obj.clone();
            long.insert(field.into(), CanonicalJsonValue::String("a".repeat(256)));
            let err = check_field_sizes(&long).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
