//! Simplified sliding sync (MSC4186): lists by recency with ranges, required_state,
//! timeline_limit, room subscriptions, incremental positions and extensions.

mod common;

use common::Server;
use serde_json::json;

const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

#[tokio::test(flavor = "multi_thread")]
async fn lists_rooms_by_recency() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let mut rooms = Vec::new();
    for name in ["one", "two", "three"] {
        let (_, v) = alice
            .raw(
                "POST",
                "/_matrix/client/v3/createRoom",
                Some(&json!({"name": name}).to_string()),
            )
            .await;
        rooms.push(v["room_id"].as_str().unwrap().to_owned());
    }
    let r1 = ruma::OwnedRoomId::try_from(rooms[0].as_str()).unwrap();
    alice.send_text(&r1, "first").await.unwrap();
    alice.send_text(&r1, "second").await.unwrap();
    alice.send_text(&r1, "third").await.unwrap();
    let body = json!({
        "lists": {"all": {"ranges": [[0, 1]], "required_state": [["m.room.name", ""], ["m.room.member", "$ME"]], "timeline_limit": 2}},
        "extensions": {"to_device": {"enabled": true}, "e2ee": {"enabled": true}, "account_data": {"enabled": true}}
    });
    let (st, v) = alice.raw("POST", PATH, Some(&body.to_string())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lists"]["all"]["count"], 3);
    let got: Vec<&String> = v["rooms"].as_object().unwrap().keys().collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let one = &v["rooms"][&rooms[0]];
    assert_eq!(one["name"], "one");
    assert_eq!(one["initial"], true);
    let tl = one["timeline"].as_array().unwrap();
    assert_eq!(tl.len(), 2);
    assert_eq!(tl[1]["content"]["body"], "third");
    assert_eq!(one["limited"], true);
    let kinds: Vec<&str> = one["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"m.room.name") && kinds.contains(&"m.room.member"),
        "{kinds:?}"
    );
    assert!(one["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] != "m.room.create"));
    assert!(
        v["rooms"].get(&rooms[2]).is_some(),
        "the newest room is second by recency"
    );
    assert!(v["extensions"]["account_data"]["global"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "m.push_rules"));
    assert!(v["extensions"]["to_device"]["next_batch"].is_string());

    // Incremental: only what changed.
    let pos = v["pos"].as_str().unwrap().to_owned();
    let r2 = ruma::OwnedRoomId::try_from(rooms[1].as_str()).unwrap();
    alice.send_text(&r2, "news in two").await.unwrap();
    let (_, v) = alice
        .raw(
            "POST",
            &format!("{PATH}?pos={pos}&timeout=0"),
            Some(&body.to_string()),
        )
        .await;
    let changed: Vec<&String> = v["rooms"].as_object().unwrap().keys().collect();
    assert_eq!(changed, [&rooms[1]], "{v}");
    assert_eq!(
        v["rooms"][&rooms[1]]["timeline"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"]["body"],
        "news in two"
    );

    // A room subscription brings a room outside the ranges.
    let sub = json!({"lists": {"all": {"ranges": [[0, 0]], "timeline_limit": 1}},
        "room_subscriptions": {&rooms[2]: {"required_state": [["*", "*"]], "timeline_limit": 1}}});
    let (_, v) = alice.raw("POST", PATH, Some(&sub.to_string())).await;
    assert!(v["rooms"].get(&rooms[2]).is_some());
    let all_state = v["rooms"][&rooms[2]]["required_state"].as_array().unwrap();
    assert!(all_state.iter().any(|e| e["type"] == "m.room.create"));
}

/// A sliding-sync request through ruma's client types (what matrix-rust-sdk sends).
fn request(
    pos: Option<&str>,
    range: (u32, u32),
    timeout_ms: u64,
) -> ruma::api::client::sync::sync_events::v5::Request {
    use ruma::api::client::sync::sync_events::v5;
    let mut req = v5::Request::new();
    req.pos = pos.map(str::to_owned);
    req.conn_id = Some("room-list".into());
    req.timeout = Some(std::time::Duration::from_millis(timeout_ms));
    let mut list = v5::request::List::default();
    list.ranges = vec![(range.0.into(), range.1.into())];
    list.room_details.timeline_limit = 1u32.into();
    list.room_details.required_state = vec![
        (ruma::events::StateEventType::RoomMember, "$LAZY".into()),
        (ruma::events::StateEventType::RoomName, String::new()),
    ];
    req.lists.insert("all".into(), list);
    req.extensions.typing.enabled = Some(true);
    req
}

fn member_keys(room: &ruma::api::client::sync::sync_events::v5::response::Room) -> Vec<String> {
    room.required_state
        .iter()
        .filter(|e| e.get_field::<String>("type").unwrap().as_deref() == Some("m.room.member"))
        .map(|e| e.get_field::<String>("state_key").unwrap().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_remember_what_the_client_holds() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut rooms = Vec::new();
    for name in ["r1", "r2", "r3"] {
        let room = alice
            .create_room(|r| {
                r.name = Some(name.into());
                r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat);
            })
            .await;
        rooms.push(room);
    }
    let (r2, r3) = (rooms[1].clone(), rooms[2].clone());

    // The newest room first.
    let first = alice.send(request(None, (0, 0), 0)).await.unwrap();
    assert_eq!(first.rooms.keys().collect::<Vec<_>>(), [&r3]);
    assert_eq!(first.rooms[&r3].initial, Some(true));
    let pos1 = first.pos.clone();

    // Sliding the range over an unchanged room sends it, at once, as new to the client.
    let started = std::time::Instant::now();
    let second = alice
        .send(request(Some(&pos1), (1, 1), 10_000))
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(second.rooms.keys().collect::<Vec<_>>(), [&r2]);
    assert_eq!(second.rooms[&r2].initial, Some(true));
    assert_eq!(second.rooms[&r2].name.as_deref(), Some("r2"));

    // Both held and unchanged: nothing to send.
    let third = alice
        .send(request(Some(&second.pos), (0, 1), 0))
        .await
        .unwrap();
    assert!(third.rooms.is_empty(), "{:?}", third.rooms.keys());

    // A lost response: the previous position is still accepted and the room comes again.
    let retry = alice
        .send(request(Some(&second.pos), (1, 1), 0))
        .await
        .unwrap();
    assert!(retry.rooms.is_empty());
    let (st, v) = alice
        .raw(
            "POST",
            &format!("{PATH}?pos={pos1}&conn_id=room-list"),
            Some("{}"),
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_UNKNOWN_POS")),
        "older positions are forgotten: {v}"
    );
    let (st, v) = alice
        .raw("POST", &format!("{PATH}?pos=nonsense"), Some("{}"))
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_UNKNOWN_POS")),
        "{v}"
    );
    let (st, _) = alice
        .raw(
            "POST",
            &format!("{PATH}?pos={}&conn_id=other", retry.pos),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 400, "positions belong to their connection");

    // A long poll wakes for a new message; $LAZY sends the sender's member event once.
    bob.join(&r3).await.unwrap();
    let caught = alice
        .send(request(Some(&retry.pos), (0, 1), 0))
        .await
        .unwrap();
    let pos = caught.pos.clone();
    let poll = {
        let alice = alice.clone();
        tokio::spawn(async move {
            alice
                .send(request(Some(&pos), (0, 1), 20_000))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    bob.send_text(&r3, "hello from bob").await.unwrap();
    let woke = poll.await.unwrap();
    let room = &woke.rooms[&r3];
    assert_eq!(room.initial, None);
    assert_eq!(room.timeline.len(), 1);
    assert_eq!(
        room.timeline[0]
            .get_field::<serde_json::Value>("content")
            .unwrap()
            .unwrap()["body"],
        "hello from bob"
    );
    let bob_id = bob.uid().to_string();
    let lazy_sent = caught
        .rooms
        .get(&r3)
        .is_some_and(|r| member_keys(r).contains(&bob_id))
        || member_keys(room).contains(&bob_id);
    assert!(
        lazy_sent,
        "bob's member event reaches the client with his first message"
    );
    bob.send_text(&r3, "again").await.unwrap();
    let next = alice
        .send(request(Some(&woke.pos), (0, 1), 0))
        .await
        .unwrap();
    assert!(
        !member_keys(&next.rooms[&r3]).contains(&bob_id),
        "sent once"
    );
    assert_eq!(next.rooms[&r3].num_live, Some(1u32.into()));

    // Typing in a held room reaches the typing extension.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{r3}/typing/{bob_id}"),
            Some(r#"{"typing": true, "timeout": 10000}"#),
        )
        .await;
    assert_eq!(st, 200);
    let typing = alice
        .send(request(Some(&next.pos), (0, 1), 0))
        .await
        .unwrap();
    let t = typing.extensions.typing.rooms[&r3].deserialize().unwrap();
    assert_eq!(t.content.user_ids, [bob.uid().to_owned()]);

    // Leaving a held room tells the client; the list shrinks.
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{r2}/leave"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let after = alice
        .send(request(Some(&typing.pos), (0, 2), 0))
        .await
        .unwrap();
    let left = &after.rooms[&r2];
    let last = left.timeline.last().unwrap();
    assert_eq!(
        last.get_field::<String>("type").unwrap().as_deref(),
        Some("m.room.member")
    );
    assert_eq!(after.lists["all"].count, 2u32.into());
}

/// A read receipt that clears a room's unread counts sends the room again with the new counts,
/// though nothing new happened in it (issue 18: the count stayed stale).
#[tokio::test(flavor = "multi_thread")]
async fn reading_a_room_sends_its_new_counts() {
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    bob.join(&room).await.unwrap();
    bob.send_text(&room, "are you there?").await.unwrap();
    let last = bob.send_text(&room, "alice?").await.unwrap();
    let count = |r: &ruma::api::client::sync::sync_events::v5::Response| {
        r.rooms
            .get(&room)
            .and_then(|x| x.unread_notifications.notification_count)
            .map(u64::from)
    };
    let first = alice.send(request(None, (0, 0), 0)).await.unwrap();
    assert_eq!(count(&first), Some(2));
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let second = alice
        .send(request(Some(&first.pos), (0, 0), 0))
        .await
        .unwrap();
    assert_eq!(count(&second), Some(0), "{:?}", second.rooms.keys());
    // And once said, not again.
    let third = alice
        .send(request(Some(&second.pos), (0, 0), 0))
        .await
        .unwrap();
    assert!(third.rooms.is_empty());
}
