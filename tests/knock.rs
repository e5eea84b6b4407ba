//! Knocking and restricted joins (room versions 7+ and 8+).

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn knocking_and_restricted_joins() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let dave = s.user("dave").await;
    // Knocking.
    let knockable = alice.create_room_json(json!({"preset": "private_chat", "name": "Ask first",
        "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]})).await;
    let (st, _) = carol
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{knockable}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 403, "joining needs an invite");
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/knock/{knockable}"),
            Some(r#"{"reason": "let me in"}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["room_id"], knockable.as_str());
    let (_, sync) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    let ks = &sync["rooms"]["knock"][&knockable]["knock_state"]["events"];
    assert!(
        ks.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.join_rules"),
        "{sync}"
    );
    let (_, m) = alice
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{knockable}/state/m.room.member/{}",
                bob.uid()
            ),
            None,
        )
        .await;
    assert_eq!(
        (m["membership"].as_str(), m["reason"].as_str()),
        (Some("knock"), Some("let me in"))
    );
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{knockable}/invite"),
            Some(&json!({"user_id": bob.uid()}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{knockable}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    // Knocking on a room that does not allow it is refused.
    let closed = alice
        .create_room_json(json!({"preset": "private_chat"}))
        .await;
    let (st, _) = carol
        .raw(
            "POST",
            &format!("/_matrix/client/v3/knock/{closed}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 403);

    // Restricted: members of the team room may join without an invite.
    let team = alice
        .create_room_json(json!({"preset": "public_chat", "name": "Team"}))
        .await;
    dave.raw(
        "POST",
        &format!("/_matrix/client/v3/join/{team}"),
        Some("{}"),
    )
    .await;
    let inner = alice.create_room_json(json!({"preset": "private_chat", "name": "Team only",
        "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": team}]}}]})).await;
    let (st, v) = dave
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{inner}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, m) = alice
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{inner}/state/m.room.member/{}",
                dave.uid()
            ),
            None,
        )
        .await;
    assert_eq!(
        m["join_authorised_via_users_server"],
        alice.uid().to_string()
    );
    let (st, _) = carol
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{inner}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 403, "carol is not in the team room");
}
