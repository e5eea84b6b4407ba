//! Federation between two Haven servers on loopback, each with its own name, TLS listener and
//! signing key.

mod common;

use common::{Port, Server};
use haven_testkit::unused_port;
use ruma::{
    api::federation::authentication::{XMatrix, XMatrixSigningInput},
    signatures::{Ed25519KeyPair, PublicKeyMap},
    CanonicalJsonObject, OwnedServerName,
};
use serde_json::{json, Value};

fn insecure() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// The keys a key document lists, as a map for verifying signatures of `server`.
fn key_map(server: &str, doc: &Value) -> PublicKeyMap {
    let mut keys = std::collections::BTreeMap::new();
    for (id, k) in doc["verify_keys"].as_object().unwrap() {
        keys.insert(
            id.clone(),
            ruma::serde::Base64::parse(k["key"].as_str().unwrap()).unwrap(),
        );
    }
    PublicKeyMap::from([(server.to_owned(), keys)])
}

/// Verifies `server`'s signature (only) on a JSON object.
fn signed_by(obj: &Value, server: &str, keys: &PublicKeyMap) -> bool {
    let mut only = obj.clone();
    only["signatures"] = json!({ server: obj["signatures"][server].clone() });
    let canonical: CanonicalJsonObject = serde_json::from_value(only).unwrap();
    ruma::signatures::verify_json(keys, &canonical).is_ok()
}

/// A GET of `base` + `path` signed as `origin` with `pair` for `destination`.
async fn signed_get(
    base: &str,
    path: &str,
    origin: &str,
    destination: &str,
    pair: &Ed25519KeyPair,
) -> (u16, Value) {
    signed_request("GET", base, path, None, origin, destination, pair).await
}

/// A request to `base` + `path` (with a JSON `body`) signed as `origin` for `destination`.
async fn signed_request(
    method: &str,
    base: &str,
    path: &str,
    body: Option<Value>,
    origin: &str,
    destination: &str,
    pair: &Ed25519KeyPair,
) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(bytes.clone())
        .unwrap();
    let input = XMatrixSigningInput::new(
        OwnedServerName::try_from(origin).unwrap(),
        OwnedServerName::try_from(destination).unwrap(),
        pair,
    );
    let x = XMatrix::sign_http_request(&req, input).unwrap();
    let mut rb = insecure()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("authorization", http::HeaderValue::from(&x));
    if !bytes.is_empty() {
        rb = rb.header("content-type", "application/json").body(bytes);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_fetch_keys_and_verify_requests() {
    let (fa, fb) = (Port::new(), Port::new());
    let (pa, pb) = (fa.port(), fb.port());
    let a = Server::start_federating(fa, &[pb]).await;
    let b = Server::start_federating(fb, &[pa]).await;
    let (name_a, name_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let fed_b = format!("https://127.0.0.1:{pb}");

    // B's key document, over TLS on its federation listener, self-signed and current.
    let doc: Value = insecure()
        .get(format!("{fed_b}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["server_name"], name_b.as_str());
    let keys_b = key_map(&name_b, &doc);
    assert!(signed_by(&doc, &name_b, &keys_b), "self-signed: {doc}");
    let now = ruma::MilliSecondsSinceUnixEpoch::now().get();
    assert!(doc["valid_until_ts"].as_u64().unwrap() > u64::from(now));
    let version: Value = insecure()
        .get(format!("{fed_b}/_matrix/federation/v1/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["server"]["name"], "Haven");

    // A user of A reads a profile on B: A signs, B fetches A's keys and checks the signature.
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", bob.uid()),
            Some(r#"{"displayname": "Bob of B"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/profile/{}", bob.uid()),
            None,
        )
        .await;
    assert_eq!((st, &v["displayname"]), (200, &json!("Bob of B")), "{v}");
    let (st, v) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/profile/@nobody:{name_b}"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (404, Some("M_NOT_FOUND")),
        "{v}"
    );

    // Requests B cannot attribute are refused with 401.
    let path = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        urlencode(bob.uid().as_str())
    );
    let resp = insecure()
        .get(format!("{fed_b}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "no signature");
    let forged = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "forged".into()).unwrap();
    let (st, v) = signed_get(&fed_b, &path, &name_a, &name_b, &forged).await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (401, Some("M_UNAUTHORIZED")),
        "unknown key: {v}"
    );
    let doc_a: Value = insecure()
        .get(format!("https://127.0.0.1:{pa}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let real_id = doc_a["verify_keys"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let impostor = Ed25519KeyPair::from_der(
        &Ed25519KeyPair::generate(),
        real_id.trim_start_matches("ed25519:").into(),
    )
    .unwrap();
    let (st, _) = signed_get(&fed_b, &path, &name_a, &name_b, &impostor).await;
    assert_eq!(st, 401, "A's key ID with another key");
    let (st, _) = signed_get(&fed_b, &path, &name_a, "elsewhere.example", &impostor).await;
    assert_eq!(st, 401, "meant for another server");

    // A as notary: B's document passed on with A's signature added.
    let notary: Value = insecure()
        .post(format!("https://127.0.0.1:{pa}/_matrix/key/v2/query"))
        .json(&json!({ "server_keys": { &name_b: {} } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let passed = &notary["server_keys"][0];
    assert_eq!(passed["server_name"], name_b.as_str(), "{notary}");
    assert!(signed_by(passed, &name_b, &keys_b));
    assert!(
        signed_by(passed, &name_a, &key_map(&name_a, &doc_a)),
        "{passed}"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Two federating servers on loopback, Alice on the first and Bob on the second.
async fn two_servers() -> (u16, u16, Server, Server, common::Client, common::Client) {
    let (fa, fb) = (Port::new(), Port::new());
    let (pa, pb) = (fa.port(), fb.port());
    let a = Server::start_federating(fa, &[pb]).await;
    let b = Server::start_federating(fb, &[pa]).await;
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    (pa, pb, a, b, alice, bob)
}

/// Waits until `c`'s server has a message with this body in the room.
async fn sees(c: &common::Client, room: &ruma::RoomId, body: &str, what: &str) {
    until(what, || async {
        c.message_bodies(room)
            .await
            .iter()
            .any(|b| b == body)
            .then_some(())
    })
    .await
}

/// Waits until `f` answers something.
async fn until<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::poll(20, f)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn users_of_two_servers_share_a_room() {
    let (_pa, _pb, _a, _b, alice, bob) = two_servers().await;

    // Alice invites Bob across servers; Bob's server shows him the invite.
    let room = alice.create_room(|r| r.name = Some("Across".into())).await;
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({ "user_id": bob.uid() }).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let invite = until("bob's invite", || async {
        let s = bob.sync(None, 0).await;
        s.rooms.invite.get(&room).cloned()
    })
    .await;
    let names: Vec<String> = invite
        .invite_state
        .events
        .iter()
        .filter_map(|e| e.get_field::<String>("type").ok().flatten())
        .collect();
    assert!(names.contains(&"m.room.name".to_owned()), "{names:?}");

    // He joins through Alice's server.
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{room}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    until("bob's join on alice's server", || async {
        let (_, v) = alice
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
                None,
            )
            .await;
        v["joined"].get(bob.uid().as_str()).map(|_| ())
    })
    .await;

    // Messages both ways.
    alice.send_text(&room, "hello bob").await.unwrap();
    sees(&bob, &room, "hello bob", "alice's message at bob's server").await;
    bob.send_text(&room, "hi alice").await.unwrap();
    sees(&alice, &room, "hi alice", "bob's message at alice's server").await;
    // The same history, in the same order, on both servers.
    let (ha, hb) = (
        alice.message_bodies(&room).await,
        bob.message_bodies(&room).await,
    );
    assert_eq!(ha, hb);

    // Typing and read receipts reach the other server.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/typing/{}", bob.uid()),
            Some(r#"{"typing": true, "timeout": 20000}"#),
        )
        .await;
    assert_eq!(st, 200);
    let hello = alice.send_text(&room, "read this").await.unwrap();
    sees(
        &bob,
        &room,
        "read this",
        "alice's new message at bob's server",
    )
    .await;
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{hello}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    until("bob typing and his receipt at alice's server", || async {
        let s = alice.sync(None, 0).await;
        let joined = s.rooms.join.get(&room)?;
        let eph: Vec<serde_json::Value> = joined
            .ephemeral
            .events
            .iter()
            .map(|e| serde_json::from_str(e.json().get()).unwrap())
            .collect();
        let typing = eph.iter().any(|e| {
            e["type"] == "m.typing"
                && e["content"]["user_ids"]
                    .as_array()
                    .is_some_and(|u| u.iter().any(|x| x == bob.uid().as_str()))
        });
        let receipt = eph.iter().any(|e| {
            e["type"] == "m.receipt"
                && e["content"][hello.as_str()]["m.read"]
                    .get(bob.uid().as_str())
                    .is_some()
        });
        (typing && receipt).then_some(())
    })
    .await;

    // Bob leaves; Alice's server sees it.
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    until("bob's leave at alice's server", || async {
        let (_, v) = alice
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
                None,
            )
            .await;
        v["joined"].get(bob.uid().as_str()).is_none().then_some(())
    })
    .await;
}

/// The room's current power levels, as a server answers them.
async fn power_levels(c: &common::Client, room: &ruma::RoomId) -> Value {
    let (st, v) = c
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Changes the room's power levels as `c`'s server has them (which must accept the change).
async fn change_power_levels(c: &common::Client, room: &ruma::RoomId, f: impl FnOnce(&mut Value)) {
    let mut pl = power_levels(c, room).await;
    f(&mut pl);
    let (st, v) = c
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"),
            Some(&pl.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_catch_up_and_agree_after_a_partition() {
    let (mut a, mut b, alice, bob, room) = common::federated_room("127.0.0.1", "127.0.0.1").await;
    // Bob may change power levels too.
    let bob_id = bob.uid().to_string();
    change_power_levels(&alice, &room, |pl| {
        pl["users"][bob_id.as_str()] = json!(100)
    })
    .await;
    until("bob's power at his server", || async {
        let v = power_levels(&bob, &room).await;
        (v["users"][bob.uid().as_str()] == 100).then_some(())
    })
    .await;

    // (A message of Bob's, durable before it is acknowledged, means B has flushed everything
    // it had received, the grant included.)
    bob.send_text(&room, "ready").await.unwrap();
    sees(&alice, &room, "ready", "bob's message at alice's server").await;

    // B is down: Alice talks and changes the power levels.
    b.kill9();
    for i in 0..3 {
        alice
            .send_text(&room, &format!("while b was down {i}"))
            .await
            .unwrap();
    }
    change_power_levels(&alice, &room, |pl| pl["events_default"] = json!(20)).await;

    // B is back and A is down: Bob changes them his way.
    b.spawn().await;
    a.kill9();
    change_power_levels(&bob, &room, |pl| pl["events_default"] = json!(10)).await;

    // Both up: nothing is lost and both servers resolve to the same state.
    a.spawn().await;
    until("alice's messages at bob's server", || async {
        let bodies = bob.message_bodies(&room).await;
        (0..3)
            .all(|i| bodies.contains(&format!("while b was down {i}")))
            .then_some(())
    })
    .await;
    let agreed = until("the same power levels on both servers", || async {
        let (x, y) = (
            power_levels(&alice, &room).await,
            power_levels(&bob, &room).await,
        );
        (x == y && x["events_default"] != json!(0)).then_some(x)
    })
    .await;
    assert!(
        agreed["events_default"] == json!(10) || agreed["events_default"] == json!(20),
        "{agreed}"
    );
    bob.send_text(&room, "after the partition").await.unwrap();
    sees(
        &alice,
        &room,
        "after the partition",
        "bob's message at alice's server",
    )
    .await;
    assert_eq!(
        alice.message_bodies(&room).await,
        bob.message_bodies(&room).await
    );

    // A ban on A reaches B.
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/ban"),
            Some(&json!({ "user_id": bob.uid(), "reason": "test" }).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    until("the ban at bob's server", || async {
        let (_, v) = bob
            .raw("GET", "/_matrix/client/v3/joined_rooms", None)
            .await;
        let rooms = v["joined_rooms"].as_array()?;
        (!rooms.iter().any(|r| r == room.as_str())).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_keys_and_to_device_messages_cross_servers() {
    let (_a, _b, alice, bob, _room) = common::federated_room("127.0.0.1", "127.0.0.1").await;
    let (_, who) = bob
        .raw("GET", "/_matrix/client/v3/account/whoami", None)
        .await;
    let dev = who["device_id"].as_str().unwrap().to_owned();
    let (_, first) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();

    // Bob's keys, uploaded on B.
    let upload = json!({
        "device_keys": {
            "user_id": bob.uid(), "device_id": dev, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {format!("curve25519:{dev}"): "c25519key", format!("ed25519:{dev}"): "ed25519key"},
            "signatures": {bob.uid().as_str(): {format!("ed25519:{dev}"): "sig"}}
        },
        "one_time_keys": {"signed_curve25519:AAAA": {"key": "k1", "signatures": {}}}
    });
    let (st, v) = bob
        .raw(
            "POST",
            "/_matrix/client/v3/keys/upload",
            Some(&upload.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // Alice's client hears that Bob's devices changed, and sees his keys through A.
    until("bob's device list change in alice's sync", || async {
        let (_, v) = alice
            .raw(
                "GET",
                &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
                None,
            )
            .await;
        v["device_lists"]["changed"]
            .as_array()?
            .iter()
            .any(|u| u == bob.uid().as_str())
            .then_some(())
    })
    .await;
    let (st, q) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/keys/query",
            Some(&json!({"device_keys": {bob.uid().as_str(): []}}).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{q}");
    assert_eq!(
        q["device_keys"][bob.uid().as_str()][dev.as_str()]["keys"][format!("curve25519:{dev}")],
        "c25519key",
        "{q}"
    );
    let (st, c) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/keys/claim",
            Some(
                &json!({"one_time_keys": {bob.uid().as_str(): {&dev: "signed_curve25519"}}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        c["one_time_keys"][bob.uid().as_str()][dev.as_str()]["signed_curve25519:AAAA"]["key"],
        "k1",
        "{c}"
    );

    // Bob's presence reaches Alice's client.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/presence/{}/status", bob.uid()),
            Some(r#"{"presence": "online", "status_msg": "on shift"}"#),
        )
        .await;
    assert_eq!(st, 200);
    until("bob's presence at alice's server", || async {
        let (_, v) = alice
            .raw(
                "GET",
                &format!("/_matrix/client/v3/presence/{}/status", bob.uid()),
                None,
            )
            .await;
        (v["status_msg"] == "on shift" && v["presence"] == "online").then_some(())
    })
    .await;

    // A to-device message from Alice reaches Bob's device.
    let msg = json!({"messages": {bob.uid().as_str(): {&dev: {"secret": "olm payload"}}}});
    let (st, _) = alice
        .raw(
            "PUT",
            "/_matrix/client/v3/sendToDevice/m.room.encrypted/txn1",
            Some(&msg.to_string()),
        )
        .await;
    assert_eq!(st, 200);
    until("the to-device message at bob's device", || async {
        let (_, v) = bob
            .raw("GET", "/_matrix/client/v3/sync?timeout=0", None)
            .await;
        v["to_device"]["events"]
            .as_array()?
            .iter()
            .any(|e| e["content"]["secret"] == "olm payload" && e["sender"] == alice.uid().as_str())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_invite_reaches_the_inviting_server() {
    let (_pa, _pb, _a, _b, alice, bob) = two_servers().await;
    let room = alice
        .create_room(|r| r.invite = vec![bob.uid().to_owned()])
        .await;
    let (_, first) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(
        first["rooms"]["invite"].get(room.as_str()).is_some(),
        "{first}"
    );
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(r#"{"reason": "not now"}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, m) = alice
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
                bob.uid()
            ),
            None,
        )
        .await;
    assert_eq!((st, &m["membership"]), (200, &json!("leave")), "{m}");
    assert_eq!(m["reason"], "not now");
    let (_, next) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    assert!(
        next["rooms"]["leave"].get(room.as_str()).is_some(),
        "{next}"
    );
    let (_, again) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(
        again["rooms"]["invite"].get(room.as_str()).is_none(),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_acl_shuts_a_server_out() {
    // Distinct host names, since ACLs match hosts, not ports.
    let (_a, _b, alice, bob, room) = common::federated_room("127.0.0.1", "localhost").await;
    bob.send_text(&room, "before the acl").await.unwrap();
    sees(
        &alice,
        &room,
        "before the acl",
        "bob's message at alice's server",
    )
    .await;

    let acl = json!({ "allow": ["*"], "deny": ["localhost"], "allow_ip_literals": true });
    let (st, v) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.server_acl/"),
            Some(&acl.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    alice.send_text(&room, "after the acl").await.unwrap();
    bob.send_text(&room, "bob after the acl").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !alice
            .message_bodies(&room)
            .await
            .contains(&"bob after the acl".to_owned()),
        "a denied server's events are refused"
    );
    assert!(
        !bob.message_bodies(&room)
            .await
            .contains(&"after the acl".to_owned()),
        "nothing is sent to a denied server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_alias_resolves_and_joins() {
    let (pa, _pb, _a, _b, alice, bob) = two_servers().await;
    let room = alice
        .create_room(|r| {
            r.room_alias_name = Some("lobby".into());
            r.name = Some("The lobby".into());
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat);
            r.visibility = ruma::api::client::room::Visibility::Public;
        })
        .await;
    let alias = format!("#lobby:127.0.0.1:{pa}");
    let enc = urlencode(&alias);
    let (st, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/directory/room/{enc}"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["room_id"].as_str()),
        (200, Some(room.as_str())),
        "{v}"
    );
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{enc}"),
            Some("{}"),
        )
        .await;
    assert_eq!(
        (st, v["room_id"].as_str()),
        (200, Some(room.as_str())),
        "{v}"
    );
    let (_, m) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
            None,
        )
        .await;
    assert!(m["joined"].get(bob.uid().as_str()).is_some(), "{m}");
    let (st, v) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                urlencode(&format!("#nothing:127.0.0.1:{pa}"))
            ),
            None,
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (404, Some("M_NOT_FOUND")),
        "{v}"
    );

    // Alice's server's public rooms, from Bob's: all of them, then searched.
    let (st, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/publicRooms?server=127.0.0.1:{pa}&limit=10"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["chunk"][0]["room_id"], room.as_str(), "{v}");
    assert_eq!(v["chunk"][0]["name"], "The lobby", "{v}");
    assert_eq!(v["chunk"][0]["num_joined_members"], 2, "{v}");
    for (term, found) in [("lobby", 1), ("cellar", 0)] {
        let (st, v) = bob
            .raw(
                "POST",
                &format!("/_matrix/client/v3/publicRooms?server=127.0.0.1:{pa}"),
                Some(&json!({ "filter": { "generic_search_term": term } }).to_string()),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["chunk"].as_array().map(Vec::len),
            Some(found),
            "{term}: {v}"
        );
    }
    // A server that cannot be reached.
    let (st, v) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/publicRooms?server=127.0.0.1:{}",
                unused_port()
            ),
            None,
        )
        .await;
    assert_eq!(st, 502, "{v}");
}

/// Pages back through a room with `/messages` (`limit` per page) until the start; answers the
/// events, newest first, and how many pages it took.
async fn page_back(c: &common::Client, room: &ruma::RoomId, limit: u32) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut from = String::new();
    let mut pages = 0;
    loop {
        let (st, v) = c
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit={limit}{from}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        events.extend(v["chunk"].as_array().unwrap().iter().cloned());
        match v["end"].as_str() {
            Some(end) => from = format!("&from={end}"),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    (events, pages)
}

#[tokio::test(flavor = "multi_thread")]
async fn history_before_a_join_is_backfilled_from_other_servers() {
    let (pa, _pb, _a, _b, alice, bob) = two_servers().await;

    // A room with history before Bob's server takes part: 120 messages, one of them redacted.
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(alice.send_text(&room, &format!("m{i}")).await.unwrap());
    }
    let (st, v) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/redact/{}/r1", ids[7]),
            Some(r#"{"reason":"oops"}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // A room whose history only members of the time may read.
    let private = alice
        .create_room_json(json!({
            "preset": "public_chat",
            "initial_state": [{"type": "m.room.history_visibility", "state_key": "",
                               "content": {"history_visibility": "joined"}}],
        }))
        .await;
    let private = ruma::RoomId::parse(private).unwrap();
    alice.send_text(&private, "before bob").await.unwrap();

    let via = format!("?server_name=127.0.0.1:{pa}");
    for r in [&room, &private] {
        let (st, v) = bob
            .raw(
                "POST",
                &format!("/_matrix/client/v3/join/{}{via}", urlencode(r.as_str())),
                Some("{}"),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    // Bob pages back from his join to the room's creation, 30 events at a time.
    let (events, pages) = page_back(&bob, &room, 30).await;
    let bodies: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    let expected: Vec<String> = (0..120)
        .rev()
        .filter(|i| *i != 7)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(bodies, expected, "all of the history, newest first");
    assert!(pages >= 5, "{pages} pages");
    let redacted = events
        .iter()
        .find(|e| e["event_id"] == ids[7].as_str())
        .expect("the redacted message is there");
    assert_eq!(redacted["content"], json!({}), "{redacted}");
    assert_eq!(
        events.last().unwrap()["type"],
        "m.room.create",
        "the start of the room"
    );
    let (ab, bb) = (
        alice.message_bodies(&room).await,
        bob.message_bodies(&room).await,
    );
    assert_eq!(ab, bb, "the same history on both servers");

    // A backfilled event can be read and put in context.
    let (st, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/event/{}", ids[3]),
            None,
        )
        .await;
    assert_eq!(
        (st, v["content"]["body"].as_str()),
        (200, Some("m3")),
        "{v}"
    );
    let (st, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/context/{}?limit=4", ids[3]),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let body = |e: &Value| e["content"]["body"].as_str().unwrap_or_default().to_owned();
    let before: Vec<String> = v["events_before"]
        .as_array()
        .unwrap()
        .iter()
        .map(body)
        .collect();
    let after: Vec<String> = v["events_after"]
        .as_array()
        .unwrap()
        .iter()
        .map(body)
        .collect();
    assert_eq!(
        (before, after),
        (
            vec!["m2".to_owned(), "m1".to_owned()],
            vec!["m4".to_owned(), "m5".to_owned()]
        ),
        "{v}"
    );
    // Forward from the context's end continues through the backfilled history into the live one.
    let end = v["end"].as_str().unwrap();
    let (st, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=200&from={end}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let forward: Vec<String> = v["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(body)
        .collect();
    assert_eq!(
        forward.first().map(String::as_str),
        Some("m6"),
        "{forward:?}"
    );
    assert_eq!(
        forward.last().map(String::as_str),
        Some("m119"),
        "{forward:?}"
    );

    // History from before Bob joined a `joined` room stays hidden from him.
    let (events, _) = page_back(&bob, &private, 30).await;
    assert!(
        events.iter().all(|e| e["content"]["body"] != "before bob"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "m.room.member"),
        "his own join is there: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn knocks_cross_servers_and_are_let_in_or_refused() {
    let (pa, _pb, _a, b, alice, bob) = two_servers().await;
    let carol = b.user("carol").await;
    let room = alice
        .create_room_json(json!({
            "name": "Knock here",
            "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                               "content": {"join_rule": "knock"}}],
        }))
        .await;
    let room = ruma::RoomId::parse(room).unwrap();
    let knock_path = format!(
        "/_matrix/client/v3/knock/{}?via=127.0.0.1:{pa}",
        urlencode(room.as_str())
    );
    for c in [&bob, &carol] {
        let (st, v) = c
            .raw("POST", &knock_path, Some(r#"{"reason":"may I?"}"#))
            .await;
        assert_eq!(
            (st, v["room_id"].as_str()),
            (200, Some(room.as_str())),
            "{v}"
        );
    }

    // The knock is in the room on Alice's server, and Bob's server shows him the room.
    let membership = |who: &ruma::UserId| {
        let path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/{who}");
        let alice = &alice;
        async move { alice.raw("GET", &path, None).await.1["membership"].clone() }
    };
    assert_eq!(membership(bob.uid()).await, "knock");
    let s = bob.sync(None, 0).await;
    let knocked = s
        .rooms
        .knock
        .get(&room)
        .expect("the knocked room in bob's sync");
    let state: Vec<Value> = knocked
        .knock_state
        .events
        .iter()
        .map(|e| e.deserialize_as().unwrap())
        .collect();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Knock here"),
        "{state:?}"
    );
    assert!(
        state.iter().all(|e| e.get("signatures").is_none()),
        "stripped for the client: {state:?}"
    );

    // Alice lets Bob in (an invite) and turns Carol away (a leave).
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({ "user_id": bob.uid() }).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/kick"),
            Some(&json!({ "user_id": carol.uid(), "reason": "not now" }).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    until("bob's invite", || async {
        bob.sync(None, 0).await.rooms.invite.get(&room).map(|_| ())
    })
    .await;
    bob.join(&room).await.expect("bob joins after knocking");
    assert_eq!(membership(bob.uid()).await, "join");
    until("carol's refusal", || async {
        let s = carol.sync(None, 0).await;
        (!s.rooms.knock.contains_key(&room)).then_some(())
    })
    .await;

    // Knocking is refused where the room does not take knocks.
    let open = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    let (st, v) = carol
        .raw(
            "POST",
            &format!(
                "/_matrix/client/v3/knock/{}?via=127.0.0.1:{pa}",
                urlencode(open.as_str())
            ),
            Some("{}"),
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (403, Some("M_FORBIDDEN")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_space_is_walked_across_servers() {
    let (pa, _pb, _a, _b, alice, bob) = two_servers().await;
    let here = format!("127.0.0.1:{pa}");
    let make = |name: &str, space: bool, public: bool| {
        let mut body =
            json!({ "name": name, "preset": if public { "public_chat" } else { "private_chat" } });
        if space {
            body["creation_content"] = json!({ "type": "m.space" });
        }
        body
    };
    let space = alice.create_room_json(make("Space", true, true)).await;
    let r1 = alice
        .create_room_json(make("Public room", false, true))
        .await;
    let r2 = alice
        .create_room_json(make("Private room", false, false))
        .await;
    let sub = alice.create_room_json(make("Subspace", true, true)).await;
    let r3 = alice.create_room_json(make("Deep room", false, true)).await;
    for (parent, child, suggested) in [
        (&space, &r1, true),
        (&space, &r2, false),
        (&space, &sub, false),
        (&sub, &r3, false),
    ] {
        let (st, v) = alice
            .raw(
                "PUT",
                &format!("/_matrix/client/v3/rooms/{parent}/state/m.space.child/{child}"),
                Some(&json!({ "via": [here], "suggested": suggested }).to_string()),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let names = |v: &Value| -> Vec<String> {
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let walk = |c: &common::Client, query: &str| {
        let path = format!("/_matrix/client/v1/rooms/{space}/hierarchy?{query}");
        let c = c.clone();
        async move {
            let (st, v) = c.raw("GET", &path, None).await;
            assert_eq!(st, 200, "{v}");
            v
        }
    };

    // On the space's own server: everything, breadth first, a page at a time.
    let v = walk(&alice, "").await;
    assert_eq!(
        names(&v),
        [
            "Space",
            "Public room",
            "Private room",
            "Subspace",
            "Deep room"
        ]
    );
    assert_eq!(
        v["rooms"][0]["children_state"].as_array().unwrap().len(),
        3,
        "{v}"
    );
    assert_eq!(v["rooms"][0]["room_type"], "m.space", "{v}");
    let v = walk(&alice, "limit=2").await;
    assert_eq!(names(&v), ["Space", "Public room"]);
    let next = v["next_batch"].as_str().unwrap().to_owned();
    let v = walk(&alice, &format!("limit=2&from={next}")).await;
    assert_eq!(names(&v), ["Private room", "Subspace"]);
    let v = walk(&alice, "max_depth=1").await;
    assert_eq!(
        names(&v),
        ["Space", "Public room", "Private room", "Subspace"]
    );
    let v = walk(&alice, "suggested_only=true").await;
    assert_eq!(names(&v), ["Space", "Public room"]);

    // From another server, once in the space: the rooms it is not in come from the space's
    // server, and the private one stays hidden.
    let (st, v) = bob
        .raw(
            "POST",
            &format!(
                "/_matrix/client/v3/join/{}?server_name={here}",
                urlencode(&space)
            ),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let v = walk(&bob, "").await;
    assert_eq!(
        names(&v),
        ["Space", "Public room", "Subspace", "Deep room"],
        "{v}"
    );
    let _ = (r2, r3);

    // A room the user may not see is refused.
    let (st, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v1/rooms/{r1}/hierarchy"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (403, Some("M_FORBIDDEN")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_signing_key_stays_published_and_federation_goes_on() {
    let (mut a, _b, alice, bob, room) = common::federated_room("127.0.0.1", "127.0.0.1").await;
    let pa = a.fed_port();
    alice.send_text(&room, "before rotation").await.unwrap();
    sees(&bob, &room, "before rotation", "the first message").await;
    let keys = || async {
        insecure()
            .get(format!("https://127.0.0.1:{pa}/_matrix/key/v2/server"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = keys().await;
    let old_id = before["verify_keys"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();

    // Not while the server runs: the database is its own.
    let out = a.command(&["rotate-signing-key"]);
    assert!(!out.status.success(), "{out:?}");
    a.kill9();
    let out = a.command(&["rotate-signing-key"]);
    assert!(out.status.success(), "{out:?}");
    a.spawn().await;

    let after = keys().await;
    let new_id = after["verify_keys"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert_ne!(new_id, old_id, "{after}");
    let old = &after["old_verify_keys"][&old_id];
    assert_eq!(old["key"], before["verify_keys"][&old_id]["key"], "{after}");
    assert!(old["expired_ts"].as_u64().is_some(), "{after}");

    // Events signed with the new key are accepted by the other server.
    alice.send_text(&room, "after rotation").await.unwrap();
    sees(
        &bob,
        &room,
        "after rotation",
        "a message signed with the new key",
    )
    .await;
}

/// Takes the signing key out of a stopped server's database (to speak as that server).
fn signing_key_of(server: &Server, name: &str) -> Ed25519KeyPair {
    let db = haven::storage::Storage::open(&server.data_path(), 8 << 20).unwrap();
    haven::signing::ServerKey::load_or_generate(&db, OwnedServerName::try_from(name).unwrap())
        .unwrap()
        .pair
}

#[tokio::test(flavor = "multi_thread")]
async fn history_hidden_from_a_server_stays_hidden_on_every_federation_endpoint() {
    let (fa, fb) = (Port::new(), Port::new());
    let (pa, pb) = (fa.port(), fb.port());
    let a = Server::start_federating(fa, &[pb]).await;
    let mut b = Server::start_federating(fb, &[pa]).await;
    let (name_a, name_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let room = alice
        .create_room_json(json!({
            "preset": "public_chat",
            "initial_state": [{"type": "m.room.history_visibility", "state_key": "",
                               "content": {"history_visibility": "joined"}}],
        }))
        .await;
    let room = ruma::RoomId::parse(room).unwrap();
    let secret = alice.send_text(&room, "before bob").await.unwrap();
    let (st, v) = bob
        .raw(
            "POST",
            &format!(
                "/_matrix/client/v3/join/{}?server_name={name_a}",
                urlencode(room.as_str())
            ),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let after = alice.send_text(&room, "after bob").await.unwrap();
    sees(&bob, &room, "after bob", "the message after the join").await;

    // Speak as B's server, with its own key (A has it from the join).
    b.kill9();
    let pair = signing_key_of(&b, &name_b);
    let fed_a = format!("https://{name_a}");
    let get = |path: String| {
        let (fed_a, name_a, name_b, pair) = (&fed_a, &name_a, &name_b, &pair);
        async move { signed_get(fed_a, &path, name_b, name_a, pair).await }
    };
    let enc = |id: &ruma::EventId| urlencode(id.as_str());

    // /event: the event from before the join comes redacted (it still checks), the later one whole.
    let (st, v) = get(format!("/_matrix/federation/v1/event/{}", enc(&secret))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["pdus"][0]["content"], json!({}), "{v}");
    let (st, v) = get(format!("/_matrix/federation/v1/event/{}", enc(&after))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["pdus"][0]["content"]["body"], "after bob", "{v}");

    // /get_missing_events from the latest event back: the earlier message without its body.
    let (st, v) = signed_request(
        "POST",
        &fed_a,
        &format!(
            "/_matrix/federation/v1/get_missing_events/{}",
            urlencode(room.as_str())
        ),
        Some(json!({"earliest_events": [], "latest_events": [after.as_str()], "limit": 50})),
        &name_b,
        &name_a,
        &pair,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let events = v["events"].as_array().unwrap();
    // (PDUs of this room version carry no event ID: the message is the one without content.)
    let hidden = events
        .iter()
        .find(|e| e["type"] == "m.room.message" && e["content"] == json!({}));
    assert!(hidden.is_some(), "{v}");
    assert!(
        events.iter().all(|e| e["content"]["body"] != "before bob"),
        "{v}"
    );

    // /event_auth and /state of the later event: no message content before the join either.
    for path in [
        format!(
            "/_matrix/federation/v1/event_auth/{}/{}",
            urlencode(room.as_str()),
            enc(&after)
        ),
        format!(
            "/_matrix/federation/v1/state/{}?event_id={}",
            urlencode(room.as_str()),
            enc(&after)
        ),
    ] {
        let (st, v) = get(path).await;
        assert_eq!(st, 200, "{v}");
        assert!(!v.to_string().contains("before bob"), "{v}");
    }
}

/// An alias answers every server in its room, the alias's server first, to local and remote
/// clients alike, so a client can join by room ID through them (issue 18: a remote alias
/// answered only this server's name).
#[tokio::test(flavor = "multi_thread")]
async fn aliases_list_the_servers_in_their_room() {
    let (a, b, alice, bob, room) = common::federated_room("127.0.0.1", "localhost").await;
    let (name_a, name_b) = (
        format!("127.0.0.1:{}", a.fed_port()),
        format!("localhost:{}", b.fed_port()),
    );
    let alias = format!("#meeting:{name_a}");
    let (st, v) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/directory/room/{}", urlencode(&alias)),
            Some(&json!({ "room_id": room }).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let expected = json!([name_a, name_b]);
    for who in [&alice, &bob] {
        let (st, v) = who
            .raw(
                "GET",
                &format!("/_matrix/client/v3/directory/room/{}", urlencode(&alias)),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["room_id"], room.as_str());
        assert_eq!(v["servers"], expected, "{v}");
    }
}
