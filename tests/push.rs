//! Push: rules evaluated for every event (counts and highlights in /sync, /notifications),
//! rule CRUD, and delivery to an HTTP pusher through a local push gateway double.

mod common;

use common::{Client, Server};
use haven_testkit::{wait_for, webhook_double};
use serde_json::{json, Value};

async fn say(c: &Client, room: &str, content: Value) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (st, v) = c
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/p{n}"),
            Some(&content.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["event_id"].as_str().unwrap().to_owned()
}

async fn counts(c: &Client, room: &str) -> (u64, u64) {
    let (_, s) = c.raw("GET", "/_matrix/client/v3/sync", None).await;
    let u = &s["rooms"]["join"][room]["unread_notifications"];
    (
        u["notification_count"].as_u64().unwrap_or(0),
        u["highlight_count"].as_u64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_count_notify_and_push() {
    // The gateway double is on loopback, which push gateways may not be by default.
    let s = Server::start_with(vec![(
        "HAVEN_OUTBOUND__IP_RANGE_ALLOWLIST",
        "[\"127.0.0.0/8\"]",
    )])
    .await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let room = alice.public_room_with(&[&bob, &carol]).await;
    let room = room.to_string();
    let me = alice.uid().to_string();

    // The push rules are in the initial sync's account data.
    let (_, sync) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let rules = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .expect("m.push_rules");
    assert!(rules["content"]["global"]["override"].is_array());

    // Messages notify; a mention highlights; the sender's own messages count for nobody.
    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "hello all"}),
    )
    .await;
    say(&alice, &room, json!({"msgtype": "m.text", "body": "hi"})).await;
    let mention = say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "alice, look",
        "m.mentions": {"user_ids": [me]}}),
    )
    .await;
    assert_eq!(counts(&alice, &room).await, (2, 1));
    assert_eq!(counts(&bob, &room).await, (1, 0));

    // /notifications: newest first, unread; only=highlight.
    let (_, n) = alice
        .raw("GET", "/_matrix/client/v3/notifications", None)
        .await;
    let list = n["notifications"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["event"]["event_id"], mention.as_str());
    assert_eq!(list[0]["read"], false);
    let (_, hl) = alice
        .raw(
            "GET",
            "/_matrix/client/v3/notifications?only=highlight",
            None,
        )
        .await;
    assert_eq!(hl["notifications"].as_array().unwrap().len(), 1);

    // Reading clears the counts.
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{mention}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(counts(&alice, &room).await, (0, 0));
    let (_, n) = alice
        .raw("GET", "/_matrix/client/v3/notifications", None)
        .await;
    assert_eq!(n["notifications"][0]["read"], true);

    // Rule CRUD: a keyword that highlights, disabled, re-enabled, removed.
    let kw = "/_matrix/client/v3/pushrules/global/content/urgent";
    let (st, v) = alice
        .raw(
            "PUT",
            kw,
            Some(
                &json!({"pattern": "urgent", "actions": ["notify", {"set_tweak": "highlight"}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, got) = alice.raw("GET", kw, None).await;
    assert_eq!(got["pattern"], "urgent");
    let u1 = say(
        &carol,
        &room,
        json!({"msgtype": "m.text", "body": "this is urgent"}),
    )
    .await;
    assert_eq!(counts(&alice, &room).await, (1, 1));
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("{kw}/enabled"),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (_, en) = alice.raw("GET", &format!("{kw}/enabled"), None).await;
    assert_eq!(en["enabled"], false);
    say(
        &carol,
        &room,
        json!({"msgtype": "m.text", "body": "also urgent"}),
    )
    .await;
    assert_eq!(
        counts(&alice, &room).await,
        (2, 1),
        "disabled: a plain notification"
    );
    let (st, _) = alice
        .raw("PUT", &format!("{kw}/actions"), Some(r#"{"actions": []}"#))
        .await;
    assert_eq!(st, 200);
    let (_, act) = alice.raw("GET", &format!("{kw}/actions"), None).await;
    assert_eq!(act["actions"], json!([]));
    // Changes reach sync as account data.
    let (_, sync) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let rules = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .unwrap()
        .clone();
    assert!(rules["content"]["global"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule_id"] == "urgent"));
    let (st, _) = alice.raw("DELETE", kw, None).await;
    assert_eq!(st, 200);
    let (st, _) = alice.raw("GET", kw, None).await;
    assert_eq!(st, 404);
    let (st, e) = alice
        .raw(
            "DELETE",
            "/_matrix/client/v3/pushrules/global/override/.m.rule.master",
            None,
        )
        .await;
    assert!(
        st == 403 || st == 400,
        "server-default rules cannot be deleted: {st} {e}"
    );
    let (st, _) = alice
        .raw(
            "PUT",
            "/_matrix/client/v3/pushrules/global/override/x?before=nope",
            Some(r#"{"actions": ["notify"], "conditions": []}"#),
        )
        .await;
    assert_eq!(st, 404);
    let _ = u1;

    // An HTTP pusher: the gateway fails once, then gets the notification; a rejected pushkey
    // removes the pusher.
    let (gw, url) = webhook_double().await;
    gw.fail.store(1, std::sync::atomic::Ordering::SeqCst);
    let pusher = json!({"kind": "http", "app_id": "org.haven.test", "pushkey": "pk1", "app_display_name": "Test",
        "device_display_name": "Phone", "lang": "en", "data": {"url": format!("{url}/_matrix/push/v1/notify"), "format": "event_id_only"}});
    let (st, v) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/pushers/set",
            Some(&pusher.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, list) = alice.raw("GET", "/_matrix/client/v3/pushers", None).await;
    assert_eq!(list["pushers"][0]["pushkey"], "pk1");
    let pushed = say(&bob, &room, json!({"msgtype": "m.text", "body": "ping"})).await;
    wait_for("the push", || gw.all().len() >= 2).await;
    let hooks = gw.all();
    assert_eq!(hooks[0].path, "/_matrix/push/v1/notify");
    let n = hooks[1].json()["notification"].clone();
    assert_eq!(n["event_id"], pushed.as_str());
    assert_eq!(n["room_id"], room.as_str());
    assert_eq!(n["devices"][0]["pushkey"], "pk1");
    assert!(n["counts"]["unread"].as_u64().unwrap() >= 1);
    assert!(n.get("content").is_none(), "event_id_only");
    let (st, _) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/pushers/set",
            Some(&json!({"kind": null, "app_id": "org.haven.test", "pushkey": "pk1"}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let (_, list) = alice.raw("GET", "/_matrix/client/v3/pushers", None).await;
    assert_eq!(list["pushers"], json!([]));
}

/// The legacy mention rules current clients still look for are among the defaults, and match
/// only events without `m.mentions` (issue 18): a plain-text mention of someone's display name
/// or user name highlights, "@room" from a moderator highlights everyone, and an event with
/// `m.mentions` is judged by its mentions alone.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_mention_rules_match_only_events_without_m_mentions() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice.public_room_with(&[&bob]).await.to_string();

    let (st, rules) = bob.raw("GET", "/_matrix/client/v3/pushrules/", None).await;
    assert_eq!(st, 200, "{rules}");
    let ids = |kind: &str| -> Vec<String> {
        rules["global"][kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for id in [".m.rule.contains_display_name", ".m.rule.roomnotif"] {
        assert!(ids("override").contains(&id.to_owned()), "{id}: {rules}");
    }
    assert!(ids("content").contains(&".m.rule.contains_user_name".to_owned()));

    let (st, v) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.uid()),
            Some(r#"{"displayname": "Queen of Hearts"}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "ask the Queen of Hearts"}),
    )
    .await;
    assert_eq!(
        counts(&alice, &room).await,
        (1, 1),
        "display name without m.mentions"
    );
    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "the Queen of Hearts again", "m.mentions": {}}),
    )
    .await;
    assert_eq!(counts(&alice, &room).await, (2, 1), "m.mentions decides");

    say(
        &alice,
        &room,
        json!({"msgtype": "m.text", "body": "@room wake up"}),
    )
    .await;
    assert_eq!(
        counts(&bob, &room).await,
        (1, 1),
        "@room from the room's creator"
    );
    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "@room me too"}),
    )
    .await;
    assert_eq!(
        counts(&alice, &room).await,
        (3, 1),
        "@room from someone without the power"
    );

    say(
        &alice,
        &room,
        json!({"msgtype": "m.text", "body": "bob: look"}),
    )
    .await;
    assert_eq!(
        counts(&bob, &room).await,
        (2, 2),
        "user name without m.mentions"
    );
    say(
        &alice,
        &room,
        json!({"msgtype": "m.text", "body": "bob again", "m.mentions": {}}),
    )
    .await;
    assert_eq!(counts(&bob, &room).await, (3, 2));
}

/// In a room, the members with the server-default rules whom a message does not single out
/// share one evaluation; the one it mentions (by `m.mentions`, user name or display name) and
/// the one with rules of their own are each judged on their own.
#[tokio::test(flavor = "multi_thread")]
async fn each_member_is_judged_by_their_own_mentions_and_rules() {
    let s = Server::start().await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let dave = s.user("dave").await;
    let erin = s.user("erin").await;
    let quiet = s.user("quiet").await;
    let room = bob
        .public_room_with(&[&carol, &dave, &erin, &quiet])
        .await
        .to_string();
    let (st, v) = erin
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", erin.uid()),
            Some(r#"{"displayname": "Night Owl"}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = quiet
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/pushrules/global/room/{room}"),
            Some(r#"{"actions": []}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "hello Night owl"}),
    )
    .await;
    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "over to you", "m.mentions": {"user_ids": [dave.uid()]}}),
    )
    .await;
    say(
        &bob,
        &room,
        json!({"msgtype": "m.text", "body": "carol, a word"}),
    )
    .await;
    assert_eq!(counts(&carol, &room).await, (3, 1), "named by user name");
    assert_eq!(counts(&dave, &room).await, (3, 1), "in m.mentions");
    assert_eq!(counts(&erin, &room).await, (3, 1), "named by display name");
    assert_eq!(
        counts(&quiet, &room).await,
        (0, 0),
        "their own rule for the room"
    );
}
