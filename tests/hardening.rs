//! Regression tests for defects found by testing Haven as an attacker would (issue 16): each
//! against the real binary, each failing before its fix.

mod common;

use common::Server;
use serde_json::{json, Value};

/// Transaction IDs are scoped to the device and the request path: the same ID in another room
/// or with another event type is another message (it used to answer the first event's ID and
/// drop the message).
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_id_is_scoped_to_the_request_path() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let (r1, r2) = (
        alice.create_room(|_| {}).await,
        alice.create_room(|_| {}).await,
    );
    let send = |room: &ruma::RoomId, kind: &str, body: &str| {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/{kind}/same-txn");
        let body = json!({"msgtype": "m.text", "body": body}).to_string();
        let alice = &alice;
        async move {
            let (st, v) = alice.raw("PUT", &path, Some(&body)).await;
            assert_eq!(st, 200, "{v}");
            v["event_id"].as_str().unwrap().to_owned()
        }
    };
    let first = send(&r1, "m.room.message", "one").await;
    let retried = send(&r1, "m.room.message", "one").await;
    assert_eq!(first, retried, "a retry is the same transaction");
    let other_room = send(&r2, "m.room.message", "two").await;
    let other_type = send(&r1, "org.example.note", "three").await;
    assert!(first != other_room && first != other_type && other_room != other_type);
    assert!(alice.message_bodies(&r2).await.contains(&"two".to_owned()));

    // The sending device gets its own transaction ID back, unchanged, to match the event
    // with its local echo (scoping it once leaked the scope into `unsigned.transaction_id`,
    // and matrix-rust-sdk lost track of its own messages).
    let (_, sync) = alice.raw("GET", "/_matrix/client/v3/sync", None).await;
    let events = sync["rooms"]["join"][r1.as_str()]["timeline"]["events"]
        .as_array()
        .unwrap();
    let sent = events
        .iter()
        .find(|e| e["event_id"] == first.as_str())
        .unwrap();
    assert_eq!(sent["unsigned"]["transaction_id"], "same-txn", "{sent}");
    let (_, ev) = alice
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{r1}/event/{other_type}"),
            None,
        )
        .await;
    assert_eq!(ev["unsigned"]["transaction_id"], "same-txn", "{ev}");
}

/// Concurrent `sendToDevice` requests with one transaction ID deliver the message once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_retries_of_a_to_device_message_deliver_it_once() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let device = bob.device_id().await;
    let since = bob
        .raw("GET", "/_matrix/client/v3/sync?timeout=0", None)
        .await
        .1["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    // Five transactions, each sent by 32 requests at once.
    let sends = (0..5).flat_map(|round| {
        let body =
            json!({"messages": {bob.uid().as_str(): {&device: {"round": round}}}}).to_string();
        (0..32).map(move |_| (round, body.clone()))
    });
    let sends = sends.map(|(round, body)| {
        let alice = &alice;
        async move {
            alice
                .raw(
                    "PUT",
                    &format!("/_matrix/client/v3/sendToDevice/org.example.ping/round{round}"),
                    Some(&body),
                )
                .await
                .0
        }
    });
    for st in futures::future::join_all(sends).await {
        assert_eq!(st, 200);
    }
    let (_, v) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/sync?timeout=0&since={since}"),
            None,
        )
        .await;
    let rounds: Vec<i64> = v["to_device"]["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["type"] == "org.example.ping")
                .filter_map(|e| e["content"]["round"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    let mut sorted = rounds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![0, 1, 2, 3, 4],
        "each transaction once: {rounds:?}"
    );
}

/// Whether anything connects to `listener` within `secs` seconds.
async fn connected(listener: &tokio::net::TcpListener, secs: u64) -> bool {
    tokio::time::timeout(std::time::Duration::from_secs(secs), listener.accept())
        .await
        .is_ok()
}

/// Nobody can make the server connect to its own machine or network: not a notary request
/// naming a loopback server, nor a request signed as one (whose keys it would fetch).
#[tokio::test(flavor = "multi_thread")]
async fn no_request_makes_the_server_connect_to_internal_addresses() {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let name = target.local_addr().unwrap().to_string();
    let http = reqwest::Client::new();
    let notary = |base: String| {
        let (http, name) = (http.clone(), name.clone());
        async move {
            http.post(format!("{base}/_matrix/key/v2/query"))
                .json(&json!({"server_keys": {name: {}}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let s = Server::start().await;
    assert_eq!(notary(s.base.clone()).await, 200);
    let r = http
        .get(format!("{}/_matrix/key/v2/query/{name}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/_matrix/federation/v1/version", s.base))
        .header(
            "authorization",
            format!("X-Matrix origin=\"{name}\",key=\"ed25519:a\",sig=\"c2ln\""),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status().is_success());
    let r = http
        .get(format!("{}/_matrix/federation/v1/query/profile?user_id=@a:{name}", s.base))
        .header(
            "authorization",
            format!("X-Matrix origin=\"{name}\",destination=\"localhost:{}\",key=\"ed25519:a\",sig=\"c2ln\"", s.port),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        !connected(&target, 3).await,
        "the server connected to {name}"
    );

    // One request names at most 20 servers.
    let many: serde_json::Map<String, Value> = (0..21)
        .map(|i| (format!("s{i}.example.org"), json!({})))
        .collect();
    let r = http
        .post(format!("{}/_matrix/key/v2/query", s.base))
        .json(&json!({"server_keys": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The same request does reach a range the operator allows (the check above can fail).
    let open = Server::start_with(vec![(
        "HAVEN_OUTBOUND__IP_RANGE_ALLOWLIST",
        "[\"127.0.0.0/8\"]",
    )])
    .await;
    tokio::spawn(notary(open.base.clone()));
    assert!(
        connected(&target, 30).await,
        "the allowed range was not connected to"
    );
}

/// Errors raised before a handler runs answer in Matrix's format too.
#[tokio::test(flavor = "multi_thread")]
async fn every_error_is_a_matrix_error() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let http = reqwest::Client::new();
    let token = alice.token.clone().unwrap();
    let get = |path: String| {
        let (http, token, base) = (http.clone(), token.clone(), s.base.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let json: Value = r.json().await.unwrap_or(Value::Null);
            (status, json["errcode"].as_str().map(str::to_owned))
        }
    };
    let thumb = format!(
        "/_matrix/client/v1/media/thumbnail/localhost:{}/abc",
        s.port
    );
    assert_eq!(
        get(format!("{thumb}?width=wide&height=10")).await,
        (400, Some("M_INVALID_PARAM".into()))
    );
    assert_eq!(
        get(format!("{thumb}?height=10")).await,
        (400, Some("M_MISSING_PARAM".into()))
    );
    let long = "a".repeat(10_000);
    assert_eq!(
        get(format!("/_matrix/client/v3/profile/{long}")).await,
        (414, Some("M_TOO_LARGE".into()))
    );
    // A path parameter that is not valid percent-encoded UTF-8.
    let (status, code) = get("/_matrix/client/v3/rooms/%FF/state".into()).await;
    assert!(status == 400 || status == 404, "{status}");
    assert!(code.is_some());
}

/// A header token and a different query token are refused; a deactivated account is refused
/// in authentication itself, including an appservice acting as a deactivated user.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_unambiguous_and_deactivated_accounts_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::Port::new();
    let reg = dir.path().join("as.yaml");
    std::fs::write(
        &reg,
        format!(
            "id: bridge\nurl: null\nas_token: as_token_hardening_0123456789\nhs_token: hs_token_hardening_0123456789\nsender_localpart: bridgebot\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@bridge_.*:localhost:{}'\n",
            port.port()
        ),
    )
    .unwrap();
    let regs = format!("[\"{}\"]", reg.display());
    let s = Server::start_on(
        vec![port],
        vec![("HAVEN_APPSERVICES__REGISTRATIONS", &regs)],
    )
    .await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let http = reqwest::Client::new();
    let whoami = |query: Option<&str>, header: Option<&str>| {
        let mut url = format!("{}/_matrix/client/v3/account/whoami", s.base);
        if let Some(q) = query {
            url.push_str(&format!("?access_token={q}"));
        }
        let mut rb = http.get(url);
        if let Some(h) = header {
            rb = rb.bearer_auth(h);
        }
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let json: Value = r.json().await.unwrap_or(Value::Null);
            (status, json)
        }
    };
    let (a, b) = (alice.token.clone().unwrap(), bob.token.clone().unwrap());
    let (st, v) = whoami(Some(&b), Some(&a)).await;
    assert_eq!(
        (st, v["errcode"].as_str()),
        (400, Some("M_INVALID_PARAM")),
        "{v}"
    );
    let (st, v) = whoami(Some(&a), Some(&a)).await;
    assert_eq!(
        (st, v["user_id"].as_str()),
        (200, Some(alice.uid().as_str())),
        "{v}"
    );

    // The appservice's user, deactivated: the appservice can no longer act as it.
    let as_token = "as_token_hardening_0123456789";
    let r = http
        .post(format!("{}/_matrix/client/v3/register", s.base))
        .bearer_auth(as_token)
        .json(&json!({"type": "m.login.application_service", "username": "bridge_x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let user = format!("@bridge_x:localhost:{}", s.port);
    let as_whoami = || {
        http.get(format!(
            "{}/_matrix/client/v3/account/whoami?user_id={}",
            s.base,
            user.replace('@', "%40").replace(':', "%3A")
        ))
        .bearer_auth(as_token)
        .send()
    };
    assert_eq!(as_whoami().await.unwrap().status(), 200);
    let r = http
        .post(format!(
            "{}/_matrix/client/v3/account/deactivate?user_id={}",
            s.base,
            user.replace('@', "%40").replace(':', "%3A")
        ))
        .bearer_auth(as_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = as_whoami().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], "M_USER_DEACTIVATED", "{v}");
}

/// The spec's limits: event types and state keys of at most 255 bytes, user IDs of at most
/// 255 bytes, no `_`-prefixed or all-digit localparts for people, passwords of at most 512
/// bytes (a 1 MB one is refused before it costs any hashing).
#[tokio::test(flavor = "multi_thread")]
async fn the_specs_limits_hold() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let room = alice.create_room(|_| {}).await;
    let long = "x".repeat(256);
    let errcode = |v: &Value| v["errcode"].as_str().unwrap_or_default().to_owned();
    for path in [
        format!("/_matrix/client/v3/rooms/{room}/state/org.{long}/"),
        format!("/_matrix/client/v3/rooms/{room}/state/org.example.thing/{long}"),
        format!("/_matrix/client/v3/rooms/{room}/send/org.{long}/t1"),
    ] {
        let (st, v) = alice.raw("PUT", &path, Some("{}")).await;
        assert_eq!((st, errcode(&v).as_str()), (413, "M_TOO_LARGE"), "{v}");
    }
    // Exactly 255 bytes is fine.
    let (st, v) = alice
        .raw(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/org.example.thing/{}",
                "y".repeat(255)
            ),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // A user ID over 255 bytes.
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({"user_id": format!("@{long}:localhost:{}", s.port)}).to_string()),
        )
        .await;
    assert_eq!(st, 400, "{v}");

    let register = |username: String, password: String| {
        let base = s.base.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/_matrix/client/v3/register"))
                .json(&json!({"username": username, "password": password,
                              "auth": {"type": "m.login.dummy"}}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v["errcode"].as_str().unwrap_or_default().to_owned())
        }
    };
    let pw = || "a good password".to_owned();
    assert_eq!(
        register("_bob".into(), pw()).await,
        (400, "M_INVALID_USERNAME".into())
    );
    assert_eq!(
        register("12345".into(), pw()).await,
        (400, "M_INVALID_USERNAME".into())
    );
    assert_eq!(
        register("b".repeat(260), pw()).await,
        (400, "M_INVALID_USERNAME".into())
    );
    let start = std::time::Instant::now();
    // (A 1 MB one is over the request size limit itself: 413.)
    assert_eq!(
        register("carol".into(), "p".repeat(1 << 20)).await,
        (413, "M_TOO_LARGE".into())
    );
    assert_eq!(
        register("carol".into(), "p".repeat(100_000)).await,
        (400, "M_INVALID_PARAM".into())
    );
    assert_eq!(
        register("carol".into(), "p".repeat(513)).await,
        (400, "M_INVALID_PARAM".into())
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(register("carol".into(), "p".repeat(512)).await.0, 200);
}

/// Reads from `stream` until the server closes it; `true` if that happens within `secs`.
async fn closed_within(stream: &mut tokio::net::TcpStream, secs: u64) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Slow clients cannot hold connections: headers, bodies and idle keep-alive connections have
/// deadlines, and one address may hold only so many connections.
#[tokio::test(flavor = "multi_thread")]
async fn slow_and_greedy_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start_with(vec![
        ("HAVEN_LIMITS__HEADER_READ_TIMEOUT_S", "1"),
        ("HAVEN_LIMITS__BODY_READ_TIMEOUT_S", "1"),
        ("HAVEN_LIMITS__MAX_CONNECTIONS_PER_IP", "3"),
        ("HAVEN_LIMITS__CONNECTION_LIMIT_EXEMPT", "[]"),
    ])
    .await;
    let addr = format!("127.0.0.1:{}", s.port);
    let connect = || tokio::net::TcpStream::connect(addr.clone());

    // Headers that never end.
    let mut c = connect().await.unwrap();
    c.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut c, 5).await, "partial headers held open");

    // An idle keep-alive connection after one request.
    let mut c = connect().await.unwrap();
    c.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut c, 5).await, "idle keep-alive held open");

    // A body that never arrives in full.
    let mut c = connect().await.unwrap();
    c.write_all(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    assert!(closed_within(&mut c, 5).await, "partial body held open");

    // Three connections from one address at most; a fourth is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect().await.unwrap();
        c.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    let mut fourth = connect().await.unwrap();
    assert!(
        closed_within(&mut fourth, 1).await,
        "a fourth connection was served"
    );
    // Once they are gone (their headers timed out), the address is served again.
    for mut c in held {
        assert!(closed_within(&mut c, 5).await);
    }
    let r = reqwest::get(format!("{}/_matrix/client/versions", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Per-account and per-address limits with the shipped defaults: wrong passwords, sign-ups,
/// messages and room creations are refused with 429 and `retry_after_ms` past a burst; an
/// admin is exempt; behind the (trusted, loopback) reverse proxy, `X-Forwarded-For` names the
/// client whose limit counts.
#[tokio::test(flavor = "multi_thread")]
async fn abuse_from_one_account_or_address_is_rate_limited() {
    let mut s = Server::start_with(vec![
        ("HAVEN_RATE_LIMITS__ENABLED", "true"),
        // The spec's per-endpoint limit out of the way: the per-action defaults are tested.
        ("HAVEN_RATE_LIMITS__PER_SECOND", "1000.0"),
        ("HAVEN_RATE_LIMITS__BURST", "1000"),
    ])
    .await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value, xff: Option<String>| {
        let mut rb = http.post(format!("{}{path}", s.base)).json(&body);
        if let Some(x) = xff {
            rb = rb.header("x-forwarded-for", x);
        }
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v)
        }
    };
    let register = |name: String, xff: Option<String>| {
        post(
            "/_matrix/client/v3/register",
            json!({"username": name, "password": "a good password", "auth": {"type": "m.login.dummy"}}),
            xff,
        )
    };
    // Sign-ups from one address: three, then 429.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(
            register(format!("u{i}x"), Some("198.51.100.1".into()))
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Other addresses behind the same proxy are counted apart.
    for i in 0..3 {
        let (st, v) = register(format!("w{i}x"), Some(format!("198.51.100.{}", 10 + i))).await;
        assert_eq!(st, 200, "{v}");
    }

    // Wrong passwords for one account: three failures, then refused even with the right one.
    let login = |password: &str| {
        post(
            "/_matrix/client/v3/login",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "u0x"}, "password": password}),
            None,
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(login("wrong").await.0);
    }
    assert_eq!(&statuses[..3], &[403, 403, 403], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let (st, v) = login("a good password").await;
    assert_eq!(st, 429, "{v}");
    assert!(v["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{v}");

    // Messages and room creations from one user.
    let out = s.command(&["create-user", "root", "--password", "secret", "--admin"]);
    assert!(out.status.success(), "{out:?}");
    let alice = s.login("w0x", "a good password").await;
    let mut created = Vec::new();
    for _ in 0..12 {
        created.push(
            alice
                .raw("POST", "/_matrix/client/v3/createRoom", Some("{}"))
                .await,
        );
    }
    let ok = created.iter().filter(|(st, _)| *st == 200).count();
    assert_eq!(
        ok,
        10,
        "{:?}",
        created.iter().map(|c| c.0).collect::<Vec<_>>()
    );
    assert_eq!(created[11].0, 429);
    let room = created[0].1["room_id"].as_str().unwrap().to_owned();
    let mut sent = Vec::new();
    for i in 0..14 {
        let (st, _) = alice
            .raw(
                "PUT",
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/m{i}"),
                Some(r#"{"msgtype":"m.text","body":"spam"}"#),
            )
            .await;
        sent.push(st);
    }
    assert!(sent[..10].iter().all(|s| *s == 200), "{sent:?}");
    assert!(sent[10..].iter().all(|s| *s == 429), "{sent:?}");

    // An admin is not limited.
    let root = s.login("root", "secret").await;
    let (_, v) = root
        .raw("POST", "/_matrix/client/v3/createRoom", Some("{}"))
        .await;
    let room = v["room_id"].as_str().unwrap().to_owned();
    for i in 0..20 {
        let (st, v) = root
            .raw(
                "PUT",
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/r{i}"),
                Some(r#"{"msgtype":"m.text","body":"notice"}"#),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    s.kill9();
}

/// A TLS handshake on the federation listener that never completes is cut off.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_tls_handshake_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let certs = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let fed = common::Port::new();
    let fed_addr = fed.addr();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let _s = Server::start_on(
        vec![common::Port::new(), fed],
        vec![
            ("HAVEN_FEDERATION__LISTEN", fed_addr.as_str()),
            ("HAVEN_FEDERATION__TLS_CERTIFICATE", cert.as_str()),
            ("HAVEN_FEDERATION__TLS_PRIVATE_KEY", key.as_str()),
            ("HAVEN_LIMITS__TLS_HANDSHAKE_TIMEOUT_S", "1"),
        ],
    )
    .await;
    // Nothing sent, and half a ClientHello.
    let mut silent = tokio::net::TcpStream::connect(&fed_addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(&fed_addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    assert!(
        closed_within(&mut silent, 5).await,
        "a silent connection held open"
    );
    assert!(
        closed_within(&mut partial, 5).await,
        "a partial handshake held open"
    );
}
