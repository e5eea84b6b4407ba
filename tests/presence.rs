//! Presence: set and read, only between people who share a room, and in /sync.

mod common;

use common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn presence_is_shared_with_roommates() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    alice.public_room_with(&[&bob]).await;
    let (_, first) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let b = bob.uid().to_string();
    let path = format!("/_matrix/client/v3/presence/{b}/status");
    let (st, _) = bob
        .raw(
            "PUT",
            &path,
            Some(r#"{"presence": "unavailable", "status_msg": "at lunch"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (st, p) = alice.raw("GET", &path, None).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        (p["presence"].as_str(), p["status_msg"].as_str()),
        (Some("unavailable"), Some("at lunch"))
    );
    assert!(p["last_active_ago"].as_u64().is_some());
    let (st, _) = carol.raw("GET", &path, None).await;
    assert_eq!(st, 403, "carol shares no room with bob");
    let (st, _) = alice
        .raw("PUT", &path, Some(r#"{"presence": "offline"}"#))
        .await;
    assert_eq!(st, 403, "only one's own presence");
    let (_, inc) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    let events = inc["presence"]["events"].as_array().unwrap();
    let bobs = events
        .iter()
        .find(|e| e["sender"] == b.as_str())
        .expect("bob's presence");
    assert_eq!(bobs["content"]["presence"], "unavailable");
    assert_eq!(bobs["content"]["status_msg"], "at lunch");
    // Carol's sync says nothing of bob.
    let (_, c) = carol.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(c["presence"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["sender"] != b.as_str()));
}
