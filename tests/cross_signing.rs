//! Cross-signing: key upload (free the first time, with the password to replace), signature
//! upload (only the signer's own signatures), and the keys as `/keys/query` shows them.

mod common;

use common::Server;
use serde_json::{json, Value};

fn key(user: &str, usage: &str, pk: &str) -> Value {
    json!({"user_id": user, "usage": [usage], "keys": {format!("ed25519:{pk}"): pk}})
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_signing_keys_and_signatures() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let a = alice.uid().to_string();
    let b = bob.uid().to_string();
    let upload = "/_matrix/client/v3/keys/device_signing/upload";
    let keys = json!({"master_key": key(&a, "master", "MASTERA"), "self_signing_key": key(&a, "self_signing", "SELFA"),
        "user_signing_key": key(&a, "user_signing", "USERA")});
    // Element's probe (an empty body) changes nothing and needs nothing; self-signing keys
    // without any master key are refused as the spec says (issue 18).
    let (st, v) = alice.raw("POST", upload, Some("{}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = alice
        .raw(
            "POST",
            upload,
            Some(&json!({"self_signing_key": key(&a, "self_signing", "SELFA")}).to_string()),
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_MISSING_PARAM")),
        "{v}"
    );
    // The first upload needs no password.
    let (st, v) = alice.raw("POST", upload, Some(&keys.to_string())).await;
    assert_eq!(st, 200, "{v}");
    // The same again is fine; a different master key asks for the password (UIA 401).
    let (st, _) = alice.raw("POST", upload, Some(&keys.to_string())).await;
    assert_eq!(st, 200);
    let replaced = json!({"master_key": key(&a, "master", "MASTERA2")});
    let (st, uia) = alice.raw("POST", upload, Some(&replaced.to_string())).await;
    assert_eq!(st, 401, "{uia}");
    assert!(uia["flows"].is_array());
    let session = uia["session"].as_str().unwrap();
    // Keys for someone else are refused.
    let (st, _) = bob
        .raw(
            "POST",
            upload,
            Some(&json!({"master_key": key(&a, "master", "EVIL")}).to_string()),
        )
        .await;
    assert_eq!(st, 400);

    // The unstable path Element still calls first works too, with the password.
    let mut with_auth = replaced.clone();
    with_auth["auth"] = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "password", "session": session});
    let (st, v) = alice
        .raw(
            "POST",
            "/_matrix/client/unstable/keys/device_signing/upload",
            Some(&with_auth.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // Bob uploads device keys and cross-signing keys; Alice signs Bob's master key.
    let bob_device = bob
        .raw("GET", "/_matrix/client/v3/account/whoami", None)
        .await
        .1["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dev_keys = json!({"device_keys": {"user_id": b, "device_id": bob_device, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {format!("ed25519:{bob_device}"): "DEVKEY", format!("curve25519:{bob_device}"): "CURVE"},
        "signatures": {&b: {format!("ed25519:{bob_device}"): "selfsig"}}}});
    let (st, v) = bob
        .raw(
            "POST",
            "/_matrix/client/v3/keys/upload",
            Some(&dev_keys.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let bob_keys = json!({"master_key": key(&b, "master", "MASTERB"), "self_signing_key": key(&b, "self_signing", "SELFB")});
    assert_eq!(
        bob.raw("POST", upload, Some(&bob_keys.to_string())).await.0,
        200
    );
    let sigs = "/_matrix/client/v3/keys/signatures/upload";
    // Bob signs his device with his self-signing key.
    let body = json!({&b: {&bob_device: {"user_id": b, "device_id": bob_device, "signatures": {&b: {"ed25519:SELFB": "devsig"}}}}});
    let (st, v) = bob.raw("POST", sigs, Some(&body.to_string())).await;
    assert_eq!(
        (st, v["failures"].as_object().map_or(0, |f| f.len())),
        (200, 0),
        "{v}"
    );
    // Alice signs Bob's master key (with her user-signing key); her entry only.
    let body = json!({&b: {"MASTERB": {"user_id": b, "keys": {"ed25519:MASTERB": "MASTERB"},
        "signatures": {&a: {"ed25519:USERA": "trust"}, &b: {"ed25519:FORGED": "x"}}}}});
    let (st, v) = alice.raw("POST", sigs, Some(&body.to_string())).await;
    assert_eq!(st, 200, "{v}");
    // Alice cannot sign Bob's device directly, nor an unknown key.
    let body = json!({&b: {&bob_device: {"signatures": {&a: {"ed25519:USERA": "nope"}}}, "NOSUCHKEY": {"signatures": {&a: {"ed25519:USERA": "n"}}}}});
    let (_, v) = alice.raw("POST", sigs, Some(&body.to_string())).await;
    assert_eq!(v["failures"][&b].as_object().unwrap().len(), 2, "{v}");

    // What /keys/query shows, to Alice and to Bob.
    let q = json!({"device_keys": {&a: [], &b: []}}).to_string();
    let (_, seen_by_alice) = alice
        .raw("POST", "/_matrix/client/v3/keys/query", Some(&q))
        .await;
    assert_eq!(
        seen_by_alice["master_keys"][&a]["keys"]["ed25519:MASTERA2"],
        "MASTERA2"
    );
    assert_eq!(
        seen_by_alice["user_signing_keys"][&a]["keys"]["ed25519:USERA"],
        "USERA"
    );
    assert!(
        seen_by_alice["user_signing_keys"].get(&b).is_none(),
        "only the owner sees a user-signing key"
    );
    let master_b = &seen_by_alice["master_keys"][&b];
    assert_eq!(master_b["signatures"][&a]["ed25519:USERA"], "trust");
    assert!(
        master_b["signatures"].get(&b).is_none(),
        "nobody signs in someone else's name"
    );
    let dev = &seen_by_alice["device_keys"][&b][&bob_device];
    assert_eq!(dev["signatures"][&b]["ed25519:SELFB"], "devsig");
    assert_eq!(
        dev["signatures"][&b][format!("ed25519:{bob_device}")],
        "selfsig"
    );
    assert!(dev["signatures"].get(&a).is_none());
}
