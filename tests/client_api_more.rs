//! More client-server behaviour: ephemeral data, account data, filters, profiles, account
//! management, registration modes, rate limits and start-up configuration errors.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{json, Value};

fn enc(s: &str) -> String {
    s.replace('#', "%23").replace('!', "%21")
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_receipts_and_account_data_reach_sync() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    bob.join(&room).await.unwrap();
    let eid = alice.send_text(&room, "read me").await.unwrap();
    let since = bob.sync(None, 0).await.next_batch;

    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/typing/{}", alice.uid()),
            Some(r#"{"typing":true,"timeout":5000}"#),
        )
        .await;
    assert_eq!(st, 200);
    // Another user's typing state cannot be set.
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/typing/{}", alice.uid()),
            Some(r#"{"typing":true,"timeout":5000}"#),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{eid}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/read_markers"),
            Some(&json!({"m.fully_read": eid, "m.read.private": eid}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = bob
        .raw(
            "PUT",
            &format!(
                "/_matrix/client/v3/user/{}/account_data/org.example.settings",
                bob.uid()
            ),
            Some(r#"{"theme":"dark"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = bob
        .raw(
            "PUT",
            &format!(
                "/_matrix/client/v3/user/{}/rooms/{room}/account_data/org.example.room",
                bob.uid()
            ),
            Some(r#"{"pinned":true}"#),
        )
        .await;
    assert_eq!(st, 200);
    // Not someone else's.
    let (st, _) = alice
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/user/{}/account_data/org.example.settings",
                bob.uid()
            ),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, body) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/user/{}/account_data/org.example.settings",
                bob.uid()
            ),
            None,
        )
        .await;
    assert_eq!((st, body["theme"].as_str()), (200, Some("dark")));

    let (_, sync) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    let jr = &sync["rooms"]["join"][room.as_str()];
    let eph = jr["ephemeral"]["events"].as_array().unwrap();
    let typing = eph.iter().find(|e| e["type"] == "m.typing").unwrap();
    assert_eq!(typing["content"]["user_ids"], json!([alice.uid()]));
    let receipt = eph.iter().find(|e| e["type"] == "m.receipt").unwrap();
    assert!(receipt["content"][eid.as_str()]["m.read"][bob.uid().as_str()]["ts"].is_u64());
    assert!(receipt["content"][eid.as_str()]["m.read.private"][bob.uid().as_str()].is_object());
    let rad: Vec<&str> = jr["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        rad.contains(&"m.fully_read") && rad.contains(&"org.example.room"),
        "{rad:?}"
    );
    let gad = sync["account_data"]["events"].as_array().unwrap();
    assert!(gad
        .iter()
        .any(|e| e["type"] == "org.example.settings" && e["content"]["theme"] == "dark"));
    assert_eq!(jr["unread_notifications"]["notification_count"], 0);

    // Alice does not see bob's private receipt.
    let (_, sync) = alice
        .raw("GET", "/_matrix/client/v3/sync?timeout=0", None)
        .await;
    let eph = sync["rooms"]["join"][room.as_str()]["ephemeral"]["events"]
        .as_array()
        .unwrap()
        .clone();
    let receipt = eph.iter().find(|e| e["type"] == "m.receipt").unwrap();
    assert!(receipt["content"][eid.as_str()]["m.read.private"].is_null());

    // Typing stops.
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/typing/{}", alice.uid()),
            Some(r#"{"typing":false}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (_, sync) = bob
        .raw("GET", "/_matrix/client/v3/sync?timeout=0", None)
        .await;
    let eph = sync["rooms"]["join"][room.as_str()]["ephemeral"]["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        eph.iter().find(|e| e["type"] == "m.typing").unwrap()["content"]["user_ids"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_limit_and_lazy_load() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    bob.join(&room).await.unwrap();
    for i in 0..5 {
        alice.send_text(&room, &format!("m{i}")).await.unwrap();
    }
    let filter = json!({"room": {"timeline": {"limit": 2, "types": ["m.room.message"]}, "state": {"lazy_load_members": true}}});
    let (st, body) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/user/{}/filter", alice.uid()),
            Some(&filter.to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let id = body["filter_id"].as_str().unwrap().to_owned();
    let (st, got) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/user/{}/filter/{id}", alice.uid()),
            None,
        )
        .await;
    assert_eq!(
        (st, got["room"]["timeline"]["limit"].as_u64()),
        (200, Some(2))
    );
    let (st, _) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/user/{}/filter/{id}", alice.uid()),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/user/{}/filter/999", alice.uid()),
            None,
        )
        .await;
    assert_eq!(st, 404);

    for f in [id.clone(), urlencode(&filter.to_string())] {
        let (_, sync) = alice
            .raw("GET", &format!("/_matrix/client/v3/sync?filter={f}"), None)
            .await;
        let jr = &sync["rooms"]["join"][room.as_str()];
        let bodies: Vec<&str> = jr["timeline"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["content"]["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, vec!["m3", "m4"]);
        assert_eq!(jr["timeline"]["limited"], true);
        // Lazy loading: alice's own member event, not bob's (he sent nothing in the window).
        let members: Vec<&str> = jr["state"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.member")
            .map(|e| e["state_key"].as_str().unwrap())
            .collect();
        assert_eq!(members, vec![alice.uid().as_str()]);
        // Paginating back from prev_batch continues where the timeline starts.
        let prev = jr["timeline"]["prev_batch"].as_str().unwrap();
        let (_, msgs) = alice
            .raw(
                "GET",
                &format!(
                    "/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1&from={prev}&filter={}",
                    urlencode(r#"{"types":["m.room.message"]}"#)
                ),
                None,
            )
            .await;
        assert_eq!(msgs["chunk"][0]["content"]["body"], "m2");
    }

    // /context around m2, and /members with a membership filter.
    let (_, msgs) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=3"),
            None,
        )
        .await;
    let m2 = msgs["chunk"][2]["event_id"].as_str().unwrap().to_owned();
    let (st, ctx) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{room}/context/{}?limit=2",
                enc(&m2)
            ),
            None,
        )
        .await;
    assert_eq!(st, 200, "{ctx}");
    assert_eq!(ctx["event"]["content"]["body"], "m2");
    assert_eq!(ctx["events_before"][0]["content"]["body"], "m1");
    assert_eq!(ctx["events_after"][0]["content"]["body"], "m3");
    let (_, members) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/members?membership=join"),
            None,
        )
        .await;
    assert_eq!(members["chunk"].as_array().unwrap().len(), 2);
    let (_, members) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/members?not_membership=join"),
            None,
        )
        .await;
    assert_eq!(members["chunk"].as_array().unwrap().len(), 0);

    // Default push rules.
    let (st, rules) = alice
        .raw("GET", "/_matrix/client/v3/pushrules/", None)
        .await;
    assert_eq!(st, 200);
    assert!(rules["global"]["override"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule_id"] == ".m.rule.master"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_changes_propagate_to_rooms() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    bob.join(&room).await.unwrap();
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.uid()),
            Some(r#"{"displayname":"Alice Responder"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.uid()),
            Some(r#"{"displayname":"Hacked"}"#),
        )
        .await;
    assert_eq!(st, 403);
    let (_, p) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/profile/{}", alice.uid()),
            None,
        )
        .await;
    assert_eq!(p["displayname"], "Alice Responder");
    let (_, m) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
                alice.uid()
            ),
            None,
        )
        .await;
    assert_eq!(m["displayname"], "Alice Responder");
    let (st, _) = bob
        .raw("GET", "/_matrix/client/v3/profile/@nobody:localhost", None)
        .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn kick_unban_aliases_and_invites_in_sync() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice.create_room(|_| {}).await;
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({"user_id": bob.uid()}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    // The invite shows in bob's sync with stripped state.
    let (_, sync) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    let inv = &sync["rooms"]["invite"][room.as_str()]["invite_state"]["events"];
    assert!(inv
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob.uid().as_str()));
    // Rejecting the invite is a leave.
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let (_, sync2) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/sync?since={}",
                sync["next_batch"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert!(sync2["rooms"]["leave"][room.as_str()].is_object());

    alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({"user_id": bob.uid()}).to_string()),
        )
        .await;
    bob.join(&room).await.unwrap();
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/kick"),
            Some(&json!({"user_id": bob.uid(), "reason": "test"}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        bob.send_text(&room, "x").await.unwrap_err().errcode,
        "M_FORBIDDEN"
    );
    alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/ban"),
            Some(&json!({"user_id": bob.uid()}).to_string()),
        )
        .await;
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/unban"),
            Some(&json!({"user_id": bob.uid()}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({"user_id": bob.uid()}).to_string()),
        )
        .await;
    bob.join(&room).await.unwrap();

    // Aliases: create, resolve, list, refuse duplicates and outsiders' deletes, delete.
    let alias = format!("#team:localhost:{}", s.port);
    let path = format!("/_matrix/client/v3/directory/room/{}", enc(&alias));
    let (st, _) = bob
        .raw("PUT", &path, Some(&json!({"room_id": room}).to_string()))
        .await;
    assert_eq!(st, 200);
    let (st, body) = alice
        .raw("PUT", &path, Some(&json!({"room_id": room}).to_string()))
        .await;
    assert_eq!((st, body["errcode"].as_str()), (409, Some("M_ROOM_IN_USE")));
    let (_, list) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/aliases"),
            None,
        )
        .await;
    assert_eq!(list["aliases"], json!([alias]));
    let eve = s.user("eve").await;
    let (st, _) = eve.raw("DELETE", &path, None).await;
    assert_eq!(st, 403);
    let (st, _) = alice.raw("DELETE", &path, None).await;
    assert_eq!(st, 200);
    let (st, body) = alice.raw("GET", &path, None).await;
    assert_eq!((st, body["errcode"].as_str()), (404, Some("M_NOT_FOUND")));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_change_and_deactivation() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let room = alice.create_room(|_| {}).await;
    let auth = |pw: &str| json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": pw});
    let (st, _) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/account/password",
            Some(&json!({"new_password": "new"}).to_string()),
        )
        .await;
    assert_eq!(st, 401);
    let (st, _) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/account/password",
            Some(
                &json!({"new_password": "new", "logout_devices": false, "auth": auth("password")})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let login = |pw: &str| {
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": pw}).to_string()
    };
    let (st, _) = s
        .client()
        .raw("POST", "/_matrix/client/v3/login", Some(&login("password")))
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .client()
        .raw("POST", "/_matrix/client/v3/login", Some(&login("new")))
        .await;
    assert_eq!(st, 200);

    let (st, _) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/account/deactivate",
            Some(&json!({"auth": auth("new")}).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    let (st, body) = s
        .client()
        .raw("POST", "/_matrix/client/v3/login", Some(&login("new")))
        .await;
    assert_eq!(
        (st, body["errcode"].as_str()),
        (403, Some("M_USER_DEACTIVATED"))
    );
    let (st, _) = alice
        .raw("GET", "/_matrix/client/v3/account/whoami", None)
        .await;
    assert_eq!(st, 401);
    // The deactivated user left their rooms.
    let (_, st_ev) = {
        let bob = s.user("bob").await;
        let _ = room;
        bob.raw("GET", "/_matrix/client/v3/joined_rooms", None)
            .await
    };
    assert_eq!(st_ev["joined_rooms"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_modes_and_rate_limits() {
    let s = Server::start_with(vec![
        ("HAVEN_REGISTRATION__MODE", "token"),
        ("HAVEN_REGISTRATION__TOKENS", r#"["let-me-in"]"#),
        ("HAVEN_RATE_LIMITS__ENABLED", "true"),
        ("HAVEN_RATE_LIMITS__PER_SECOND", "1.0"),
        ("HAVEN_RATE_LIMITS__BURST", "5"),
    ])
    .await;
    let c = s.client();
    let (st, body) = c
        .raw(
            "POST",
            "/_matrix/client/v3/register",
            Some(r#"{"username":"tok","password":"pw"}"#),
        )
        .await;
    assert_eq!(st, 401);
    assert_eq!(body["flows"][0]["stages"][0], "m.login.registration_token");
    let session = body["session"].as_str().unwrap();
    let bad = json!({"username": "tok", "password": "pw", "auth": {"type": "m.login.registration_token", "token": "wrong", "session": session}});
    let (st, _) = c
        .raw(
            "POST",
            "/_matrix/client/v3/register",
            Some(&bad.to_string()),
        )
        .await;
    assert_eq!(st, 401);
    let good = json!({"username": "tok", "password": "pw", "auth": {"type": "m.login.registration_token", "token": "let-me-in", "session": session}});
    let (st, body) = c
        .raw(
            "POST",
            "/_matrix/client/v3/register",
            Some(&good.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{body}");

    // Rate-limited endpoint: login. Burst of 5, then 429 with retry_after_ms.
    let login = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "tok"}, "password": "wrong"}).to_string();
    let mut limited = None;
    for _ in 0..10 {
        let (st, body) = c
            .raw("POST", "/_matrix/client/v3/login", Some(&login))
            .await;
        if st == 429 {
            limited = Some(body);
            break;
        }
    }
    let body = limited.expect("rate limit never hit");
    assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _) = c
        .raw("POST", "/_matrix/client/v3/login", Some(&login))
        .await;
    assert_eq!(st, 403);

    let closed = Server::start_with(vec![("HAVEN_REGISTRATION__MODE", "closed")]).await;
    let (st, body) = closed
        .client()
        .raw(
            "POST",
            "/_matrix/client/v3/register",
            Some(r#"{"username":"x","password":"pw","auth":{"type":"m.login.dummy"}}"#),
        )
        .await;
    assert_eq!((st, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_endpoints() {
    let s = Server::start_with(vec![(
        "HAVEN_WELL_KNOWN__CLIENT_BASE_URL",
        "https://matrix.example.org",
    )])
    .await;
    let alice = s.user("alice").await;
    let (st, caps) = alice
        .raw("GET", "/_matrix/client/v3/capabilities", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(caps["capabilities"]["m.room_versions"]["default"], "12");
    let (_, wk) = alice.raw("GET", "/.well-known/matrix/client", None).await;
    assert_eq!(wk["m.homeserver"]["base_url"], "https://matrix.example.org");
    let (st, _) = alice.raw("GET", "/.well-known/matrix/server", None).await;
    assert_eq!(st, 404);
    let (st, turn) = alice
        .raw("GET", "/_matrix/client/v3/voip/turnServer", None)
        .await;
    assert_eq!((st, turn), (200, json!({})));
    let (st, _) = s
        .client()
        .raw("GET", "/_matrix/client/v3/voip/turnServer", None)
        .await;
    assert_eq!(st, 401);
    let (_, v): (u16, Value) = s
        .client()
        .raw("GET", "/_matrix/client/versions", None)
        .await;
    assert!(v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "v1.12"));
    // Element X looks for sliding sync's flag before using it; Element Web sets up
    // cross-signing after sign-up only when its flag is there (issue 18). Every unstable
    // feature Haven implements is claimed, as Synapse does, and nothing else.
    assert_eq!(
        v["unstable_features"],
        json!({
            "org.matrix.simplified_msc3575": true,
            "org.matrix.e2e_cross_signing": true,
            "org.matrix.msc2432": true,
            "org.matrix.msc2285.stable": true,
            "org.matrix.msc3440.stable": true,
            "org.matrix.msc3771": true,
            "org.matrix.msc3827.stable": true,
            "org.matrix.msc3981": true,
            "fi.mau.msc2659.stable": true,
        })
    );
}

#[test]
fn bad_config_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "server_name = \"localhost\"\n[listen]\naddress = \"not an address\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen.address"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--config")
        .arg(&cfg)
        .env("HAVEN_LISTEN__ADDRESS", "127.0.0.1:1")
        .env("HAVEN_ROOMS__DEFAULT_VERSION", "3")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("rooms.default_version"));
}

#[tokio::test(flavor = "multi_thread")]
async fn create_room_options_devices_and_sync_sections() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let body = json!({
        "preset": "trusted_private_chat",
        "is_direct": true,
        "invite": [bob.uid()],
        "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        "power_level_content_override": {"events_default": 10},
        "room_version": "11"
    });
    let (st, created) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{created}");
    let room = created["room_id"].as_str().unwrap();
    let (_, enc_ev) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.encryption/"),
            None,
        )
        .await;
    assert_eq!(enc_ev["algorithm"], "m.megolm.v1.aes-sha2");
    let (_, pl) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"),
            None,
        )
        .await;
    assert_eq!(pl["events_default"], 10);
    // trusted_private_chat gives invitees the creator's power (room version 11).
    assert_eq!(pl["users"][bob.uid().as_str()], 100);
    let (_, m) = alice
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
                bob.uid()
            ),
            None,
        )
        .await;
    assert_eq!(
        (m["membership"].as_str(), m["is_direct"].as_bool()),
        (Some("invite"), Some(true))
    );
    // initial_state may not smuggle in a create or member event.
    let bad = json!({"initial_state": [{"type": "m.room.create", "state_key": "", "content": {}}]});
    let (st, body) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(&bad.to_string()),
        )
        .await;
    assert_eq!(
        (st, body["errcode"].as_str()),
        (400, Some("M_INVALID_ROOM_STATE"))
    );

    // Sync always has the to-device and device-list sections; full_state repeats state.
    let (_, first) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(first["to_device"]["events"].is_array() && first["device_lists"]["changed"].is_array());
    let since = first["next_batch"].as_str().unwrap();
    let (_, full) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&full_state=true"),
            None,
        )
        .await;
    // Nothing changed, yet the room comes back whole (its few events all fit the timeline).
    let jr = &full["rooms"]["join"][room];
    let n = |k: &str| jr[k]["events"].as_array().map(|a| a.len()).unwrap_or(0);
    assert!(n("state") + n("timeline") >= 8, "{jr}");
    let (_, inc) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    assert!(inc["rooms"]["join"][room].is_null());

    // Forward pagination from the start of the room.
    let room_id: ruma::OwnedRoomId = room.try_into().unwrap();
    for i in 0..3 {
        alice.send_text(&room_id, &format!("f{i}")).await.unwrap();
    }
    let (_, fwd) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100"),
            None,
        )
        .await;
    let chunk = fwd["chunk"].as_array().unwrap();
    assert_eq!(chunk[0]["type"], "m.room.create");
    let bodies: Vec<&str> = chunk
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, vec!["f0", "f1", "f2"]);
    let (_, page) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=2"),
            None,
        )
        .await;
    let next = page["end"].as_str().unwrap();
    let (_, page2) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=2&from={next}"),
            None,
        )
        .await;
    assert_ne!(page["chunk"][1]["event_id"], page2["chunk"][0]["event_id"]);

    // Devices: list, rename, and logout/all.
    let (_, devices) = alice.raw("GET", "/_matrix/client/v3/devices", None).await;
    let device = devices["devices"][0]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/devices/{device}"),
            Some(r#"{"display_name":"Desk"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let (_, d) = alice
        .raw("GET", &format!("/_matrix/client/v3/devices/{device}"), None)
        .await;
    assert_eq!(d["display_name"], "Desk");
    let (st, _) = alice
        .raw("GET", "/_matrix/client/v3/devices/NOPE", None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = alice
        .raw("POST", "/_matrix/client/v3/logout/all", Some("{}"))
        .await;
    assert_eq!(st, 200);
    let (st, body) = alice.raw("GET", "/_matrix/client/v3/devices", None).await;
    assert_eq!(
        (st, body["errcode"].as_str()),
        (401, Some("M_UNKNOWN_TOKEN"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn left_rooms_and_members_at_a_token() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    let (_, before_bob) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let token = before_bob["next_batch"].as_str().unwrap().to_owned();
    bob.join(&room).await.unwrap();
    let (_, members_then) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/members?at={token}"),
            None,
        )
        .await;
    let then: Vec<&str> = members_then["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(then, vec![alice.uid().as_str()]);
    let (_, members_now) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/members"),
            None,
        )
        .await;
    assert_eq!(members_now["chunk"].as_array().unwrap().len(), 2);

    let (_, sync) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    let since = sync["next_batch"].as_str().unwrap();
    for i in 0..12 {
        alice.send_text(&room, &format!("n{i}")).await.unwrap();
    }
    let (st, _) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let (_, sync2) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}"),
            None,
        )
        .await;
    let left = &sync2["rooms"]["leave"][room.as_str()];
    let tl = left["timeline"]["events"].as_array().unwrap();
    assert_eq!(tl.last().unwrap()["content"]["membership"], "leave");
    assert_eq!(left["timeline"]["limited"], true);
    assert!(sync2["rooms"]["join"][room.as_str()].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn to_device_messages_are_delivered_once() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let device = bob.device_id().await;
    let (_, first) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let body =
        json!({"messages": {bob.uid().as_str(): {device.as_str(): {"secret": 1}}}}).to_string();
    let (st, _) = alice
        .raw(
            "PUT",
            "/_matrix/client/v3/sendToDevice/org.example.hello/t1",
            Some(&body),
        )
        .await;
    assert_eq!(st, 200);
    // A retried transaction is not delivered twice.
    let (st, _) = alice
        .raw(
            "PUT",
            "/_matrix/client/v3/sendToDevice/org.example.hello/t1",
            Some(&body),
        )
        .await;
    assert_eq!(st, 200);
    let all = json!({"messages": {bob.uid().as_str(): {"*": {"secret": 2}}}}).to_string();
    alice
        .raw(
            "PUT",
            "/_matrix/client/v3/sendToDevice/org.example.hello/t2",
            Some(&all),
        )
        .await;

    let (_, sync) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    let evs = sync["to_device"]["events"].as_array().unwrap();
    let secrets: Vec<i64> = evs
        .iter()
        .map(|e| e["content"]["secret"].as_i64().unwrap())
        .collect();
    assert_eq!(secrets, vec![1, 2]);
    assert_eq!(evs[0]["sender"], alice.uid().as_str());
    assert_eq!(evs[0]["type"], "org.example.hello");
    // Acknowledged by the next since token: gone.
    let next = sync["next_batch"].as_str().unwrap();
    let (_, again) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={next}&timeout=0"),
            None,
        )
        .await;
    assert_eq!(again["to_device"]["events"], json!([]));
    // Alice's own device got nothing.
    let (_, a) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert_eq!(a["to_device"]["events"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn e2ee_keys_upload_query_claim_and_changes() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    bob.join(&room).await.unwrap();
    let (_, who) = alice
        .raw("GET", "/_matrix/client/v3/account/whoami", None)
        .await;
    let dev = who["device_id"].as_str().unwrap().to_owned();
    let (_, first) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();

    let device_keys = json!({
        "user_id": alice.uid(), "device_id": dev, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {format!("curve25519:{dev}"): "c25519key", format!("ed25519:{dev}"): "ed25519key"},
        "signatures": {alice.uid().as_str(): {format!("ed25519:{dev}"): "sig"}}
    });
    let upload = json!({
        "device_keys": device_keys,
        "one_time_keys": {"signed_curve25519:AAAA": {"key": "k1", "signatures": {}}, "signed_curve25519:AAAB": {"key": "k2", "signatures": {}}},
        "fallback_keys": {"signed_curve25519:FFFF": {"key": "fb", "fallback": true, "signatures": {}}}
    });
    let (st, body) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/keys/upload",
            Some(&upload.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 2);
    // Keys for someone else's device are refused.
    let bad = json!({"device_keys": {"user_id": bob.uid(), "device_id": dev, "algorithms": [], "keys": {}, "signatures": {}}});
    let (st, _) = alice
        .raw(
            "POST",
            "/_matrix/client/v3/keys/upload",
            Some(&bad.to_string()),
        )
        .await;
    assert_eq!(st, 400);

    let (_, q) = bob
        .raw(
            "POST",
            "/_matrix/client/v3/keys/query",
            Some(&json!({"device_keys": {alice.uid().as_str(): []}}).to_string()),
        )
        .await;
    assert_eq!(
        q["device_keys"][alice.uid().as_str()][dev.as_str()]["keys"][format!("curve25519:{dev}")],
        "c25519key"
    );

    // Bob's sync reports alice's new device keys (they share a room).
    let (_, sync) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    assert!(
        sync["device_lists"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == alice.uid().as_str()),
        "{sync}"
    );
    let (_, ch) = bob
        .raw(
            "GET",
            &format!(
                "/_matrix/client/v3/keys/changes?from={since}&to={}",
                sync["next_batch"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert!(ch["changed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == alice.uid().as_str()));

    // Claims take one-time keys, then the fallback key.
    let claim =
        json!({"one_time_keys": {alice.uid().as_str(): {dev.as_str(): "signed_curve25519"}}})
            .to_string();
    let mut got = Vec::new();
    for _ in 0..3 {
        let (_, c) = bob
            .raw("POST", "/_matrix/client/v3/keys/claim", Some(&claim))
            .await;
        let keys = c["one_time_keys"][alice.uid().as_str()][dev.as_str()]
            .as_object()
            .unwrap()
            .clone();
        got.push(
            keys.values().next().unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    got[..2].sort();
    assert_eq!(got, vec!["k1", "k2", "fb"]);
    let (_, a) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(a["device_one_time_keys_count"]
        .get("signed_curve25519")
        .is_none_or(|v| v == 0));
    assert_eq!(a["device_unused_fallback_key_types"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn media_upload_and_download() {
    let s = Server::start_with(vec![("HAVEN_MEDIA__MAX_UPLOAD_BYTES", "100000")]).await;
    let alice = s.user("alice").await;
    let token = alice.token.clone().unwrap();
    let http = reqwest::Client::new();
    let png: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let up = |body: Vec<u8>, ct: &str, name: &str| {
        http.post(format!(
            "{}/_matrix/media/v3/upload?filename={name}",
            s.base
        ))
        .bearer_auth(&token)
        .header("content-type", ct)
        .body(body)
        .send()
    };
    let r = up(png.clone(), "image/png", "photo.png").await.unwrap();
    assert_eq!(r.status(), 200);
    let uri = r.json::<Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = uri.strip_prefix("mxc://").unwrap().to_owned();

    let d = http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{path}",
            s.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 200);
    assert_eq!(d.headers()["content-type"], "image/png");
    assert!(d.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline; filename*=utf-8''photo%2Epng"));
    assert_eq!(d.bytes().await.unwrap().to_vec(), png);
    // Authenticated media needs a token; the legacy path does not.
    let d = http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{path}",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 401);
    // New media is not served by the frozen legacy unauthenticated endpoint.
    let d = http
        .get(format!("{}/_matrix/media/v3/download/{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 404);

    // HTML is never served inline; unknown media is 404; oversized uploads are refused.
    let r = up(b"<script>alert(1)</script>".to_vec(), "text/html", "x.html")
        .await
        .unwrap();
    let uri = r.json::<Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{}",
            s.base,
            uri.strip_prefix("mxc://").unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(d.headers()["content-type"], "application/octet-stream");
    assert!(d.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let d = http
        .get(format!(
            "{}/_matrix/client/v1/media/download/localhost:{}/nope",
            s.base, s.port
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 404);
    // On a client of its own: the server answers before reading the body and drops the
    // connection, which must not be reused for the requests below.
    let r = reqwest::Client::new()
        .post(format!("{}/_matrix/media/v3/upload?filename=big", s.base))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (_, cfg) = alice
        .raw("GET", "/_matrix/client/v1/media/config", None)
        .await;
    assert_eq!(cfg["m.upload.size"], 100000);
    // The same content uploaded twice is stored once.
    up(png.clone(), "image/png", "again.png").await.unwrap();
    let media_dir = s.data_path().join("media");
    let files: usize = std::fs::read_dir(&media_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "tmp")
        .map(|e| std::fs::read_dir(e.path()).map(|d| d.count()).unwrap_or(0))
        .sum();
    assert_eq!(files, 2, "png once, html once");
}

/// Invite events carry the invitee's name and picture, as Synapse's do, so clients show who
/// was invited rather than a bare user ID (issue 18): through /invite and through createRoom.
#[tokio::test(flavor = "multi_thread")]
async fn invites_carry_the_invitees_profile() {
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let (st, _) = bob
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", bob.uid()),
            Some(r#"{"displayname": "Bob Builder"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let invited_name = |room: String| {
        let (alice, bob_id) = (alice.clone(), bob.uid().to_string());
        async move {
            let (_, ev) = alice
                .raw(
                    "GET",
                    &format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/{bob_id}"),
                    None,
                )
                .await;
            (ev["membership"].clone(), ev["displayname"].clone())
        }
    };
    let room = alice.create_room_json(json!({})).await;
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({ "user_id": bob.uid() }).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        invited_name(room).await,
        (json!("invite"), json!("Bob Builder"))
    );
    let room = alice
        .create_room_json(json!({ "invite": [bob.uid()] }))
        .await;
    assert_eq!(
        invited_name(room).await,
        (json!("invite"), json!("Bob Builder"))
    );
}

/// `/joined_members` answers a non-member of a world-readable room, as `/state` and `/members`
/// do, and still refuses one of a room that is not (issue 18).
#[tokio::test(flavor = "multi_thread")]
async fn joined_members_of_a_world_readable_room() {
    let s = Server::start().await;
    let (alice, carol) = (s.user("alice").await, s.user("carol").await);
    let open = alice
        .create_room_json(json!({ "preset": "public_chat", "initial_state": [
            { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "world_readable" } }
        ] }))
        .await;
    let closed = alice
        .create_room_json(json!({ "preset": "public_chat" }))
        .await;
    let (st, v) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{open}/joined_members"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["joined"][alice.uid().as_str()].is_object(), "{v}");
    let (st, v) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{closed}/joined_members"),
            None,
        )
        .await;
    assert_eq!((st, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
}

/// An invitee cannot join a room everyone has left: 404, as Synapse answers (issue 18).
#[tokio::test(flavor = "multi_thread")]
async fn nobody_joins_a_room_everyone_has_left() {
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let room = alice
        .create_room_json(json!({ "invite": [bob.uid()] }))
        .await;
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/join"),
            Some("{}"),
        )
        .await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (404, Some("M_NOT_FOUND")),
        "{v}"
    );
}

/// A user's own key changes reach their other devices through `device_lists.changed`, rooms or
/// not, as Synapse reports them (issue 18: a user in no rooms never saw them).
#[tokio::test(flavor = "multi_thread")]
async fn own_key_changes_are_in_device_lists_without_rooms() {
    let s = Server::start().await;
    let carol = s.user("carol").await;
    let dev = carol.device_id().await;
    let (_, first) = carol.raw("GET", "/_matrix/client/v3/sync", None).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let keys = json!({ "device_keys": {
        "user_id": carol.uid(), "device_id": dev, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {format!("curve25519:{dev}"): "c25519key", format!("ed25519:{dev}"): "ed25519key"},
        "signatures": {carol.uid().as_str(): {format!("ed25519:{dev}"): "sig"}}
    }});
    let (st, v) = carol
        .raw(
            "POST",
            "/_matrix/client/v3/keys/upload",
            Some(&keys.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, next) = carol
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    assert!(
        next["device_lists"]["changed"]
            .as_array()
            .is_some_and(|c| c.iter().any(|u| u == carol.uid().as_str())),
        "{}",
        next["device_lists"]
    );
}

/// A rejected and at once forgotten invite still shows in the next incremental sync's
/// `rooms.leave`, with the leave event and a pagination token, as on Synapse, so a client
/// waiting for it does not wait out its timeout, and one invited again later can read the
/// room's history from there (issue 18; matrix-rust-sdk's invite-declined-then-accepted test).
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_and_forgotten_invite_is_still_reported_as_left() {
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let room = alice
        .create_room_json(json!({ "invite": [bob.uid()] }))
        .await;
    let (_, first) = bob.raw("GET", "/_matrix/client/v3/sync", None).await;
    assert!(first["rooms"]["invite"][&room].is_object(), "{first}");
    let since = first["next_batch"].as_str().unwrap().to_owned();
    for what in ["leave", "forget"] {
        let (st, v) = bob
            .raw(
                "POST",
                &format!("/_matrix/client/v3/rooms/{room}/{what}"),
                Some("{}"),
            )
            .await;
        assert_eq!(st, 200, "{what}: {v}");
    }
    let (_, next) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    let left = &next["rooms"]["leave"][&room];
    let events = left["timeline"]["events"].as_array().expect("a timeline");
    assert_eq!(events.len(), 1, "{left}");
    assert_eq!(events[0]["content"]["membership"], "leave", "{left}");
    assert_eq!(events[0]["state_key"], bob.uid().as_str(), "{left}");
    assert!(left["timeline"]["prev_batch"].is_string(), "{left}");
    // Reported once: the sync after that has nothing of it.
    let since = next["next_batch"].as_str().unwrap().to_owned();
    let (_, again) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            None,
        )
        .await;
    assert!(again["rooms"]["leave"].get(&room).is_none(), "{again}");
}

/// A `/messages` page that reaches the start of the room still gives `end` when it has events;
/// the page after it is empty and has none (Synapse's shape, which clients are written
/// against; issue 18).
#[tokio::test(flavor = "multi_thread")]
async fn messages_give_end_until_an_empty_page() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let room = alice.create_room_json(json!({})).await;
    let (_, page) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100"),
            None,
        )
        .await;
    assert!(!page["chunk"].as_array().unwrap().is_empty());
    let end = page["end"].as_str().expect("end beside events").to_owned();
    let (_, next) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100&from={end}"),
            None,
        )
        .await;
    assert_eq!(next["chunk"], json!([]), "{next}");
    assert!(next.get("end").is_none(), "{next}");
}

/// Events carry the requesting user's membership at the event in `unsigned.membership`
/// (issue 18): `leave` for history before they joined (shared visibility), `join` from their
/// join on, in `/messages`, `/sync` and `/event`.
#[tokio::test(flavor = "multi_thread")]
async fn events_carry_the_viewers_membership_at_the_event() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room_json(json!({"preset": "public_chat"}))
        .await;
    let rid = ruma::RoomId::parse(&room).unwrap();
    let before = alice
        .send_text(&rid, "before bob")
        .await
        .unwrap()
        .to_string();
    bob.join(&rid).await.unwrap();
    let after = alice
        .send_text(&rid, "after bob")
        .await
        .unwrap()
        .to_string();

    let (_, page) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100"),
            None,
        )
        .await;
    let membership_of = |id: &str| -> Value {
        page["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == id)
            .map(|e| e["unsigned"]["membership"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(membership_of(&before), "leave", "{page}");
    assert_eq!(membership_of(&after), "join", "{page}");
    for e in page["chunk"].as_array().unwrap() {
        if e["type"] == "m.room.member" && e["state_key"] == bob.uid().as_str() {
            assert_eq!(e["unsigned"]["membership"], "join", "own join: {e}");
        }
    }

    let (_, sync) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let timeline = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap();
    assert!(timeline
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .all(|e| e["unsigned"]["membership"] == "join"));
    let (_, ev) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/event/{before}"),
            None,
        )
        .await;
    assert_eq!(ev["unsigned"]["membership"], "leave", "{ev}");
}

/// History visibility is judged event by event, with the setting in force when each event was
/// sent (issue 18; matrix-rust-sdk's shared-history test): a newcomer reads what was sent while
/// the room was `shared`, and nothing sent while it was `joined` — in the first /sync's
/// timeline (which once showed the last events whatever the setting), /messages and /event.
#[tokio::test(flavor = "multi_thread")]
async fn history_visibility_is_judged_event_by_event() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let room = alice
        .create_room_json(json!({"preset": "public_chat"}))
        .await;
    let rid = ruma::RoomId::parse(&room).unwrap();
    let set = |vis: &'static str| {
        let (alice, room) = (&alice, &room);
        async move {
            let (st, v) = alice
                .raw(
                    "PUT",
                    &format!("/_matrix/client/v3/rooms/{room}/state/m.room.history_visibility/"),
                    Some(&json!({ "history_visibility": vis }).to_string()),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
    };
    let say = |body: &'static str| {
        let (alice, rid) = (&alice, &rid);
        async move { alice.send_text(rid, body).await.unwrap().to_string() }
    };
    set("joined").await;
    let hidden1 = say("joined only, one").await;
    set("shared").await;
    let shared = say("shared").await;
    set("joined").await;
    let hidden2 = say("joined only, two").await;
    bob.join(&rid).await.unwrap();
    let after = say("after bob joined").await;

    let bodies = |events: &Value| -> Vec<String> {
        events
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    };
    let want = vec!["shared".to_owned(), "after bob joined".to_owned()];
    let filter = json!({"room": {"timeline": {"limit": 50}}}).to_string();
    let (_, sync) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?filter={}", urlencode(&filter)),
            None,
        )
        .await;
    let timeline = &sync["rooms"]["join"][&room]["timeline"]["events"];
    assert_eq!(bodies(timeline), want, "first sync: {timeline}");

    let (_, page) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100"),
            None,
        )
        .await;
    assert_eq!(bodies(&page["chunk"]), want, "/messages: {page}");

    for (id, st) in [
        (&hidden1, 404),
        (&shared, 200),
        (&hidden2, 404),
        (&after, 200),
    ] {
        let (got, v) = bob
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
                None,
            )
            .await;
        assert_eq!(got, st, "{id}: {v}");
    }
}
