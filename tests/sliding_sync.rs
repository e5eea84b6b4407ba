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
