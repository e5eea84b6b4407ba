//! Room directory, user directory, tags, third-party protocols and reports.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn directories_tags_and_reports() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let town = alice.create_room_json(json!({"visibility": "public", "preset": "public_chat", "name": "Town square", "topic": "Everyone welcome", "room_alias_name": "town"})).await;
    let help = alice
        .create_room_json(
            json!({"visibility": "public", "preset": "public_chat", "name": "Help desk"}),
        )
        .await;
    let secret = alice
        .create_room_json(
            json!({"preset": "private_chat", "name": "Secret plans", "invite": [bob.uid()]}),
        )
        .await;
    bob.raw(
        "POST",
        &format!("/_matrix/client/v3/rooms/{town}/join"),
        Some("{}"),
    )
    .await;

    // Published rooms only, busiest first, paginated, filtered.
    let (st, list) = carol
        .raw("GET", "/_matrix/client/v3/publicRooms", None)
        .await;
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> = list["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [town.as_str(), help.as_str()]);
    assert_eq!(list["chunk"][0]["num_joined_members"], 2);
    assert_eq!(
        list["chunk"][0]["canonical_alias"],
        format!("#town:localhost:{}", s.port)
    );
    assert_eq!(list["total_room_count_estimate"], 2);
    let (_, p1) = carol
        .raw("GET", "/_matrix/client/v3/publicRooms?limit=1", None)
        .await;
    let next = p1["next_batch"].as_str().unwrap();
    let (_, p2) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v3/publicRooms?limit=1&since={next}"),
            None,
        )
        .await;
    assert_eq!(p2["chunk"][0]["room_id"], help.as_str());
    assert!(p2.get("next_batch").is_none_or(|n| n.is_null()));
    let (_, found) = carol
        .raw(
            "POST",
            "/_matrix/client/v3/publicRooms",
            Some(r#"{"filter": {"generic_search_term": "WELCOME"}}"#),
        )
        .await;
    assert_eq!(found["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(found["chunk"][0]["room_id"], town.as_str());

    // Visibility: a member without power may not unlist; the creator may.
    let vis = format!("/_matrix/client/v3/directory/list/room/{town}");
    let (_, v) = carol.raw("GET", &vis, None).await;
    assert_eq!(v["visibility"], "public");
    let (st, e) = bob
        .raw("PUT", &vis, Some(r#"{"visibility": "private"}"#))
        .await;
    assert_eq!((st, e["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (st, _) = alice
        .raw("PUT", &vis, Some(r#"{"visibility": "private"}"#))
        .await;
    assert_eq!(st, 200);
    let (_, list) = carol
        .raw("GET", "/_matrix/client/v3/publicRooms", None)
        .await;
    assert_eq!(list["chunk"].as_array().unwrap().len(), 1);

    // User directory: people sharing a room, or in public rooms; nobody else.
    let dave = s.user("dave").await;
    let search = |c: &common::Client, term: &str| {
        let c = c.clone();
        let body = json!({"search_term": term}).to_string();
        async move {
            c.raw(
                "POST",
                "/_matrix/client/v3/user_directory/search",
                Some(&body),
            )
            .await
            .1
        }
    };
    let r = search(&bob, "ali").await;
    assert_eq!(r["results"][0]["user_id"], alice.uid().to_string());
    let r = search(&carol, "bob").await;
    assert_eq!(
        r["results"].as_array().unwrap().len(),
        1,
        "bob is in a public room"
    );
    let r = search(&carol, "dave").await;
    assert_eq!(r["results"], json!([]), "dave shares nothing with carol");
    let _ = dave;

    // Tags, in the room's account data too.
    let me = bob.uid().to_string();
    let tag = format!("/_matrix/client/v3/user/{me}/rooms/{secret}/tags/m.favourite");
    bob.raw(
        "POST",
        &format!("/_matrix/client/v3/rooms/{secret}/join"),
        Some("{}"),
    )
    .await;
    let (st, _) = bob.raw("PUT", &tag, Some(r#"{"order": 0.5}"#)).await;
    assert_eq!(st, 200);
    let (_, t) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/user/{me}/rooms/{secret}/tags"),
            None,
        )
        .await;
    assert_eq!(t["tags"]["m.favourite"]["order"], 0.5);
    let (_, sync) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    let ad = &sync["rooms"]["join"][&secret]["account_data"]["events"];
    assert!(
        ad.as_array().unwrap().iter().any(|e| e["type"] == "m.tag"),
        "{ad}"
    );
    let (st, _) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v3/user/{me}/rooms/{secret}/tags"),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = bob.raw("DELETE", &tag, None).await;
    assert_eq!(st, 200);
    let (_, t) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/user/{me}/rooms/{secret}/tags"),
            None,
        )
        .await;
    assert_eq!(t["tags"], json!({}));

    // Room summaries: public rooms for anyone (by ID or alias, even without a token),
    // private ones for their members only.
    let (st, sum) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v1/room_summary/{town}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{sum}");
    assert_eq!(
        (sum["name"].as_str(), sum["num_joined_members"].as_u64()),
        (Some("Town square"), Some(2))
    );
    // ruma leaves out the default join rule, "public".
    assert!(sum.get("join_rule").is_none_or(|j| j == "public"), "{sum}");
    assert!(sum["room_version"].is_string());
    let (st, _) = carol
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v1/room_summary/%23town:localhost:{}",
                s.port
            ),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let anon = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/client/unstable/im.nheko.summary/rooms/{town}/summary",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 200);
    let (st, _) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v1/room_summary/{secret}"),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, sum) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v1/room_summary/{secret}"),
            None,
        )
        .await;
    assert_eq!((st, sum["membership"].as_str()), (200, Some("join")));

    // Third-party protocols: none here.
    let (st, p) = bob
        .raw("GET", "/_matrix/client/v3/thirdparty/protocols", None)
        .await;
    assert_eq!((st, p), (200, json!({})));
    // Dehydrated devices (MSC3814) are not offered: clients are told so cleanly.
    for (method, path) in [
        (
            "GET",
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
        ),
        (
            "PUT",
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
        ),
        (
            "POST",
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/D/events",
        ),
    ] {
        let (st, v) = bob.raw(method, path, Some("{}")).await;
        assert_eq!(
            (st, v["errcode"].as_str()),
            (404, Some("M_UNRECOGNIZED")),
            "{path}"
        );
    }

    // Reports: of a visible event, of a room; not of what one cannot see.
    let ev = alice
        .send_text(
            &ruma::OwnedRoomId::try_from(town.as_str()).unwrap(),
            "spam spam",
        )
        .await
        .unwrap();
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{town}/report/{ev}"),
            Some(r#"{"reason": "spam"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = carol
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{secret}/report/{ev}"),
            Some(r#"{"reason": "x"}"#),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{town}/report"),
            Some(r#"{"reason": "off topic"}"#),
        )
        .await;
    assert_eq!(st, 200);
}

/// Deleting an alias takes it out of the room's canonical alias, so the room's state and the
/// public directory stop naming it (issue 18).
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_alias_leaves_the_canonical_alias_and_the_directory() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let room = alice
        .create_room_json(
            json!({ "preset": "public_chat", "visibility": "public", "room_alias_name": "lobby" }),
        )
        .await;
    let alias = format!("#lobby:localhost:{}", s.port);
    let (_, before) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/"),
            None,
        )
        .await;
    assert_eq!(before["alias"], alias.as_str());
    let (st, v) = alice
        .raw(
            "DELETE",
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                alias.replace('#', "%23")
            ),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, after) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/"),
            None,
        )
        .await;
    assert!(after.get("alias").is_none(), "{after}");
    let (_, dir) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/publicRooms",
            Some(&json!({ "filter": { "generic_search_term": "lobby" } }).to_string()),
        )
        .await;
    assert_eq!(dir["chunk"], json!([]), "{dir}");
}
