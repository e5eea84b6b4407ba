//! Ignored users: their messages and invites stay out of the ignoring user's /sync and
//! /messages.

mod common;

use common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn ignored_users_are_not_heard() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let room = alice.public_room_with(&[&bob, &carol]).await;
    let me = alice.uid().to_string();
    let body = serde_json::json!({"ignored_users": {bob.uid().to_string(): {}}}).to_string();
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/user/{me}/account_data/m.ignored_user_list"),
            Some(&body),
        )
        .await;
    assert_eq!(st, 200);
    bob.send_text(&room, "from bob").await.unwrap();
    carol.send_text(&room, "from carol").await.unwrap();
    let (_, sync) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let bodies: Vec<String> = sync["rooms"]["join"][room.as_str()]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    assert!(
        bodies.contains(&"from carol".to_owned()) && !bodies.contains(&"from bob".to_owned()),
        "{bodies:?}"
    );
    let msgs = alice.message_bodies(&room).await;
    assert!(msgs.contains(&"from carol".to_owned()) && !msgs.contains(&"from bob".to_owned()));
    // Bob's invites do not reach alice.
    let other = bob
        .create_room(|r| r.invite = vec![alice.uid().to_owned()])
        .await;
    let (_, sync) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(sync["rooms"]["invite"].get(other.as_str()).is_none());
    // Unignored, bob is heard again.
    alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/user/{me}/account_data/m.ignored_user_list"),
            Some(r#"{"ignored_users": {}}"#),
        )
        .await;
    bob.send_text(&room, "bob again").await.unwrap();
    assert!(alice
        .message_bodies(&room)
        .await
        .contains(&"bob again".to_owned()));
}
