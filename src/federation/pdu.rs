//! Checking PDUs received from other servers before anything else looks at them: size, event
//! ID (the reference hash), the signatures of every server that must have signed (with keys
//! valid when the event was sent), and the content hash (an event whose content does not match
//! its hash is kept redacted, as the spec says).

use ruma::{
    signatures::{PublicKeyMap, Verified},
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, RoomVersionId,
};
use serde_json::value::RawValue;

use crate::{
    error::{Error, Result},
    events::{builder::MAX_PDU_BYTES, Pdu},
    rooms::rules_for,
    Haven,
};

/// The event ID of PDU fields (room versions 3+: `$` and the reference hash).
pub fn event_id(obj: &CanonicalJsonObject, version: &RoomVersionId) -> Result<OwnedEventId> {
    let rules = rules_for(version)?;
    let hash = ruma::signatures::reference_hash(obj, &rules)
        .map_err(|e| Error::bad_json(format!("event cannot be hashed: {e}")))?;
    EventId::parse(format!("${hash}")).map_err(Error::internal)
}

/// Parses a PDU as received (any `unsigned` dropped) into canonical JSON.
pub fn parse(raw: &RawValue) -> Result<CanonicalJsonObject> {
    if raw.get().len() > MAX_PDU_BYTES {
        return Err(Error::too_large(format!(
            "event larger than {MAX_PDU_BYTES} bytes"
        )));
    }
    let mut obj: CanonicalJsonObject = serde_json::from_str(raw.get())
        .map_err(|e| Error::bad_json(format!("event is not canonical JSON: {e}")))?;
    obj.remove("unsigned");
    obj.remove("event_id");
    Ok(obj)
}

/// Verifies an incoming PDU's signatures and hash: the PDU to store (redacted when its content
/// hash does not match) or why it is refused.
pub async fn check(h: &Haven, version: &RoomVersionId, raw: &RawValue) -> Result<Pdu> {
    let obj = parse(raw)?;
    check_object(h, version, obj).await
}

pub async fn check_object(
    h: &Haven,
    version: &RoomVersionId,
    obj: CanonicalJsonObject,
) -> Result<Pdu> {
    let rules = rules_for(version)?;
    let id = event_id(&obj, version)?;
    let servers =
        ruma::signatures::required_server_signatures_to_verify_event(&obj, &rules.signatures)
            .map_err(|e| Error::bad_json(format!("event {id}: {e}")))?;
    let ts = match obj.get("origin_server_ts") {
        Some(CanonicalJsonValue::Integer(i)) => u64::try_from(i64::from(*i)).unwrap_or(0),
        _ => return Err(Error::bad_json(format!("event {id}: no origin_server_ts"))),
    };
    let mut keys = PublicKeyMap::new();
    for server in servers {
        let ids: Vec<String> = match obj.get("signatures") {
            Some(CanonicalJsonValue::Object(s)) => match s.get(server.as_str()) {
                Some(CanonicalJsonValue::Object(k)) => k.keys().cloned().collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        // Room versions 5+: a key counts only if it was valid when the event was sent.
        let valid_at = if rules.signatures.check_event_id_server {
            0
        } else {
            ts
        };
        let found = super::keys::verify_keys(h, &server, &ids, valid_at).await?;
        keys.insert(server.to_string(), found);
    }
    let verified = ruma::signatures::verify_event(&keys, &obj, &rules)
        .map_err(|e| Error::forbidden(format!("event {id}: bad signature: {e}")))?;
    let obj = match verified {
        Verified::All => obj,
        Verified::Signatures => {
            tracing::info!(event = %id, "content hash mismatch: keeping the event redacted");
            ruma::canonical_json::redact(obj, &rules.redaction, None)
                .map_err(|e| Error::bad_json(format!("event {id}: {e}")))?
        }
    };
    Pdu::from_json(id, obj)
}
