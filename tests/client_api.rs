//! Client-server API behaviour against the real server over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use ruma::{
    api::client::{
        account::{register, whoami},
        membership::{ban_user, invite_user, kick_user, leave_room},
        room::create_room,
        session::{login, logout},
        state::{get_state_event_for_key, send_state_event},
        uiaa,
    },
    events::{room::name::RoomNameEventContent, StateEventType},
    serde::Raw,
};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn registration_login_and_tokens() {
    let s = Server::start().await;
    let c = s.client();
    // A bare register answers 401 with the flows.
    let mut req = register::v3::Request::new();
    req.username = Some("alice".into());
    req.password = Some("secret".into());
    let err = c.send(req.clone()).await.unwrap_err();
    assert_eq!(err.status, 401);
    assert_eq!(err.body["flows"][0]["stages"][0], "m.login.dummy");
    assert!(err.body["session"].is_string());

    req.auth = Some(uiaa::AuthData::Dummy(uiaa::Dummy::new()));
    let resp = c.send(req.clone()).await.unwrap();
    assert_eq!(
        resp.user_id.as_str(),
        format!("@alice:localhost:{}", s.port)
    );
    let token = resp.access_token.unwrap();

    // Taken and invalid usernames.
    assert_eq!(
        c.send(req.clone()).await.unwrap_err().errcode,
        "M_USER_IN_USE"
    );
    let mut bad = req.clone();
    bad.username = Some("Bad Name!".into());
    assert_eq!(c.send(bad).await.unwrap_err().errcode, "M_INVALID_USERNAME");
    let (st, body) = c
        .raw(
            "GET",
            "/_matrix/client/v3/register/available?username=alice",
            None,
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (400, Some("M_USER_IN_USE")));
    let (st, body) = c
        .raw(
            "GET",
            "/_matrix/client/v3/register/available?username=nobody",
            None,
        )
        .await;
    assert_eq!((st, body["available"].as_bool()), (200, Some(true)));

    // whoami with header and with the legacy query parameter.
    let mut authed = s.client();
    authed.token = Some(token.clone());
    assert_eq!(
        authed
            .send(whoami::v3::Request::new())
            .await
            .unwrap()
            .user_id,
        resp.user_id
    );
    let (st, body) = s
        .client()
        .raw(
            "GET",
            &format!("/_matrix/client/v3/account/whoami?access_token={token}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");

    // Missing and unknown tokens.
    assert_eq!(
        s.client()
            .send(whoami::v3::Request::new())
            .await
            .unwrap_err()
            .errcode,
        "M_MISSING_TOKEN"
    );
    let mut wrong = s.client();
    wrong.token = Some("hv_nope".into());
    let e = wrong.send(whoami::v3::Request::new()).await.unwrap_err();
    assert_eq!((e.status, e.errcode.as_str()), (401, "M_UNKNOWN_TOKEN"));

    // Login: wrong password is 403, right one gives a new device.
    let id = uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new("alice".into()));
    let bad_login = login::v3::Request::new(login::v3::LoginInfo::Password(
        login::v3::Password::new(id.clone(), "wrong".into()),
    ));
    assert_eq!(c.send(bad_login).await.unwrap_err().errcode, "M_FORBIDDEN");
    let ok = c
        .send(login::v3::Request::new(login::v3::LoginInfo::Password(
            login::v3::Password::new(id, "secret".into()),
        )))
        .await
        .unwrap();
    assert_ne!(Some(ok.device_id.clone()), resp.device_id);

    // Logout revokes the token.
    authed.send(logout::v3::Request::new()).await.unwrap();
    assert_eq!(
        authed
            .send(whoami::v3::Request::new())
            .await
            .unwrap_err()
            .errcode,
        "M_UNKNOWN_TOKEN"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn device_deletion_needs_password_uia() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let me = alice.send(whoami::v3::Request::new()).await.unwrap();
    let device = me.device_id.unwrap();
    let path = format!("/_matrix/client/v3/devices/{device}");
    let (st, body) = alice.raw("DELETE", &path, Some("{}")).await;
    assert_eq!(st, 401);
    let session = body["session"].as_str().unwrap().to_owned();
    let bad = json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "nope", "session": session}});
    let (st, body) = alice.raw("DELETE", &path, Some(&bad.to_string())).await;
    assert_eq!((st, body["errcode"].as_str()), (401, Some("M_FORBIDDEN")));
    let good = json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "password", "session": session}});
    let (st, _) = alice.raw("DELETE", &path, Some(&good.to_string())).await;
    assert_eq!(st, 200);
    assert_eq!(
        alice
            .send(whoami::v3::Request::new())
            .await
            .unwrap_err()
            .errcode,
        "M_UNKNOWN_TOKEN"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rooms_membership_and_permissions() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let eve = s.user("eve").await;

    let room = alice
        .create_room(|r| {
            r.name = Some("Support".into());
            r.topic = Some("Helping".into());
            r.room_alias_name = Some("support".into());
        })
        .await;
    // Created as room version 12: the room ID is the create event's hash, no server name.
    assert!(!room.as_str().contains(':'), "{room}");

    // Non-members can neither send nor read.
    assert_eq!(
        eve.send_text(&room, "hi").await.unwrap_err().errcode,
        "M_FORBIDDEN"
    );
    let (st, _) = eve
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = eve
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/state"),
            None,
        )
        .await;
    assert_eq!(st, 403);

    // Private room: joining without invite fails; with invite works.
    assert_eq!(bob.join(&room).await.unwrap_err().errcode, "M_FORBIDDEN");
    alice
        .send(invite_user::v3::Request::new(
            room.clone(),
            invite_user::v3::InviteUserId::new(bob.uid().to_owned()).into(),
        ))
        .await
        .unwrap();
    bob.join(&room).await.unwrap();
    let eid = bob.send_text(&room, "hello from bob").await.unwrap();
    assert!(eid.as_str().starts_with('$'));

    // Bob has power 0: cannot kick, cannot change power levels or the name.
    alice
        .send(invite_user::v3::Request::new(
            room.clone(),
            invite_user::v3::InviteUserId::new(eve.uid().to_owned()).into(),
        ))
        .await
        .unwrap();
    eve.join(&room).await.unwrap();
    let e = bob
        .send(kick_user::v3::Request::new(
            room.clone(),
            eve.uid().to_owned(),
        ))
        .await
        .unwrap_err();
    assert_eq!((e.status, e.errcode.as_str()), (403, "M_FORBIDDEN"));
    let pl = json!({"users": {bob.uid().as_str(): 100}});
    let (st, body) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"),
            Some(&pl.to_string()),
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let name = send_state_event::v3::Request::new(
        room.clone(),
        &ruma::events::EmptyStateKey,
        &RoomNameEventContent::new("Mine".into()),
    )
    .unwrap();
    assert_eq!(bob.send(name).await.unwrap_err().errcode, "M_FORBIDDEN");

    // The creator can rename; state reads back.
    let name = send_state_event::v3::Request::new(
        room.clone(),
        &ruma::events::EmptyStateKey,
        &RoomNameEventContent::new("Renamed".into()),
    )
    .unwrap();
    alice.send(name).await.unwrap();
    let got = bob
        .send(get_state_event_for_key::v3::Request::new(
            room.clone(),
            StateEventType::RoomName,
            String::new(),
        ))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(got.event_or_content.get()).unwrap();
    assert_eq!(v["name"], "Renamed");

    // Ban: eve is removed and cannot rejoin or send.
    alice
        .send(ban_user::v3::Request::new(
            room.clone(),
            eve.uid().to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(eve.join(&room).await.unwrap_err().errcode, "M_FORBIDDEN");
    assert_eq!(
        eve.send_text(&room, "let me in").await.unwrap_err().errcode,
        "M_FORBIDDEN"
    );

    // Members and joined members.
    let (st, body) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let joined = body["joined"].as_object().unwrap();
    assert!(joined.contains_key(alice.uid().as_str()) && joined.contains_key(bob.uid().as_str()));
    assert!(!joined.contains_key(eve.uid().as_str()));

    // Alias resolves; join by alias works for an invited user.
    let (st, body) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/directory/room/%23support:localhost:{}",
                s.port
            ),
            None,
        )
        .await;
    assert_eq!((st, body["room_id"].as_str()), (200, Some(room.as_str())));

    // Bob leaves: he keeps history up to his leave, but cannot send.
    bob.send(leave_room::v3::Request::new(room.clone()))
        .await
        .unwrap();
    assert_eq!(
        bob.send_text(&room, "still here?")
            .await
            .unwrap_err()
            .errcode,
        "M_FORBIDDEN"
    );
    alice.send_text(&room, "after bob left").await.unwrap();
    let bodies = bob.message_bodies(&room).await;
    assert_eq!(bodies, vec!["hello from bob".to_owned()]);
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/forget"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
            None,
        )
        .await;
    assert_eq!(st, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn send_is_idempotent_and_sync_long_polls() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| r.preset = Some(create_room::v3::RoomPreset::PublicChat))
        .await;
    bob.join(&room).await.unwrap();

    // Same transaction ID -> same event.
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/txn1");
    let body = r#"{"msgtype":"m.text","body":"once"}"#;
    let (_, a) = alice.raw("PUT", &path, Some(body)).await;
    let (_, b) = alice.raw("PUT", &path, Some(body)).await;
    assert_eq!(a["event_id"], b["event_id"]);
    assert_eq!(alice.message_bodies(&room).await, vec!["once".to_owned()]);

    // Initial sync, then a long-poll that wakes when alice sends.
    let first = bob.sync(None, 0).await;
    assert!(first.rooms.join.contains_key(&room));
    let since = first.next_batch.clone();
    let bob2 = bob.clone();
    let since2 = since.clone();
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        let r = bob2.sync(Some(&since2), 10_000).await;
        (t.elapsed(), r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.send_text(&room, "wake up").await.unwrap();
    let (elapsed, r) = waiter.await.unwrap();
    assert!(
        elapsed < Duration::from_secs(5),
        "long-poll did not wake: {elapsed:?}"
    );
    let tl = &r.rooms.join[&room].timeline.events;
    let bodies: Vec<Value> = tl
        .iter()
        .map(|e| e.deserialize_as::<Value>().unwrap()["content"]["body"].clone())
        .collect();
    assert_eq!(bodies, vec![json!("wake up")]);

    // An incremental sync with nothing new times out empty.
    let t = Instant::now();
    let r2 = bob.sync(Some(&r.next_batch), 300).await;
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert!(r2.rooms.join.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_rejected_and_changes_nothing() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let room = alice.create_room(|_| {}).await;
    let send = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/");

    let (st, body) = alice
        .raw("PUT", &format!("{send}a"), Some("{not json"))
        .await;
    assert_eq!((st, body["errcode"].as_str()), (400, Some("M_NOT_JSON")));
    let (st, body) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(r#"{"invite": "not-a-list"}"#),
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (400, Some("M_BAD_JSON")));
    let (st, body) = alice
        .raw("PUT", &format!("{send}b"), Some(r#"{"n": 1.5}"#))
        .await;
    assert_eq!((st, body["errcode"].as_str()), (400, Some("M_BAD_JSON")));
    let big = json!({"msgtype": "m.text", "body": "x".repeat(70_000)}).to_string();
    let (st, body) = alice.raw("PUT", &format!("{send}c"), Some(&big)).await;
    assert_eq!((st, body["errcode"].as_str()), (413, Some("M_TOO_LARGE")));
    // The server answers before reading the whole oversized body and closes the connection, so
    // the client may see a reset instead of the answer while still uploading: try a few times.
    let huge = format!("{{\"body\":\"{}\"}}", "y".repeat(2 * 1024 * 1024));
    // A client of its own: the connection the server drops must not be reused by later requests.
    let own = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..5 {
        let rb = own.put(format!(
            "{}/_matrix/client/v3/rooms/{room}/send/m.room.message/d",
            s.base
        ));
        if let Ok(resp) = rb
            .bearer_auth(alice.token.as_deref().unwrap())
            .body(huge.clone())
            .send()
            .await
        {
            let st = resp.status().as_u16();
            answer = Some((st, resp.json::<Value>().await.unwrap_or(Value::Null)));
            break;
        }
    }
    let (st, body) = answer.expect("no answer to the oversized request");
    assert_eq!((st, body["errcode"].as_str()), (413, Some("M_TOO_LARGE")));
    let (st, body) = alice
        .raw(
            "GET",
            "/_matrix/client/v3/rooms/!nope:localhost/messages?dir=b",
            None,
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (st, body) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/join/!unknown:localhost",
            Some("{}"),
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (404, Some("M_NOT_FOUND")));
    let (st, body) = alice
        .raw("GET", "/_matrix/client/v3/no/such/endpoint", None)
        .await;
    assert_eq!(
        (st, body["errcode"].as_str()),
        (404, Some("M_UNRECOGNIZED"))
    );
    let (st, _) = alice
        .raw("DELETE", "/_matrix/client/v3/createRoom", None)
        .await;
    assert_eq!(st, 405);
    let (st, body) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(r#"{"room_version": "1"}"#),
        )
        .await;
    assert_eq!(
        (st, body["errcode"].as_str()),
        (400, Some("M_UNSUPPORTED_ROOM_VERSION"))
    );

    // None of the rejected sends reached the room.
    assert!(alice.message_bodies(&room).await.is_empty());

    // CORS preflight is answered for browser clients.
    let resp = alice
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/_matrix/client/v3/sync", s.base),
        )
        .header("origin", "https://app.element.io")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn redaction_hides_content() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| r.preset = Some(create_room::v3::RoomPreset::PublicChat))
        .await;
    bob.join(&room).await.unwrap();
    let eid = alice.send_text(&room, "secret").await.unwrap();
    // Bob (power 0) may not redact alice's message.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/redact/{eid}/r1"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/redact/{eid}/r1"),
            Some(r#"{"reason":"oops"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (st, ev) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/event/{eid}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(ev["content"], json!({}));
    assert!(ev["unsigned"]["redacted_because"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn older_room_versions_work() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    for v in ["10", "11"] {
        let (st, body) = alice
            .raw(
                "POST",
                "/_matrix/client/v3/createRoom",
                Some(&json!({"room_version": v}).to_string()),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let room: ruma::OwnedRoomId = body["room_id"].as_str().unwrap().try_into().unwrap();
        assert!(room.as_str().ends_with(&format!(":localhost:{}", s.port)));
        alice.send_text(&room, "hi").await.unwrap();
        let (_, create) = alice
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{room}/state/m.room.create/"),
                None,
            )
            .await;
        assert_eq!(create["room_version"], v);
    }
    let _ = Raw::<Value>::from_json_string("{}".into());
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_rooms_created_at_once_get_distinct_ids() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let (a, b, c) = tokio::join!(
        alice.create_room(|_| {}),
        alice.create_room(|_| {}),
        alice.create_room(|_| {})
    );
    assert!(a != b && b != c && a != c);
}
