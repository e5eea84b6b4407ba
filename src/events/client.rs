//! Client-facing serialisations of PDUs: the client-server `ClientEvent` format and stripped
//! state for invites.

use ruma::serde::Raw;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

use super::pdu::Pdu;

/// Formats `pdu` for the client-server API. `unsigned` carries per-request data (age,
/// transaction_id, prev_content, redacted_because).
pub fn client_event(pdu: &Pdu, unsigned: Map<String, Value>) -> Value {
    let mut ev = Map::with_capacity(9);
    ev.insert("content".into(), pdu.content_value());
    ev.insert("event_id".into(), json!(pdu.event_id));
    ev.insert("origin_server_ts".into(), json!(pdu.origin_server_ts));
    ev.insert("room_id".into(), json!(pdu.room_id));
    ev.insert("sender".into(), json!(pdu.sender));
    ev.insert("type".into(), json!(pdu.kind.to_string()));
    if let Some(sk) = &pdu.state_key {
        ev.insert("state_key".into(), json!(sk));
    }
    if let Some(r) = &pdu.redacts {
        // Room versions 11+ carry `redacts` in the content; clients still read the top level.
        ev.insert("redacts".into(), json!(r));
    }
    ev.insert("unsigned".into(), Value::Object(unsigned));
    Value::Object(ev)
}

/// Stripped state event, as sent with invites.
pub fn stripped_state(pdu: &Pdu) -> Value {
    json!({
        "type": pdu.kind.to_string(),
        "state_key": pdu.state_key.clone().unwrap_or_default(),
        "content": pdu.content_value(),
        "sender": pdu.sender,
    })
}

/// Wraps JSON as one of ruma's typed raw events (no re-validation: the server built it).
pub fn raw<T>(v: &Value) -> Result<Raw<T>> {
    Ok(Raw::from_json(
        serde_json::value::to_raw_value(v).map_err(Error::internal)?,
    ))
}
