//! Room upgrades: the new room carries the old one's settings and points back; the old room
//! gets a tombstone and goes read-only; aliases and the directory listing move.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn upgrading_replaces_the_room() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let (st, v) = alice
        .raw("POST", "/_matrix/client/v3/createRoom", Some(&json!({"room_version": "11", "preset": "public_chat",
            "visibility": "public", "name": "Old hall", "topic": "Meetings", "room_alias_name": "hall"}).to_string()))
        .await;
    assert_eq!(st, 200, "{v}");
    let old = v["room_id"].as_str().unwrap().to_owned();
    bob.raw(
        "POST",
        &format!("/_matrix/client/v3/rooms/{old}/join"),
        Some("{}"),
    )
    .await;
    let up = format!("/_matrix/client/v3/rooms/{old}/upgrade");
    let (st, e) = bob.raw("POST", &up, Some(r#"{"new_version": "12"}"#)).await;
    assert_eq!((st, e["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (st, e) = alice
        .raw("POST", &up, Some(r#"{"new_version": "3"}"#))
        .await;
    assert_eq!(
        (st, e["errcode"].as_str()),
        (400, Some("M_UNSUPPORTED_ROOM_VERSION"))
    );
    let (st, v) = alice
        .raw("POST", &up, Some(r#"{"new_version": "12"}"#))
        .await;
    assert_eq!(st, 200, "{v}");
    let new = v["replacement_room"].as_str().unwrap().to_owned();

    let state = |room: &str, kind: &str| {
        let a = alice.clone();
        let path = format!("/_matrix/client/v3/rooms/{room}/state/{kind}/");
        async move { a.raw("GET", &path, None).await.1 }
    };
    assert_eq!(
        state(&new, "m.room.create").await["predecessor"]["room_id"],
        old.as_str()
    );
    assert_eq!(state(&new, "m.room.create").await["room_version"], "12");
    assert_eq!(state(&new, "m.room.name").await["name"], "Old hall");
    assert_eq!(state(&new, "m.room.topic").await["topic"], "Meetings");
    assert_eq!(
        state(&new, "m.room.join_rules").await["join_rule"],
        "public"
    );
    assert_eq!(
        state(&old, "m.room.tombstone").await["replacement_room"],
        new.as_str()
    );
    // The alias and the listing follow the room.
    let (_, a) = alice
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/directory/room/%23hall:localhost:{}",
                s.port
            ),
            None,
        )
        .await;
    assert_eq!(a["room_id"], new.as_str());
    assert_eq!(
        state(&new, "m.room.canonical_alias").await["alias"],
        format!("#hall:localhost:{}", s.port)
    );
    let (_, list) = bob.raw("GET", "/_matrix/client/v3/publicRooms", None).await;
    let ids: Vec<&str> = list["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new.as_str()]);
    // Ordinary members can no longer talk in the old room, and can join the new one.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{old}/send/m.room.message/b1"),
            Some(r#"{"msgtype": "m.text", "body": "hi"}"#),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{new}/join"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
}
