//! The Application Service API with the real homeserver and a real appservice process (the
//! runtime's `echo-appservice`).

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Port, Server};
use serde_json::{json, Value};

const AS_TOKEN: &str = "as_token_for_tests_0123456789";
const HS_TOKEN: &str = "hs_token_for_tests_0123456789";

/// The runtime's echo appservice (built by `cargo test --workspace`; built here when only this
/// test target was).
fn echo_binary() -> PathBuf {
    haven_testkit::sibling_binary("appservice-runtime", "echo-appservice")
}

struct EchoAs {
    child: Option<Child>,
    config: PathBuf,
    state: PathBuf,
    port: Port,
}

impl EchoAs {
    fn start(&mut self) {
        let child = haven_testkit::spawn_on(
            Command::new(echo_binary())
                .arg("--config")
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
            &[&self.port],
        )
        .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Bodies of the messages `sender` sent, as received, in order.
    /// Bodies of `sender`'s messages as handled, each delivery once: a transaction the
    /// appservice was killed while handling (logged, not yet recorded as done) comes again
    /// under the same transaction ID and is logged again — at-least-once delivery. The same
    /// event in two different transactions would still show twice.
    fn bodies_from(&self, sender: &str) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .iter()
            .filter(|e| e["type"] == "m.room.message" && e["sender"] == sender)
            .filter(|e| seen.insert((e["txn"].to_string(), e["event_id"].to_string())))
            .map(|e| e["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for EchoAs {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes the registration and the appservice's config, returns the registration path.
fn setup(dir: &Path, hs_port: u16) -> (PathBuf, EchoAs) {
    setup_with(dir, hs_port, "")
}

/// `extra`: more registration lines (e.g. `org.haven.admin: true`).
fn setup_with(dir: &Path, hs_port: u16, extra: &str) -> (PathBuf, EchoAs) {
    let port = Port::new();
    let as_port = port.port();
    let reg = dir.join("echo.yaml");
    std::fs::write(
        &reg,
        format!(
            "id: echo\nurl: http://127.0.0.1:{as_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: echo\nrate_limited: false\nreceive_ephemeral: true\norg.matrix.msc3202: true\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@echo_.*:localhost:{hs_port}'\n  aliases:\n    - exclusive: true\n      regex: '#echo_.*:localhost:{hs_port}'\n  rooms: []\n{extra}"
        ),
    )
    .unwrap();
    let state = dir.join("as-state");
    let config = dir.join("echo.toml");
    std::fs::write(
        &config,
        format!(
            "homeserver_url = \"http://127.0.0.1:{hs_port}\"\nserver_name = \"localhost:{hs_port}\"\nregistration = \"{}\"\nlisten = \"127.0.0.1:{as_port}\"\nstate_dir = \"{}\"\n",
            reg.display(),
            state.display()
        ),
    )
    .unwrap();
    (
        reg,
        EchoAs {
            child: None,
            config,
            state,
            port,
        },
    )
}

async fn start_pair() -> (Server, EchoAs, tempfile::TempDir) {
    start_pair_with(vec![]).await
}

async fn start_pair_with(mut env: Vec<(&str, &str)>) -> (Server, EchoAs, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hs = Port::new();
    let hs_port = hs.port();
    let (reg, mut echo) = setup(dir.path(), hs_port);
    let regs = format!("[\"{}\"]", reg.display());
    env.push(("HAVEN_APPSERVICES__REGISTRATIONS", regs.as_str()));
    let server = Server::start_on(vec![hs], env).await;
    echo.start();
    (server, echo, dir)
}

/// A client-server URL for the appservice acting as `user` (`?user_id=`, then `extra`).
fn as_url(server: &Server, user: &str, path: &str, extra: &str) -> String {
    format!(
        "{}{path}?user_id={}{extra}",
        server.base,
        user.replace('@', "%40").replace(':', "%3A")
    )
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_flow_in_order_through_downtime_and_restarts() {
    let (mut server, mut echo, _dir) = start_pair().await;
    let alice = server.user("alice").await;
    let bot = format!("@echo:localhost:{}", server.port);
    let room = alice
        .create_room(|r| r.invite = vec![bot.as_str().try_into().unwrap()])
        .await;
    // The bot receives its invite in a transaction and joins.
    let (a2, r2) = (alice.clone(), room.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, m) = a2
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{r2}/joined_members"),
                None,
            )
            .await;
        if m["joined"].get(&bot).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "bot did not join");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = alice.uid().to_string();
    for b in expected("m", 10) {
        alice.send_text(&room, &b).await.unwrap();
    }
    wait_for("first messages", || echo.bodies_from(&me).len() >= 10).await;
    assert_eq!(echo.bodies_from(&me), expected("m", 10));
    // The bot's answers reach the room.
    let bodies = alice.message_bodies(&room).await;
    assert!(bodies.contains(&"echo: m9".to_owned()), "{bodies:?}");

    // The appservice is down for a while; everything arrives when it is back.
    echo.kill();
    for b in expected("d", 20) {
        alice.send_text(&room, &b).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    echo.start();
    wait_for("messages sent while down", || {
        echo.bodies_from(&me).len() >= 30
    })
    .await;

    // A backlog survives a homeserver crash.
    echo.kill();
    for b in expected("r", 10) {
        alice.send_text(&room, &b).await.unwrap();
    }
    server.kill9();
    server.spawn().await;
    echo.start();
    wait_for("backlog after homeserver restart", || {
        echo.bodies_from(&me).len() >= 40
    })
    .await;

    let mut all = expected("m", 10);
    all.extend(expected("d", 20));
    all.extend(expected("r", 10));
    assert_eq!(echo.bodies_from(&me), all, "order or completeness");
    // An event is in exactly one transaction. (A transaction the appservice was killed
    // while handling is retried under the same ID, so it may be logged twice: at least once
    // delivery, which the runtime's transaction record turns into exactly once handling.)
    let received = echo.received();
    let mut txns_of: std::collections::HashMap<&str, std::collections::BTreeSet<String>> =
        Default::default();
    for e in &received {
        if let Some(id) = e["event_id"].as_str() {
            txns_of.entry(id).or_default().insert(e["txn"].to_string());
        }
    }
    for (id, txns) in &txns_of {
        assert_eq!(txns.len(), 1, "{id} was delivered in transactions {txns:?}");
    }
    // Ephemeral events reach the appservice too (receive_ephemeral: true).
    let last = alice.send_text(&room, "typing soon").await.unwrap();
    let (st, body) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    wait_for("receipt", || {
        echo.received()
            .iter()
            .any(|e| e["ephemeral"] == "m.receipt")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_namespaces_masquerading_and_queries() {
    let (server, echo, _dir) = start_pair().await;
    let port = server.port;
    let http = reqwest::Client::new();
    // The appservice rejects a missing or wrong hs_token.
    let url = format!(
        "http://127.0.0.1:{}/_matrix/app/v1/transactions/forged",
        echo.port.port()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = loop {
        match http
            .put(&url)
            .json(&json!({"events": [{"type": "m.room.message"}]}))
            .send()
            .await
        {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(resp.status(), 401);
    let resp = http
        .put(&url)
        .bearer_auth("wrong_token_wrong_token")
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(echo.received().iter().all(|e| e["txn"] != "forged"));

    // Ordinary users cannot take names or aliases in the exclusive namespaces.
    let mut c = server.client();
    let (st, body) = c
        .raw("POST", "/_matrix/client/v3/register", Some(&json!({"username": "echo_bob", "password": "pw", "auth": {"type": "m.login.dummy"}}).to_string()))
        .await;
    assert_eq!((st, body["errcode"].as_str()), (400, Some("M_EXCLUSIVE")));
    c.register("alice", "pw").await;
    let room = c
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    let (st, body) = c
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/directory/room/%23echo_x:localhost:{port}"),
            Some(&json!({"room_id": room}).to_string()),
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (400, Some("M_EXCLUSIVE")));

    // The appservice registers a namespace user and acts as it.
    let asc = appservice_runtime::AsClient::new(&server.base, AS_TOKEN);
    asc.ensure_registered("echo_alice").await.unwrap();
    let puppet: ruma::OwnedUserId = format!("@echo_alice:localhost:{port}").try_into().unwrap();
    asc.as_user(&puppet).join(&room).await.unwrap();
    let eid = asc
        .as_user(&puppet)
        .send_text(&room, "from a puppet", false)
        .await
        .unwrap();
    let (_, ev) = c
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/event/{eid}"),
            None,
        )
        .await;
    assert_eq!(ev["sender"], puppet.as_str());
    // ...but not outside its namespace, nor outside namespace registration.
    let err = asc
        .as_user(c.uid())
        .send_text(&room, "impersonation", false)
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some("M_EXCLUSIVE"));
    let err = asc.ensure_registered("mallory").await.unwrap_err();
    assert_eq!(err.errcode(), Some("M_EXCLUSIVE"));
    let bad = appservice_runtime::AsClient::new(&server.base, "not_the_as_token_at_all");
    assert_eq!(
        bad.send_text(&room, "x", false)
            .await
            .unwrap_err()
            .errcode(),
        Some("M_UNKNOWN_TOKEN")
    );

    // Inviting an unknown namespace user makes the homeserver ask the appservice, which
    // creates it.
    let (st, body) = c
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({"user_id": format!("@echo_carol:localhost:{port}")}).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{body}");

    // Ping, both directions.
    let d = asc.ping("echo").await.unwrap();
    assert!(d < Duration::from_secs(5));
    let (st, body) = c
        .raw(
            "POST",
            "/_matrix/client/v1/appservice/echo/ping",
            Some("{}"),
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
}

#[test]
fn a_bad_registration_stops_the_server_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("broken.yaml");
    std::fs::write(&reg, format!("id: x\nurl: null\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: x\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@x_[:hs'\n")).unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, format!("server_name = \"localhost\"\n[database]\npath = \"{}\"\n[appservices]\nregistrations = [\"{}\"]\n", dir.path().join("data").display(), reg.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.yaml") && err.contains("namespaces.users[0].regex"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_users_get_a_direct_room_with_the_greeting_bot() {
    let dir = tempfile::tempdir().unwrap();
    let hs = Port::new();
    let hs_port = hs.port();
    let (reg, mut echo) = setup(dir.path(), hs_port);
    let regs = format!("[\"{}\"]", reg.display());
    let bots = format!("[\"@echo:localhost:{hs_port}\"]");
    let server = Server::start_on(
        vec![hs],
        vec![
            ("HAVEN_APPSERVICES__REGISTRATIONS", regs.as_str()),
            ("HAVEN_REGISTRATION__GREETING_BOTS", bots.as_str()),
        ],
    )
    .await;
    echo.start();
    let newbie = server.user("newbie").await;
    let (_, sync) = newbie.raw("GET", "/_matrix/client/v3/sync", None).await;
    let invites = sync["rooms"]["invite"].as_object().unwrap();
    assert_eq!(invites.len(), 1, "{sync}");
    let (room, inv) = invites.iter().next().unwrap();
    let me = inv["invite_state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == newbie.uid().as_str())
        .unwrap();
    assert_eq!(me["content"]["is_direct"], true);
    let direct = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.direct")
        .unwrap()
        .clone();
    assert_eq!(
        direct["content"][format!("@echo:localhost:{hs_port}")],
        json!([room])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn appservice_devices_and_to_device_messages() {
    let (server, echo, _dir) = start_pair().await;
    let port = server.port;
    let asc = appservice_runtime::AsClient::new(&server.base, AS_TOKEN);
    asc.ensure_registered("echo_dev").await.unwrap();
    let puppet = format!("@echo_dev:localhost:{port}");
    let http = reqwest::Client::new();
    let q = |path: &str, extra: &str| as_url(&server, &puppet, path, extra);
    // MSC4190: the appservice creates a device for its user, no login, no UIA.
    let r = http
        .put(q("/_matrix/client/v3/devices/BRIDGEDEV", ""))
        .bearer_auth(AS_TOKEN)
        .json(&json!({"display_name": "Bridge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // MSC4326: acting on that device.
    let r = http
        .get(q(
            "/_matrix/client/v3/account/whoami",
            "&device_id=BRIDGEDEV",
        ))
        .bearer_auth(AS_TOKEN)
        .send()
        .await
        .unwrap();
    let who: Value = r.json().await.unwrap();
    assert_eq!(
        (who["user_id"].as_str(), who["device_id"].as_str()),
        (Some(puppet.as_str()), Some("BRIDGEDEV"))
    );
    let r = http
        .get(q("/_matrix/client/v3/account/whoami", "&device_id=NOSUCH"))
        .bearer_auth(AS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // MSC4203: a to-device message for the puppet's device reaches the appservice.
    let alice = server.user("alice").await;
    let body =
        json!({"messages": {puppet.as_str(): {"BRIDGEDEV": {"hello": "bridge"}}}}).to_string();
    let (st, _) = alice
        .raw(
            "PUT",
            "/_matrix/client/v3/sendToDevice/org.example.ping/x1",
            Some(&body),
        )
        .await;
    assert_eq!(st, 200);
    wait_for("to-device", || {
        echo.received()
            .iter()
            .any(|e| e["to_device"] == "org.example.ping")
    })
    .await;
    let got = echo
        .received()
        .into_iter()
        .find(|e| e["to_device"] == "org.example.ping")
        .unwrap();
    assert_eq!(
        (got["to_user_id"].as_str(), got["to_device_id"].as_str()),
        (Some(puppet.as_str()), Some("BRIDGEDEV"))
    );
    assert_eq!(got["content"]["hello"], "bridge");

    // And the appservice deletes the device without UIA.
    let r = http
        .delete(q("/_matrix/client/v3/devices/BRIDGEDEV", ""))
        .bearer_auth(AS_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(q("/_matrix/client/v3/devices/BRIDGEDEV", ""))
        .bearer_auth(AS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn appservices_with_rate_limited_false_are_not_rate_limited() {
    let limits = vec![
        ("HAVEN_RATE_LIMITS__ENABLED", "true"),
        ("HAVEN_RATE_LIMITS__PER_SECOND", "0.5"),
        ("HAVEN_RATE_LIMITS__BURST", "3"),
    ];
    let (server, _echo, _dir) = start_pair_with(limits).await;
    // whoami is rate-limited by the spec; the appservice registration says rate_limited: false.
    let http = reqwest::Client::new();
    let whoami = format!("{}/_matrix/client/v3/account/whoami", server.base);
    for _ in 0..15 {
        let r = http
            .get(&whoami)
            .bearer_auth(AS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let alice = server.user("alice").await;
    let mut limited = false;
    for _ in 0..15 {
        let (st, body) = alice
            .raw("GET", "/_matrix/client/v3/account/whoami", None)
            .await;
        if st == 429 {
            assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
            limited = true;
            break;
        }
    }
    assert!(limited, "an ordinary user was never rate limited");
}

#[tokio::test(flavor = "multi_thread")]
async fn appservices_get_device_lists_and_key_counts_msc3202() {
    let (server, echo, _dir) = start_pair().await;
    let port = server.port;
    let asc = appservice_runtime::AsClient::new(&server.base, AS_TOKEN);
    asc.ensure_registered("echo_keys").await.unwrap();
    let puppet = format!("@echo_keys:localhost:{port}");
    let http = reqwest::Client::new();
    let q = |path: &str, extra: &str| as_url(&server, &puppet, path, extra);
    http.put(q("/_matrix/client/v3/devices/PUPDEV", ""))
        .bearer_auth(AS_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let keys = json!({
        "device_keys": {"user_id": puppet, "device_id": "PUPDEV", "algorithms": [], "keys": {"ed25519:PUPDEV": "x"}, "signatures": {}},
        "one_time_keys": {"signed_curve25519:A1": {"key": "a"}, "signed_curve25519:A2": {"key": "b"}, "signed_curve25519:A3": {"key": "c"}}
    });
    let r = http
        .post(q("/_matrix/client/v3/keys/upload", "&device_id=PUPDEV"))
        .bearer_auth(AS_TOKEN)
        .json(&keys)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A user sharing a room with the puppet changes their device keys: the appservice hears
    // of it, along with its own devices' one-time key counts.
    let alice = server.user("alice").await;
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    let pid: ruma::OwnedUserId = puppet.as_str().try_into().unwrap();
    asc.as_user(&pid).join(&room).await.unwrap();
    let (_, who) = alice
        .raw("GET", "/_matrix/client/v3/account/whoami", None)
        .await;
    let dev = who["device_id"].as_str().unwrap();
    let up = json!({"device_keys": {"user_id": alice.uid(), "device_id": dev, "algorithms": [], "keys": {format!("ed25519:{dev}"): "y"}, "signatures": {}}});
    let (st, _) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/keys/upload",
            Some(&up.to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let me = alice.uid().to_string();
    wait_for("device list change", || {
        echo.received().iter().any(|e| {
            e["device_lists_changed"]
                .as_array()
                .is_some_and(|a| a.iter().any(|u| *u == me.as_str()))
        })
    })
    .await;
    let ext = echo
        .received()
        .into_iter()
        .find(|e| {
            e["device_lists_changed"]
                .as_array()
                .is_some_and(|a| a.iter().any(|u| *u == me.as_str()))
        })
        .unwrap();
    assert_eq!(
        ext["otk_counts"][puppet.as_str()]["PUPDEV"]["signed_curve25519"],
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_and_granted_appservices_delete_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let hs = Port::new();
    let hs_port = hs.port();
    let (reg, _echo) = setup_with(dir.path(), hs_port, "org.haven.admin: true\n");
    // A second appservice without the grant.
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, "id: plain\nurl: null\nas_token: plain_as_token_0123456789\nhs_token: plain_hs_token_0123456789\nsender_localpart: plain\nrate_limited: false\nnamespaces:\n  users: []\n").unwrap();
    let regs = format!("[\"{}\", \"{}\"]", reg.display(), plain.display());
    let server = Server::start_on(
        vec![hs],
        vec![("HAVEN_APPSERVICES__REGISTRATIONS", regs.as_str())],
    )
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room(|r| {
            r.invite = vec![bob.uid().to_owned()];
            r.room_alias_name = Some("doomed".into());
        })
        .await;
    bob.raw(
        "POST",
        &format!("/_matrix/client/v3/rooms/{room}/join"),
        Some("{}"),
    )
    .await;
    alice.send_text(&room, "to be deleted").await.unwrap();
    let path = format!("/_synapse/admin/v1/rooms/{room}");
    let as_call = |token: &str| {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", server.base);
        let token = token.to_owned();
        async move {
            let r = http
                .delete(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"purge": true}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Refused to a member of the room, and to an appservice without the grant; nothing changes.
    let (st, body) = alice.raw("DELETE", &path, Some("{}")).await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (st, body) = as_call("plain_as_token_0123456789").await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (st, _) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
            None,
        )
        .await;
    assert_eq!(st, 200);

    let (st, body) = as_call(AS_TOKEN).await;
    assert_eq!(st, 200, "{body}");
    let mut kicked: Vec<String> = serde_json::from_value(body["kicked_users"].clone()).unwrap();
    kicked.sort();
    assert_eq!(kicked, [alice.uid().to_string(), bob.uid().to_string()]);
    assert_eq!(
        body["local_aliases"],
        serde_json::json!([format!("#doomed:localhost:{hs_port}")])
    );
    // Gone: no history (its former members are out of it), no alias; members see it as left.
    let (st, body) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
            None,
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (st, _) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/directory/room/%23doomed:localhost:{hs_port}"),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (_, joined) = bob
        .raw("GET", "/_matrix/client/v3/joined_rooms", None)
        .await;
    assert_eq!(joined["joined_rooms"], serde_json::json!([]));
    let (st, sync) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert_eq!(st, 200);
    assert!(sync["rooms"]["join"].get(room.as_str()).is_none(), "{sync}");
    let (st, _) = as_call(AS_TOKEN).await;
    assert_eq!(st, 404);
}
