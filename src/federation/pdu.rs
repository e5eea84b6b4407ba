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
    crate::events::builder::check_field_sizes(&obj)
        .map_err(|e| Error::bad_json(format!("event {id}: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::builder::{build_pdu, EventTemplate, GraphFields};

    /// A server of its own, and a signed event of one of its users.
    pub(super) async fn server_and_event() -> (
        tempfile::TempDir,
        std::sync::Arc<Haven>,
        CanonicalJsonObject,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "server_name = \"hs.test\"\n[database]\npath = \"{}\"\n",
            dir.path().join("data").display()
        );
        let h =
            Haven::open(crate::config::Config::from_toml(&cfg, vec![], "test").unwrap()).unwrap();
        let rules = rules_for(&RoomVersionId::V11).unwrap();
        let room: ruma::OwnedRoomId = "!room:hs.test".try_into().unwrap();
        let sender: ruma::OwnedUserId = "@alice:hs.test".try_into().unwrap();
        let t = EventTemplate::new("m.room.message", serde_json::json!({ "body": "hello" }));
        let graph = GraphFields {
            room_id: Some(&room),
            sender: &sender,
            prev_events: vec![],
            auth_events: vec![],
            depth: 1,
        };
        let pdu = build_pdu(&t, graph, &rules, &h.key).unwrap();
        (dir, h, pdu.canonical().unwrap())
    }

    #[tokio::test]
    async fn tampered_content_is_redacted_and_forged_signatures_refused() {
        let (_dir, h, obj) = server_and_event().await;
        let v = RoomVersionId::V11;
        let ok = check_object(&h, &v, obj.clone()).await.unwrap();
        assert_eq!(ok.content_value()["body"], "hello");

        // Content changed after signing: the signature still covers the redacted form, so
        // the event is kept, redacted.
        let mut tampered = obj.clone();
        tampered.insert(
            "content".into(),
            CanonicalJsonValue::Object(
                [(
                    "body".to_owned(),
                    CanonicalJsonValue::String("changed".into()),
                )]
                .into(),
            ),
        );
        let kept = check_object(&h, &v, tampered).await.unwrap();
        assert_eq!(kept.content_value(), serde_json::json!({}));

        // A signature that is not the server's: refused.
        let mut forged = obj.clone();
        if let Some(CanonicalJsonValue::Object(sigs)) = forged.get_mut("signatures") {
            for (_, keys) in sigs.iter_mut() {
                if let CanonicalJsonValue::Object(k) = keys {
                    for (_, s) in k.iter_mut() {
                        *s = CanonicalJsonValue::String("A".repeat(86));
                    }
                }
            }
        }
        assert!(check_object(&h, &v, forged).await.is_err());

        // A field covered by the signature changed: refused.
        let mut moved = obj;
        moved.insert(
            "origin_server_ts".into(),
            CanonicalJsonValue::Integer(ruma::Int::from(1u32)),
        );
        assert!(check_object(&h, &v, moved).await.is_err());
    }
}

/// Fuzzing the PDU parser and checker with events from other servers gone wrong in every way
/// the generator finds: any JSON where a field should be, fields missing or added, nested
/// values, long strings. Whatever comes in, the answer is a result, never a panic.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            ".{0,40}".prop_map(serde_json::Value::from),
            "[$!@#][a-zA-Z0-9:._=-]{0,300}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".{0,12}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: &[&str] = &[
        "type",
        "state_key",
        "content",
        "depth",
        "prev_events",
        "auth_events",
        "hashes",
        "origin_server_ts",
        "unsigned",
        "redacts",
        "room_id",
        "signatures",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_json_is_parsed_or_refused(v in json()) {
            let raw = serde_json::value::to_raw_value(&v).unwrap();
            let _ = parse(&raw);
            if let Ok(obj) = serde_json::from_value::<CanonicalJsonObject>(v) {
                let _ = event_id(&obj, &RoomVersionId::V12);
                let _ = crate::events::builder::check_field_sizes(&obj);
            }
        }

    }

    proptest! {
        // Each case opens a server of its own: fewer of them.
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn a_mangled_event_is_checked_without_panicking(
            changes in prop::collection::vec((0..FIELDS.len(), prop::option::of(json())), 1..4),
            // Not the sender: another server's name would send the check looking for its keys.
            extra in prop::option::of(("[a-z_]{1,10}".prop_filter("not sender", |k| k != "sender"), json())),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (_dir, h, mut v) = {
                    let (d, h, obj) = tests::server_and_event().await;
                    (d, h, serde_json::to_value(obj).unwrap())
                };
                for (field, value) in &changes {
                    match value {
                        Some(value) => v[FIELDS[*field]] = value.clone(),
                        None => {
                            v.as_object_mut().unwrap().remove(FIELDS[*field]);
                        }
                    }
                }
                if let Some((k, value)) = &extra {
                    v[k.as_str()] = value.clone();
                }
                let raw = serde_json::value::to_raw_value(&v).unwrap();
                for version in [RoomVersionId::V10, RoomVersionId::V11, RoomVersionId::V12] {
                    let _ = check(&h, &version, &raw).await;
                }
            });
        }
    }
}
