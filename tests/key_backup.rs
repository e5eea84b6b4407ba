//! Room key backup: versions, keys at three granularities, the better key kept, etags and
//! counts, writes only to the current version (M_WRONG_ROOM_KEYS_VERSION), and deletion.

mod common;

use common::Server;
use serde_json::{json, Value};

fn key(verified: bool, index: u64, forwarded: u64, data: &str) -> Value {
    json!({"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
        "session_data": {"ephemeral": data, "ciphertext": data, "mac": data}})
}

#[tokio::test(flavor = "multi_thread")]
async fn key_backup_versions_and_keys() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let base = "/_matrix/client/v3/room_keys";
    let (st, none) = alice.raw("GET", &format!("{base}/version"), None).await;
    assert_eq!((st, none["errcode"].as_str()), (404, Some("M_NOT_FOUND")));

    let algorithm = json!({"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "PK1", "signatures": {}}});
    let (st, v) = alice
        .raw(
            "POST",
            &format!("{base}/version"),
            Some(&algorithm.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let v1 = v["version"].as_str().unwrap().to_owned();
    let (_, info) = alice.raw("GET", &format!("{base}/version"), None).await;
    assert_eq!(
        (info["version"].as_str(), info["count"].as_u64()),
        (Some(v1.as_str()), Some(0))
    );
    assert_eq!(info["auth_data"]["public_key"], "PK1");
    let etag0 = info["etag"].as_str().unwrap().to_owned();

    // Keys for all rooms, one room, one session.
    let all = json!({"rooms": {"!r1:hs": {"sessions": {"s1": key(false, 5, 1, "a"), "s2": key(false, 0, 0, "b")}}}});
    let (st, r) = alice
        .raw(
            "PUT",
            &format!("{base}/keys?version={v1}"),
            Some(&all.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["count"], 2);
    assert_ne!(r["etag"].as_str(), Some(etag0.as_str()));
    let room = json!({"sessions": {"s3": key(false, 0, 0, "c")}});
    let (_, r) = alice
        .raw(
            "PUT",
            &format!("{base}/keys/!r2:hs?version={v1}"),
            Some(&room.to_string()),
        )
        .await;
    assert_eq!(r["count"], 3);
    // A worse key for s1 is ignored (etag unchanged), a better one replaces it.
    let etag = r["etag"].as_str().unwrap().to_owned();
    let (_, r) = alice
        .raw(
            "PUT",
            &format!("{base}/keys/!r1:hs/s1?version={v1}"),
            Some(&key(false, 9, 0, "worse").to_string()),
        )
        .await;
    assert_eq!(r["etag"].as_str(), Some(etag.as_str()));
    alice
        .raw(
            "PUT",
            &format!("{base}/keys/!r1:hs/s1?version={v1}"),
            Some(&key(true, 7, 3, "better").to_string()),
        )
        .await;
    let (_, s1) = alice
        .raw("GET", &format!("{base}/keys/!r1:hs/s1?version={v1}"), None)
        .await;
    assert_eq!(s1["session_data"]["ciphertext"], "better");
    let (_, everything) = alice
        .raw("GET", &format!("{base}/keys?version={v1}"), None)
        .await;
    assert_eq!(
        everything["rooms"]["!r2:hs"]["sessions"]["s3"]["session_data"]["ciphertext"],
        "c"
    );
    let (_, r1) = alice
        .raw("GET", &format!("{base}/keys/!r1:hs?version={v1}"), None)
        .await;
    assert_eq!(r1["sessions"].as_object().unwrap().len(), 2);
    let (st, _) = alice
        .raw(
            "GET",
            &format!("{base}/keys/!r1:hs/nope?version={v1}"),
            None,
        )
        .await;
    assert_eq!(st, 404);

    // Someone else sees none of it.
    let (st, _) = bob.raw("GET", &format!("{base}/version/{v1}"), None).await;
    assert_eq!(st, 404);

    // Auth data may change, the algorithm may not.
    let mut changed = algorithm.clone();
    changed["auth_data"]["public_key"] = json!("PK1b");
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("{base}/version/{v1}"),
            Some(&changed.to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let mut other = algorithm.clone();
    other["algorithm"] = json!("m.other");
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("{base}/version/{v1}"),
            Some(&other.to_string()),
        )
        .await;
    assert_eq!(st, 400);

    // A new version becomes current: writing to the old one is refused, naming the current.
    let (_, v) = alice
        .raw(
            "POST",
            &format!("{base}/version"),
            Some(&algorithm.to_string()),
        )
        .await;
    let v2 = v["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    let (st, e) = alice
        .raw(
            "PUT",
            &format!("{base}/keys?version={v1}"),
            Some(&all.to_string()),
        )
        .await;
    assert_eq!(
        (st, e["errcode"].as_str(), e["current_version"].as_str()),
        (403, Some("M_WRONG_ROOM_KEYS_VERSION"), Some(v2.as_str()))
    );

    // Deleting keys and versions.
    let (_, r) = alice
        .raw("DELETE", &format!("{base}/keys/!r1:hs?version={v1}"), None)
        .await;
    assert_eq!(r["count"], 1);
    let (st, _) = alice
        .raw("DELETE", &format!("{base}/version/{v1}"), None)
        .await;
    assert_eq!(st, 200);
    let (st, _) = alice
        .raw("GET", &format!("{base}/version/{v1}"), None)
        .await;
    assert_eq!(st, 404);
    let (_, latest) = alice.raw("GET", &format!("{base}/version"), None).await;
    assert_eq!(latest["version"].as_str(), Some(v2.as_str()));
}
