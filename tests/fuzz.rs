//! Fuzzing the real server's request handling: generated paths, query strings and bodies (any
//! JSON, broken JSON, long and odd identifiers) against a sample of client and federation
//! endpoints. Whatever comes in, the answer is a success or a Matrix error in JSON: never a
//! 500, never a dropped connection (a panicking handler), and the server still answers after.

mod common;

use common::Server;
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::Value;

/// Endpoints to aim at; `{}` is filled with a generated path segment.
const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/v3/register"),
    ("POST", "/_matrix/client/v3/createRoom"),
    ("PUT", "/_matrix/client/v3/rooms/{}/send/m.room.message/{}"),
    ("PUT", "/_matrix/client/v3/rooms/{}/state/{}/{}"),
    ("GET", "/_matrix/client/v3/rooms/{}/messages"),
    ("POST", "/_matrix/client/v3/rooms/{}/invite"),
    ("POST", "/_matrix/client/v3/join/{}"),
    ("GET", "/_matrix/client/v3/sync"),
    ("POST", "/_matrix/client/v3/user/{}/filter"),
    ("PUT", "/_matrix/client/v3/profile/{}/displayname"),
    ("POST", "/_matrix/client/v3/keys/upload"),
    ("POST", "/_matrix/client/v3/keys/query"),
    ("PUT", "/_matrix/client/v3/sendToDevice/{}/{}"),
    ("POST", "/_matrix/client/v3/search"),
    ("GET", "/_matrix/client/v1/media/thumbnail/{}/{}"),
    (
        "POST",
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
    ),
    ("POST", "/_matrix/key/v2/query"),
    ("PUT", "/_matrix/federation/v1/send/{}"),
    ("GET", "/_matrix/federation/v1/event/{}"),
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,30}".prop_map(Value::from),
        "[@!#$][a-z0-9._=-]{0,20}:[a-z0-9.:]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("body".to_owned()),
                    Just("user_id".to_owned()),
                    Just("filter".to_owned()),
                    Just("identifier".to_owned()),
                    Just("auth".to_owned()),
                    ".{0,10}".boxed(),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: generated JSON, or bytes that are not JSON at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
    ]
}

/// A path segment: identifiers, odd characters, percent-encodings, very long ones.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!@#$][a-zA-Z0-9._=-]{0,20}:[a-z0-9.]{1,12}",
        "[a-zA-Z0-9%._~-]{0,30}",
        "(%[0-9A-F]{2}){1,6}",
        "[a-z]{300,600}",
    ]
}

#[test]
fn generated_requests_never_break_the_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Server::start());
    let alice = rt.block_on(s.user("alice"));
    let token = alice.token.clone().unwrap();
    let http = reqwest::Client::new();
    let strategy = (
        0..ENDPOINTS.len(),
        prop::collection::vec(segment(), 3),
        "[a-z_=&%0-9.]{0,40}",
        body(),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(e, segments, query, body, authed)| {
            let (method, template) = ENDPOINTS[e];
            let mut path = template.to_owned();
            for seg in &segments {
                path = path.replacen("{}", seg, 1);
            }
            let url = format!("{}{path}?{query}", s.base);
            let (status, text) = rt
                .block_on(async {
                    let mut rb = http
                        .request(method.parse().unwrap(), &url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if authed {
                        rb = rb.bearer_auth(&token);
                    }
                    let r = rb.send().await.map_err(|e| e.to_string())?;
                    let status = r.status().as_u16();
                    Ok::<_, String>((status, r.text().await.unwrap_or_default()))
                })
                .map_err(|e| TestCaseError::fail(format!("{method} {url}: no answer: {e}")))?;
            prop_assert!(status != 500, "{method} {url} answered 500: {text}");
            if status >= 400 {
                let v: Value = serde_json::from_str(&text).map_err(|_| {
                    TestCaseError::fail(format!("{method} {url}: {status} not JSON: {text}"))
                })?;
                // (A 401 answering user-interactive authentication lists its flows instead.)
                let uia = status == 401 && v.get("flows").is_some();
                prop_assert!(
                    uia || v["errcode"].as_str().is_some_and(|c| c.starts_with("M_")),
                    "{method} {url}: {status} without an errcode: {text}"
                );
            }
            Ok(())
        })
        .unwrap();
    let r = rt
        .block_on(
            http.get(format!("{}/_matrix/client/versions", s.base))
                .send(),
        )
        .unwrap();
    assert_eq!(r.status(), 200);
}
