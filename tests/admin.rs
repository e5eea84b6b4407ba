//! Administration: the operator commands (on a running server through its socket, and on a
//! stopped one), every admin API endpoint with its refusal for non-admins, account locking and
//! suspension (Matrix 1.18), and the audit log.

mod common;

use common::{Client, Server};
use serde_json::{json, Value};

/// Runs an operator command; answers its output, failing the test if it failed.
fn command(s: &Server, args: &[&str]) -> String {
    let out = s.command(args);
    assert!(out.status.success(), "haven {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

async fn call(c: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    c.raw(method, path, body.map(|b| b.to_string()).as_deref())
        .await
}

const A: &str = "/_haven/admin/v1";

#[tokio::test(flavor = "multi_thread")]
async fn admins_run_the_server_through_the_api_and_the_cli() {
    let mut s = Server::start().await;
    // The first admin comes from the command line, while the server runs.
    let out = command(
        &s,
        &["create-user", "root", "--password", "secret", "--admin"],
    );
    assert!(out.contains("created @root:"), "{out}");
    let root = s.login("root", "secret").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let bob_id = bob.uid().to_string();

    // Non-admins are refused on every admin route (and the attempt is audited).
    let (c, r) = (carol.uid(), "!r:localhost");
    for (m, p) in [
        ("GET", format!("{A}/users")),
        ("POST", format!("{A}/users")),
        ("GET", format!("{A}/users/{c}")),
        ("POST", format!("{A}/users/{c}/deactivate")),
        ("POST", format!("{A}/users/{c}/password")),
        ("PUT", format!("{A}/users/{c}/admin")),
        ("GET", format!("{A}/users/{c}/devices")),
        ("DELETE", format!("{A}/users/{c}/devices/D")),
        ("GET", format!("{A}/users/{c}/sessions")),
        ("GET", format!("{A}/users/{c}/media")),
        ("GET", format!("{A}/rooms")),
        ("GET", format!("{A}/rooms/{r}")),
        ("DELETE", format!("{A}/rooms/{r}")),
        ("GET", format!("{A}/rooms/{r}/state")),
        ("GET", format!("{A}/rooms/{r}/members")),
        ("PUT", format!("{A}/rooms/{r}/block")),
        ("POST", format!("{A}/rooms/{r}/purge_history")),
        ("GET", format!("{A}/registration_tokens")),
        ("POST", format!("{A}/registration_tokens")),
        ("DELETE", format!("{A}/registration_tokens/t")),
        ("POST", format!("{A}/server_notices")),
        ("GET", format!("{A}/reports")),
        ("POST", format!("{A}/reports/1/resolve")),
        ("POST", format!("{A}/media/m/quarantine")),
        ("DELETE", format!("{A}/media/m")),
        ("GET", format!("{A}/events/$e/original")),
        ("GET", format!("{A}/audit")),
        ("GET", format!("/_matrix/client/v1/admin/lock/{c}")),
        ("PUT", format!("/_matrix/client/v1/admin/lock/{c}")),
        ("GET", format!("/_matrix/client/v1/admin/suspend/{c}")),
        ("PUT", format!("/_matrix/client/v1/admin/suspend/{c}")),
    ] {
        let (st, v) = call(&bob, m, &p, Some(json!({"locked": true}))).await;
        assert_eq!(
            (st, v["errcode"].as_str()),
            (403, Some("M_FORBIDDEN")),
            "{p}: {v}"
        );
    }

    // Users.
    let (st, v) = call(&root, "GET", &format!("{A}/users?limit=2"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["users"].as_array().unwrap().len(), 2, "{v}");
    let next = v["next_token"].as_str().unwrap().to_owned();
    let (_, v2) = call(&root, "GET", &format!("{A}/users?from={next}"), None).await;
    assert_eq!(v2["users"].as_array().unwrap().len(), 1, "{v2}");
    let (st, v) = call(
        &root,
        "POST",
        &format!("{A}/users"),
        Some(json!({"username": "dave", "password": "pw"})),
    )
    .await;
    assert_eq!(
        (st, v["user_id"].as_str().map(|u| u.starts_with("@dave:"))),
        (200, Some(true)),
        "{v}"
    );
    let (st, v) = call(&root, "GET", &format!("{A}/users/{bob_id}"), None).await;
    assert_eq!(
        (st, v["devices"].as_u64(), v["admin"].as_bool()),
        (200, Some(1), Some(false)),
        "{v}"
    );
    for bad in ["users?limit=many", "audit?from=x", "reports?all=maybe"] {
        let (st, v) = call(&root, "GET", &format!("{A}/{bad}"), None).await;
        assert_eq!(
            (st, v["errcode"].as_str()),
            (400, Some("M_INVALID_PARAM")),
            "{bad}: {v}"
        );
    }
    let (st, v) = call(&root, "POST", &format!("{A}/reports/one/resolve"), None).await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_INVALID_PARAM")),
        "{v}"
    );
    let (st, v) = call(
        &root,
        "GET",
        &format!("{A}/users/@nobody:localhost:1"),
        None,
    )
    .await;
    assert_eq!(st, 400, "a user of another server: {v}");
    let (_, v) = call(&root, "GET", &format!("{A}/users/{bob_id}/devices"), None).await;
    assert_eq!(v["devices"].as_array().map(Vec::len), Some(1), "{v}");
    let dave = s.login("dave", "pw").await;
    let (_, v) = call(
        &root,
        "GET",
        &format!("{A}/users/{}/devices", dave.uid()),
        None,
    )
    .await;
    let device = v["devices"][0]["device_id"].as_str().unwrap().to_owned();
    let path = format!("{A}/users/{}/devices/{device}", dave.uid());
    assert_eq!(call(&root, "DELETE", &path, None).await.0, 200);
    assert_eq!(call(&root, "DELETE", &path, None).await.0, 404);
    let (st, _) = call(&dave, "GET", "/_matrix/client/v3/account/whoami", None).await;
    assert_eq!(st, 401, "the deleted device's token is gone");
    let (st, v) = call(&root, "GET", &format!("{A}/users/{bob_id}/sessions"), None).await;
    assert_eq!(
        (st, v["sessions"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    let (st, v) = call(
        &root,
        "PUT",
        &format!("{A}/users/{bob_id}/admin"),
        Some(json!({"admin": false})),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // Lock and suspend (the spec's endpoints), offered to admins in their capabilities.
    let (_, v) = call(&root, "GET", "/_matrix/client/v3/capabilities", None).await;
    assert_eq!(
        v["capabilities"]["m.account_moderation"],
        json!({"lock": true, "suspend": true}),
        "{v}"
    );
    let (_, v) = call(&bob, "GET", "/_matrix/client/v3/capabilities", None).await;
    assert!(
        v["capabilities"].get("m.account_moderation").is_none(),
        "{v}"
    );
    let lock = format!("/_matrix/client/v1/admin/lock/{bob_id}");
    let suspend = format!("/_matrix/client/v1/admin/suspend/{bob_id}");
    assert_eq!(
        call(&root, "PUT", &lock, Some(json!({"locked": true})))
            .await
            .0,
        200
    );
    assert_eq!(call(&root, "GET", &lock, None).await.1["locked"], true);
    let (st, v) = call(&bob, "GET", "/_matrix/client/v3/account/whoami", None).await;
    assert_eq!(
        (st, v["errcode"].as_str(), v["soft_logout"].as_bool()),
        (401, Some("M_USER_LOCKED"), Some(true)),
        "{v}"
    );
    assert_eq!(
        call(&root, "PUT", &lock, Some(json!({"locked": false})))
            .await
            .0,
        200
    );
    let room = bob.create_room(|r| r.name = Some("Bob's".into())).await;
    assert_eq!(
        call(&root, "PUT", &suspend, Some(json!({"suspended": true})))
            .await
            .0,
        200
    );
    let err = bob.send_text(&room, "while suspended").await.unwrap_err();
    assert_eq!(
        (err.status, err.errcode.as_str()),
        (403, "M_USER_SUSPENDED")
    );
    let (st, _) = call(&bob, "GET", "/_matrix/client/v3/account/whoami", None).await;
    assert_eq!(st, 200, "a suspended account still reads");
    assert_eq!(
        call(&root, "PUT", &suspend, Some(json!({"suspended": false})))
            .await
            .0,
        200
    );
    let said = bob.send_text(&room, "words to take back").await.unwrap();
    let (st, v) = call(&root, "PUT", &lock, Some(json!({"locked": "yes"}))).await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_BAD_JSON")),
        "{v}"
    );
    let (st, _) = call(
        &root,
        "PUT",
        &format!("/_matrix/client/v1/admin/lock/{}", root.uid()),
        Some(json!({"locked": true})),
    )
    .await;
    assert_eq!(st, 403, "not on another admin");

    // Rooms.
    let (st, v) = call(&root, "GET", &format!("{A}/rooms"), None).await;
    assert_eq!(st, 200, "{v}");
    let listed = v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (listed["name"].as_str(), listed["joined_members"].as_u64()),
        (Some("Bob's"), Some(1)),
        "{listed}"
    );
    assert!(listed["events"].as_u64().unwrap() >= 7, "{listed}");
    let (st, v) = call(&root, "GET", &format!("{A}/rooms/{room}"), None).await;
    assert_eq!(
        (st, v["creator"].as_str()),
        (200, Some(bob_id.as_str())),
        "{v}"
    );
    let (_, v) = call(&root, "GET", &format!("{A}/rooms/{room}/state"), None).await;
    assert!(
        v["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create"),
        "{v}"
    );
    let (_, v) = call(&root, "GET", &format!("{A}/rooms/{room}/members"), None).await;
    assert_eq!(v["members"][0]["membership"], "join", "{v}");
    let public = bob
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    assert_eq!(
        call(
            &root,
            "PUT",
            &format!("{A}/rooms/{public}/block"),
            Some(json!({"block": true}))
        )
        .await
        .0,
        200
    );
    let err = carol.join(&public).await.unwrap_err();
    assert_eq!(err.status, 403, "a blocked room cannot be joined");
    let (st, v) = call(&root, "DELETE", &format!("{A}/rooms/{public}"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        call(&root, "GET", &format!("{A}/rooms/{public}"), None)
            .await
            .0,
        404
    );

    // Purging old history: the messages go, the room and its state stay.
    let history = root.create_room(|r| r.name = Some("History".into())).await;
    for i in 0..5 {
        root.send_text(&history, &format!("old {i}")).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    root.send_text(&history, "new").await.unwrap();
    let (st, v) = call(
        &root,
        "POST",
        &format!("{A}/rooms/{history}/purge_history"),
        Some(json!({"before_ts": cutoff})),
    )
    .await;
    assert_eq!((st, v["purged_events"].as_u64()), (200, Some(5)), "{v}");
    assert_eq!(root.message_bodies(&history).await, ["new"]);
    let (_, v) = call(&root, "GET", &format!("{A}/rooms/{history}"), None).await;
    assert_eq!(v["name"], "History", "{v}");
    root.send_text(&history, "after the purge").await.unwrap();
    assert_eq!(
        root.message_bodies(&history).await,
        ["new", "after the purge"]
    );

    // Registration tokens.
    let (st, v) = call(
        &root,
        "POST",
        &format!("{A}/registration_tokens"),
        Some(json!({"uses_allowed": 1})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let validity =
        format!("/_matrix/client/v1/register/m.login.registration_token/validity?token={token}");
    assert_eq!(call(&carol, "GET", &validity, None).await.1["valid"], true);
    let (_, v) = call(&root, "GET", &format!("{A}/registration_tokens"), None).await;
    assert!(
        v["registration_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["token"] == token.as_str()),
        "{v}"
    );
    assert_eq!(
        call(
            &root,
            "DELETE",
            &format!("{A}/registration_tokens/{token}"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(call(&carol, "GET", &validity, None).await.1["valid"], false);
    assert_eq!(
        call(
            &root,
            "DELETE",
            &format!("{A}/registration_tokens/{token}"),
            None
        )
        .await
        .0,
        404
    );

    // Server notices.
    let (st, v) = call(
        &root,
        "POST",
        &format!("{A}/server_notices"),
        Some(json!({"user_id": carol.uid(), "content": {"body": "Maintenance tonight"}})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let notice_room = ruma::RoomId::parse(v["room_id"].as_str().unwrap()).unwrap();
    let s1 = carol.sync(None, 0).await;
    assert!(
        s1.rooms.invite.contains_key(&notice_room),
        "the notices room invites carol"
    );
    carol.join(&notice_room).await.unwrap();
    assert_eq!(
        carol.message_bodies(&notice_room).await,
        ["Maintenance tonight"]
    );
    let (_, v) = call(
        &carol,
        "GET",
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{notice_room}/tags",
            carol.uid()
        ),
        None,
    )
    .await;
    assert!(v["tags"].get("m.server_notice").is_some(), "{v}");

    // Reports.
    let (st, _) = call(
        &carol,
        "POST",
        &format!("/_matrix/client/v3/rooms/{notice_room}/report/{said}"),
        Some(json!({"reason": "spam"})),
    )
    .await;
    assert_eq!(st, 404, "carol cannot report what she cannot see");
    bob.raw(
        "POST",
        &format!("/_matrix/client/v3/rooms/{room}/invite"),
        Some(&json!({"user_id": carol.uid()}).to_string()),
    )
    .await;
    carol.join(&room).await.unwrap();
    let (st, v) = call(
        &carol,
        "POST",
        &format!("/_matrix/client/v3/rooms/{room}/report/{said}"),
        Some(json!({"reason": "rude"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = call(&root, "GET", &format!("{A}/reports"), None).await;
    let report = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "rude")
        .cloned()
        .unwrap();
    let id = report["id"].as_u64().unwrap();
    let (st, v) = call(
        &root,
        "POST",
        &format!("{A}/reports/{id}/resolve"),
        Some(json!({"note": "warned"})),
    )
    .await;
    assert_eq!(
        (st, v["resolved"]["note"].as_str()),
        (200, Some("warned")),
        "{v}"
    );
    let (_, v) = call(&root, "GET", &format!("{A}/reports"), None).await;
    assert!(
        v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != id),
        "resolved: {v}"
    );
    let (_, v) = call(&root, "GET", &format!("{A}/reports?all=true"), None).await;
    assert!(
        v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id),
        "{v}"
    );

    // The original of a redacted event.
    bob.raw(
        "PUT",
        &format!("/_matrix/client/v3/rooms/{room}/redact/{said}/r1"),
        Some("{}"),
    )
    .await;
    let (st, v) = call(&root, "GET", &format!("{A}/events/{said}/original"), None).await;
    assert_eq!((st, v["redacted"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(
        v["original"]["content"]["body"], "words to take back",
        "{v}"
    );
    let (_, v) = call(
        &bob,
        "GET",
        &format!("/_matrix/client/v3/rooms/{room}/event/{said}"),
        None,
    )
    .await;
    assert_eq!(v["content"], json!({}), "members see it redacted: {v}");

    // Media.
    let http = reqwest::Client::new();
    let up: Value = http
        .post(format!("{}/_matrix/media/v3/upload?filename=a.txt", s.base))
        .bearer_auth(bob.token.as_ref().unwrap())
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media_id = up["content_uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, v) = call(&root, "GET", &format!("{A}/users/{bob_id}/media"), None).await;
    assert_eq!(v["media"][0]["media_id"], media_id.as_str(), "{v}");
    let download = |id: String| {
        let url = format!(
            "{}/_matrix/client/v1/media/download/{}/{id}",
            s.base,
            s.base
                .trim_start_matches("http://")
                .replace("127.0.0.1", "localhost")
        );
        let (http, token) = (http.clone(), bob.token.clone().unwrap());
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(download(media_id.clone()).await, 200);
    assert_eq!(
        call(
            &root,
            "POST",
            &format!("{A}/media/{media_id}/quarantine"),
            Some(json!({"quarantined": true}))
        )
        .await
        .0,
        200
    );
    assert_eq!(download(media_id.clone()).await, 404, "quarantined");
    assert_eq!(
        call(
            &root,
            "POST",
            &format!("{A}/media/{media_id}/quarantine"),
            Some(json!({"quarantined": false}))
        )
        .await
        .0,
        200
    );
    assert_eq!(download(media_id.clone()).await, 200);
    assert_eq!(
        call(&root, "DELETE", &format!("{A}/media/{media_id}"), None)
            .await
            .0,
        200
    );
    assert_eq!(download(media_id.clone()).await, 404, "deleted");

    // Password reset logs the user out; deactivation ends the account.
    let (st, _) = call(
        &root,
        "POST",
        &format!("{A}/users/{bob_id}/password"),
        Some(json!({"new_password": "fresh"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        call(&bob, "GET", "/_matrix/client/v3/account/whoami", None)
            .await
            .0,
        401
    );
    let bob = s.login("bob", "fresh").await;
    let (st, _) = call(
        &root,
        "POST",
        &format!("{A}/users/{bob_id}/deactivate"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        call(&bob, "GET", "/_matrix/client/v3/account/whoami", None)
            .await
            .0,
        401
    );
    let (_, v) = call(&root, "GET", &format!("{A}/users/{bob_id}"), None).await;
    assert_eq!(
        (
            v["deactivated"].as_bool(),
            v["joined_rooms"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0)),
        "{v}"
    );

    // Every call is in the audit log, refusals included.
    let (st, v) = call(&root, "GET", &format!("{A}/audit?limit=1000"), None).await;
    assert_eq!(st, 200);
    let entries = v["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["actor"] == bob_id.as_str()
            && e["status"] == 403
            && e["path"] == format!("{A}/users")),
        "{v}"
    );
    assert!(
        entries.iter().any(|e| e["actor"] == root.uid().as_str()
            && e["method"] == "DELETE"
            && e["status"] == 200),
        "{v}"
    );
    assert!(
        entries.iter().all(|e| !e.to_string().contains("fresh")),
        "no passwords in the audit log"
    );

    // The command line on the stopped server.
    s.kill9();
    let users = command(&s, &["list-users"]);
    assert!(
        users.contains("(admin)") && users.contains("(deactivated)"),
        "{users}"
    );
    let rooms = command(&s, &["list-rooms"]);
    assert!(rooms.contains(room.as_str()), "{rooms}");
    let check = command(&s, &["check"]);
    assert!(check.trim_end().ends_with("ok"), "{check}");
    let key = command(&s, &["signing-key"]);
    assert!(key.starts_with("ed25519:"), "{key}");
    let export: Value =
        serde_json::from_str(&command(&s, &["export-room", room.as_str()])).unwrap();
    let redacted = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["event_id"] == said.as_str())
        .unwrap();
    assert_eq!(
        redacted["redacted_original"]["content"]["body"], "words to take back",
        "{redacted}"
    );
    let token = command(&s, &["create-registration-token", "--uses", "3"]);
    assert!(command(&s, &["list-registration-tokens"]).contains(token.trim()));
    command(&s, &["revoke-registration-token", token.trim()]);
    command(&s, &["reset-password", "carol", "newpass"]);
    let out = command(&s, &["deactivate", "dave"]);
    assert!(out.contains("deactivated"), "{out}");
    assert!(command(&s, &["list-users"]).contains(&format!("{} (deactivated)", dave.uid())));
    let out = command(&s, &["compact"]);
    assert!(out.contains("entries rewritten"), "{out}");
    assert!(command(&s, &["check"]).trim_end().ends_with("ok"));
    let bad = s.command(&["reset-password", "nobody", "x"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no account"),
        "{bad:?}"
    );
    s.spawn().await;
    s.login("carol", "newpass").await;
    // Compacted, the data is all there: the room and its history.
    let (st, v) = call(&root, "GET", &format!("{A}/rooms/{room}"), None).await;
    assert_eq!(st, 200, "the admin's session survived too: {v}");
    assert!(v["events"].as_u64().unwrap() >= 8, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_load_restores_with_nothing_missing() {
    let mut s = Server::start().await;
    let alice = s.user("alice").await;
    let room = alice.create_room(|_| {}).await;
    // Four writers keep sending while the backup is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (c, room, stop, acked) = (alice.clone(), room.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("w{w}-{i}");
                c.send_text(&room, &body).await.unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push((body, std::time::Instant::now()));
                i += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b1");
    let started = std::time::Instant::now();
    let out = command(&s, &["backup", dir.to_str().unwrap()]);
    assert!(out.contains("database entries"), "{out}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, t)| *t < started)
        .map(|(b, _)| b)
        .collect();
    let after = acked.len() - before.len();
    assert!(
        before.len() > 20 && after > 0,
        "{} before, {after} after",
        before.len()
    );

    // Not while the server runs.
    let refused = s.command(&["restore", dir.to_str().unwrap()]);
    assert!(!refused.status.success(), "{refused:?}");
    s.kill9();
    command(&s, &["restore", dir.to_str().unwrap()]);
    assert!(command(&s, &["check"]).trim_end().ends_with("ok"));
    s.spawn().await;
    let bodies = alice.message_bodies(&room).await;
    for b in &before {
        assert!(
            bodies.contains(b),
            "{b}, acknowledged before the backup, is missing"
        );
    }
    // The restored server works on: new messages, and the backup's state intact.
    alice.send_text(&room, "after the restore").await.unwrap();
    assert_eq!(
        alice.message_bodies(&room).await.last().map(String::as_str),
        Some("after the restore")
    );
    println!(
        "backup: {} messages acknowledged before it, {} after; {out}",
        before.len(),
        after
    );
}

/// Refused admin calls cannot grow the audit log: past ten a minute they are answered 429 and
/// not recorded, and what is recorded is cut to a bounded length. The Synapse-compatible room
/// deletion goes through the same gate and is audited.
#[tokio::test(flavor = "multi_thread")]
async fn refused_admin_calls_are_bounded_and_every_admin_route_is_audited() {
    let s = Server::start_with(vec![
        ("HAVEN_RATE_LIMITS__ENABLED", "true"),
        ("HAVEN_RATE_LIMITS__PER_SECOND", "1000.0"),
        ("HAVEN_RATE_LIMITS__BURST", "1000"),
    ])
    .await;
    let out = command(
        &s,
        &["create-user", "root", "--password", "secret", "--admin"],
    );
    assert!(out.contains("created @root:"), "{out}");
    let root = s.login("root", "secret").await;
    let mallory = s.user("mallory").await;
    let long = "x".repeat(4000);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let (st, _) = call(&mallory, "GET", &format!("{A}/users/{long}"), None).await;
        statuses.push(st);
    }
    assert!(statuses[..10].iter().all(|s| *s == 403), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");

    let room = root.create_room(|_| {}).await;
    let (st, v) = call(
        &root,
        "DELETE",
        &format!("/_synapse/admin/v1/rooms/{room}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = call(
        &mallory,
        "DELETE",
        &format!("/_synapse/admin/v1/rooms/{room}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 429, "the refusal budget is spent");

    let (st, v) = call(&root, "GET", &format!("{A}/audit?limit=1000"), None).await;
    assert_eq!(st, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e["actor"] == mallory.uid().as_str())
        .collect();
    assert_eq!(refused.len(), 10, "{v}");
    assert!(
        entries
            .iter()
            .all(|e| e["path"].as_str().unwrap().len() < 400),
        "{v}"
    );
    assert!(
        entries.iter().any(|e| e["actor"] == root.uid().as_str()
            && e["method"] == "DELETE"
            && e["path"]
                .as_str()
                .unwrap()
                .starts_with("/_synapse/admin/v1/rooms/")
            && e["status"] == 200),
        "{v}"
    );
}
