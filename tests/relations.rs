//! Relations and threads as Element uses them: edits, thread replies, reactions (unique per
//! sender and key), references, bundled aggregations, `/relations` in all three forms with
//! pagination and recursion, and `/threads`.

mod common;

use common::{Client, Server};
use serde_json::{json, Value};

async fn send(c: &Client, room: &str, kind: &str, content: Value) -> (u16, Value) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    c.raw(
        "PUT",
        &format!("/_matrix/client/v3/rooms/{room}/send/{kind}/r{n}"),
        Some(&content.to_string()),
    )
    .await
}

async fn send_ok(c: &Client, room: &str, kind: &str, content: Value) -> String {
    let (st, v) = send(c, room, kind, content).await;
    assert_eq!(st, 200, "{v}");
    v["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_threads_reactions_and_references_are_related_and_bundled() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let room = alice.public_room_with(&[&bob, &carol]).await;
    let room = room.to_string();
    let root = send_ok(
        &alice,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "hello"}),
    )
    .await;
    let edit = |n: &str| {
        json!({"msgtype": "m.text", "body": format!("* {n}"), "m.new_content": {"msgtype": "m.text", "body": n},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}})
    };
    send_ok(&alice, &room, "m.room.message", edit("hello there")).await;
    let edit2 = send_ok(&alice, &room, "m.room.message", edit("hello, everyone")).await;
    // An edit by someone else is not applied.
    send_ok(&bob, &room, "m.room.message", edit("bob was here")).await;
    let thread = |b: &str| {
        json!({"msgtype": "m.text", "body": b,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": true, "m.in_reply_to": {"event_id": root}}})
    };
    send_ok(&bob, &room, "m.room.message", thread("first reply")).await;
    let reply2 = send_ok(&bob, &room, "m.room.message", thread("second reply")).await;
    let react = |key: &str, target: &str| json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}});
    let thumbs = send_ok(&bob, &room, "m.reaction", react("👍", &root)).await;
    let (st, v) = send(&bob, &room, "m.reaction", react("👍", &root)).await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_DUPLICATE_ANNOTATION"))
    );
    send_ok(&bob, &room, "m.reaction", react("❤️", &root)).await;
    send_ok(&carol, &room, "m.reaction", react("👍", &root)).await;
    send_ok(&carol, &room, "m.reaction", react("🎉", &reply2)).await;
    let reference = send_ok(
        &alice,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "see above",
        "m.relates_to": {"rel_type": "m.reference", "event_id": root}}),
    )
    .await;

    // Bundled aggregations on the root, as alice sees it.
    let (_, ev) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/event/{root}"),
            None,
        )
        .await;
    let rel = &ev["unsigned"]["m.relations"];
    assert_eq!(rel["m.replace"]["event_id"], edit2.as_str());
    assert_eq!(
        ev["content"]["body"], "hello",
        "the original content is left as it was"
    );
    assert_eq!(rel["m.thread"]["count"], 2);
    assert_eq!(rel["m.thread"]["latest_event"]["event_id"], reply2.as_str());
    assert_eq!(rel["m.thread"]["current_user_participated"], true);
    assert_eq!(
        rel["m.reference"]["chunk"],
        json!([{"event_id": reference}])
    );
    assert!(rel.get("m.annotation").is_none());
    let (_, ev) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/event/{root}"),
            None,
        )
        .await;
    assert_eq!(
        ev["unsigned"]["m.relations"]["m.thread"]["current_user_participated"],
        false
    );
    // The same in /sync's timeline.
    let (_, sync) = bob
        .raw(
            "GET",
            "/_matrix/client/v3/sync?filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A50%7D%7D%7D",
            None,
        )
        .await;
    let in_sync = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == root.as_str())
        .expect("the root in bob's timeline");
    assert_eq!(in_sync["unsigned"]["m.relations"]["m.thread"]["count"], 2);

    // /relations: all children, newest first, paginated.
    let base = format!("/_matrix/client/v1/rooms/{room}/relations/{root}");
    let (st, page1) = bob.raw("GET", &format!("{base}?limit=3"), None).await;
    assert_eq!(st, 200, "{page1}");
    assert_eq!(page1["chunk"].as_array().unwrap().len(), 3);
    assert_eq!(page1["chunk"][0]["event_id"], reference.as_str());
    let next = page1["next_batch"].as_str().unwrap();
    let (_, page2) = bob
        .raw("GET", &format!("{base}?limit=50&from={next}"), None)
        .await;
    let total = 3 + page2["chunk"].as_array().unwrap().len();
    assert_eq!(total, 9, "3 edits, 2 replies, 3 reactions, 1 reference");
    assert!(page2.get("next_batch").is_none_or(Value::is_null));
    // By relation type, and by relation and event type.
    let (_, ann) = bob.raw("GET", &format!("{base}/m.annotation"), None).await;
    assert_eq!(ann["chunk"].as_array().unwrap().len(), 3);
    let (_, typed) = bob
        .raw(
            "GET",
            &format!("{base}/m.thread/m.room.message?dir=f"),
            None,
        )
        .await;
    let bodies: Vec<&str> = typed["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["first reply", "second reply"]);
    // Recursion reaches the reaction to a thread reply.
    let (_, rec) = bob
        .raw("GET", &format!("{base}/m.annotation?recurse=true"), None)
        .await;
    assert_eq!(rec["chunk"].as_array().unwrap().len(), 4);
    assert_eq!(rec["recursion_depth"], 3);

    // /threads lists the root; "participated" only for those who took part.
    let (_, th) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v1/rooms/{room}/threads"),
            None,
        )
        .await;
    assert_eq!(th["chunk"][0]["event_id"], root.as_str());
    assert_eq!(
        th["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"],
        2
    );
    let (_, mine) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v1/rooms/{room}/threads?include=participated"),
            None,
        )
        .await;
    assert_eq!(mine["chunk"], json!([]));
    let (_, bobs) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v1/rooms/{room}/threads?include=participated"),
            None,
        )
        .await;
    assert_eq!(bobs["chunk"].as_array().unwrap().len(), 1);

    // A redacted reaction no longer blocks the same one again.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/redact/{thumbs}/x1"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    send_ok(&bob, &room, "m.reaction", react("👍", &root)).await;

    // Someone who cannot see the room cannot list its relations.
    let dave = s.user("dave").await;
    let (st, _) = dave.raw("GET", &base, None).await;
    assert_eq!(st, 404);
}
