//! `/search`: every word must match, only what the searcher may see, newest first, with
//! context, pagination and grouping by room.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn search_finds_visible_messages() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let room = alice.public_room_with(&[&bob]).await;
    let private = carol.create_room(|_| {}).await;
    alice
        .send_text(&room, "The shelter opens at nine")
        .await
        .unwrap();
    bob.send_text(&room, "unrelated chat").await.unwrap();
    let newest = bob
        .send_text(&room, "Bring blankets to the SHELTER, please")
        .await
        .unwrap();
    carol
        .send_text(&private, "secret shelter plans")
        .await
        .unwrap();

    let search = |body: serde_json::Value, batch: Option<String>| {
        let alice = alice.clone();
        async move {
            let path = match batch {
                Some(b) => format!("/_matrix/client/v3/search?next_batch={b}"),
                None => "/_matrix/client/v3/search".into(),
            };
            let (st, v) = alice
                .raw(
                    "POST",
                    &path,
                    Some(&json!({"search_categories": {"room_events": body}}).to_string()),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            v["search_categories"]["room_events"].clone()
        }
    };
    let r = search(
        json!({"search_term": "shelter", "order_by": "recent"}),
        None,
    )
    .await;
    assert_eq!(r["count"], 2, "{r}");
    assert_eq!(r["results"][0]["result"]["event_id"], newest.to_string());
    assert_eq!(r["highlights"], json!(["shelter"]));
    let r = search(json!({"search_term": "shelter nine"}), None).await;
    assert_eq!(r["count"], 1);
    assert_eq!(
        r["results"][0]["result"]["content"]["body"],
        "The shelter opens at nine"
    );
    let r = search(json!({"search_term": "secret"}), None).await;
    assert_eq!(
        r["count"], 0,
        "carol's private room is not alice's to search"
    );

    // Context around each result.
    let r = search(
        json!({"search_term": "blankets", "event_context": {"before_limit": 1, "after_limit": 1}}),
        None,
    )
    .await;
    let ctx = &r["results"][0]["context"];
    assert_eq!(ctx["events_before"][0]["content"]["body"], "unrelated chat");
    assert!(
        ctx["events_after"].as_array().is_none_or(|a| a.is_empty()),
        "{ctx}"
    );

    // Pages, and groups by room.
    let r = search(
        json!({"search_term": "shelter", "filter": {"limit": 1}}),
        None,
    )
    .await;
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    let next = r["next_batch"].as_str().unwrap().to_owned();
    let r2 = search(
        json!({"search_term": "shelter", "filter": {"limit": 1}}),
        Some(next),
    )
    .await;
    assert_eq!(r2["results"].as_array().unwrap().len(), 1);
    assert_ne!(
        r["results"][0]["result"]["event_id"],
        r2["results"][0]["result"]["event_id"]
    );
    let r = search(
        json!({"search_term": "shelter", "groupings": {"group_by": [{"key": "room_id"}]}}),
        None,
    )
    .await;
    assert_eq!(
        r["groups"]["room_id"][room.as_str()]["results"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{r}"
    );
    // Filtered to other rooms: nothing.
    let r = search(
        json!({"search_term": "shelter", "filter": {"rooms": [private]}}),
        None,
    )
    .await;
    assert_eq!(r["count"], 0);
}
