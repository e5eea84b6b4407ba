//! The stored form of a room event: a PDU as canonical JSON plus its parsed fields.

use std::sync::Arc;

use ruma::{
    events::TimelineEventType, CanonicalJsonObject, EventId, MilliSecondsSinceUnixEpoch,
    OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// A PDU. `json` is exactly what was hashed and signed (event IDs of room version 3+ are not part
/// of it); the other fields are parsed from it for quick access.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    /// The room the event belongs to; for a v12 `m.room.create` event, derived from its ID.
    pub room_id: OwnedRoomId,
    /// Whether `room_id` appears in the JSON (absent only for v12 create events).
    has_room_id_field: bool,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub depth: UInt,
    /// `redacts` at the top level (v1-v10) or in the content (v11+).
    pub redacts: Option<OwnedEventId>,
    /// The PDU exactly as stored (canonical JSON text).
    pub json: Box<RawValue>,
}

#[derive(Deserialize)]
struct Fields {
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<OwnedEventId>,
    #[serde(default)]
    auth_events: Vec<OwnedEventId>,
    depth: UInt,
    redacts: Option<OwnedEventId>,
}

#[derive(Deserialize)]
struct RedactsContent {
    redacts: Option<OwnedEventId>,
}

impl Pdu {
    /// Parses a PDU whose ID is already known.
    pub fn from_json(event_id: OwnedEventId, json: CanonicalJsonObject) -> Result<Self> {
        let raw = serde_json::value::to_raw_value(&json).map_err(Error::internal)?;
        Self::from_raw(event_id, raw)
    }

    /// Parses stored canonical JSON text (one pass; the text is kept as is).
    pub fn from_raw(event_id: OwnedEventId, json: Box<RawValue>) -> Result<Self> {
        let f: Fields = serde_json::from_str(json.get())
            .map_err(|e| Error::bad_json(format!("invalid event: {e}")))?;
        let has_room_id_field = f.room_id.is_some();
        let room_id = match f.room_id {
            Some(r) => r,
            // v12: the room ID of a create event is its own reference hash.
            None if f.kind == TimelineEventType::RoomCreate => {
                RoomId::parse(format!("!{}", &event_id.as_str()[1..]))
                    .map_err(|e| Error::bad_json(format!("invalid event id: {e}")))?
            }
            None => return Err(Error::bad_json("event has no room_id")),
        };
        let redacts = match f.redacts {
            Some(r) => Some(r),
            None if f.kind == TimelineEventType::RoomRedaction => {
                serde_json::from_str::<RedactsContent>(f.content.get())
                    .ok()
                    .and_then(|c| c.redacts)
            }
            None => None,
        };
        Ok(Self {
            event_id,
            room_id,
            has_room_id_field,
            sender: f.sender,
            origin_server_ts: f.origin_server_ts,
            kind: f.kind,
            content: f.content,
            state_key: f.state_key,
            prev_events: f.prev_events,
            auth_events: f.auth_events,
            depth: f.depth,
            redacts,
            json,
        })
    }

    pub fn from_bytes(event_id: &str, bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(Error::internal)?;
        let raw = RawValue::from_string(text.to_owned()).map_err(Error::internal)?;
        let id = EventId::parse(event_id).map_err(Error::internal)?;
        Self::from_raw(id, raw)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.json.get().as_bytes().to_vec())
    }

    /// The PDU as a canonical JSON object (for redaction and signing checks).
    pub fn canonical(&self) -> Result<CanonicalJsonObject> {
        serde_json::from_str(self.json.get()).map_err(Error::internal)
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> serde_json::Value {
        serde_json::from_str(self.content.get()).unwrap_or(serde_json::Value::Null)
    }

    /// A string field of the content, if present.
    pub fn content_str(&self, field: &str) -> Option<String> {
        self.content_value()
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.has_room_id_field.then_some(&*self.room_id)
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        false
    }
}

pub type PduRef = Arc<Pdu>;
