//! Shared by the appservices' end-to-end tests: free ports, child processes killed on drop,
//! sibling binaries, waiting, local doubles of outside services (Twilio's Messages API, webhook
//! receivers) and a small client-server API client.

use std::{
    path::PathBuf,
    process::{Child, Command},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{extract::State, routing::post, Form, Json, Router};
use serde_json::{json, Value};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A binary of a workspace package next to the running test binary, built when missing
/// (`cargo test --workspace` builds them all).
pub fn sibling_binary(package: &str, bin: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .expect("the test binary")
        .parent()
        .and_then(|p| p.parent())
        .expect("target directory")
        .to_path_buf();
    let path = dir.join(bin);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "-p", package, "--bin", bin];
        if dir.ends_with("release") {
            args.push("--release"); // a benchmark: the release build next to it
        }
        let ok = Command::new(cargo)
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cannot build {bin}");
    }
    path
}

/// Polls `f` every 50 ms for up to 30 s.
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `url` answers at all (a server has started).
pub async fn wait_http(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn serve(app: Router) -> String {
    // Port 0: the listener keeps the port it is given (a port found free and bound later can be
    // taken meanwhile by another test).
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}")
}

/// The forms posted to the Twilio double's Messages API.
pub type TwilioSent = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A local Twilio Messages API: records each message and answers like Twilio. Returns the
/// records and the base URL.
pub async fn twilio_double() -> (TwilioSent, String) {
    let sent: TwilioSent = Default::default();
    async fn create(
        State(s): State<TwilioSent>,
        Form(form): Form<Vec<(String, String)>>,
    ) -> Json<Value> {
        let mut all = s.lock().unwrap_or_else(|e| e.into_inner());
        all.push(form);
        Json(json!({ "sid": format!("SM{:032}", all.len()), "status": "queued" }))
    }
    let app = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
        .with_state(sent.clone());
    (sent.clone(), serve(app).await)
}

/// Bodies of the texts sent to `to`, in order.
pub fn texts_to(sent: &TwilioSent, to: &str) -> Vec<String> {
    sent.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|f| f.iter().any(|(k, v)| k == "To" && v == to))
        .filter_map(|f| f.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()))
        .collect()
}

/// One request a webhook double received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A webhook receiver: records every POST (any path); answers 503 to the next `fail` ones
/// (only those to `fail_path`, when set).
#[derive(Clone, Default)]
pub struct Webhooks {
    pub received: Arc<Mutex<Vec<Hook>>>,
    pub fail: Arc<AtomicU32>,
    pub fail_path: Arc<Mutex<Option<String>>>,
}

impl Webhooks {
    pub fn all(&self) -> Vec<Hook> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub async fn webhook_double() -> (Webhooks, String) {
    let w = Webhooks::default();
    async fn receive(
        State(w): State<Webhooks>,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        let on_path = w
            .fail_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_none_or(|p| p == uri.path());
        let failing = on_path
            && w.fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        w.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Hook {
                path: uri.path().to_owned(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: body.to_vec(),
            });
        if failing {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            axum::http::StatusCode::OK
        }
    }
    let app = Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(w.clone());
    (w.clone(), serve(app).await)
}

/// The requests an OpenAI-compatible double received.
pub type ModelRequests = Arc<Mutex<Vec<Value>>>;

/// A local OpenAI-compatible chat-completions endpoint answering `answer(request)` as the
/// assistant's message (with fixed token counts). Returns the requests and the base URL.
pub async fn model_double(answer: fn(&Value) -> String) -> (ModelRequests, String) {
    #[derive(Clone)]
    struct S {
        requests: ModelRequests,
        answer: fn(&Value) -> String,
    }
    async fn complete(State(s): State<S>, Json(body): Json<Value>) -> Json<Value> {
        let content = (s.answer)(&body);
        s.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(body);
        Json(
            json!({"model": "double", "usage": {"prompt_tokens": 50, "completion_tokens": 10},
            "choices": [{"message": {"role": "assistant", "content": content}}]}),
        )
    }
    let requests: ModelRequests = Default::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(S {
            requests: requests.clone(),
            answer,
        });
    (requests, serve(app).await)
}

/// A small client-server API client for tests.
#[derive(Clone)]
pub struct Matrix {
    pub hs: String,
    pub http: reqwest::Client,
}

impl Matrix {
    pub fn new(hs: &str) -> Self {
        Self {
            hs: hs.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `(status, JSON body)` of a call under `/_matrix/client/v3`.
    pub async fn api(&self, method: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/_matrix/client/v3{path}", self.hs);
        let rb = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url).json(&body),
            "DELETE" => self.http.delete(url).json(&body),
            _ => self.http.post(url).json(&body),
        };
        let r = rb
            .bearer_auth(token)
            .send()
            .await
            .expect("homeserver reachable");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers `name` (password "pw"); returns (access token, user ID).
    pub async fn register(&self, name: &str) -> (String, String) {
        let r: Value = self
            .http
            .post(format!("{}/_matrix/client/v3/register", self.hs))
            .json(&json!({"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("register answer");
        (
            r["access_token"].as_str().expect("token").to_owned(),
            r["user_id"].as_str().expect("user id").to_owned(),
        )
    }

    /// Sends an `m.text`; returns its event ID.
    pub async fn say(&self, token: &str, room: &str, body: &str) -> String {
        static TXN: AtomicU32 = AtomicU32::new(0);
        let n = TXN.fetch_add(1, Ordering::SeqCst);
        let (status, v) = self
            .api(
                "PUT",
                token,
                &format!("/rooms/{room}/send/m.room.message/tk{n}"),
                json!({"msgtype": "m.text", "body": body}),
            )
            .await;
        assert_eq!(status, 200, "send: {v}");
        v["event_id"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn join(&self, token: &str, room: &str) -> u16 {
        self.api("POST", token, &format!("/rooms/{room}/join"), json!({}))
            .await
            .0
    }

    /// The room's messages, oldest first.
    pub async fn messages(&self, token: &str, room: &str) -> Vec<Value> {
        let (_, v) = self
            .api(
                "GET",
                token,
                &format!("/rooms/{room}/messages?dir=f&limit=500"),
                json!({}),
            )
            .await;
        v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .collect()
    }

    /// Waits until a message in `room` satisfies `pred`; returns it.
    pub async fn wait_message(
        &self,
        token: &str,
        room: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let msgs = self.messages(token, room).await;
            if let Some(m) = msgs.iter().find(|m| pred(m)) {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; messages: {:#?}",
                msgs.iter()
                    .map(|m| m["content"]["body"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a message whose body contains `needle`.
    pub async fn wait_text(&self, token: &str, room: &str, needle: &str) -> Value {
        self.wait_message(token, room, needle, |m| {
            m["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains(needle))
        })
        .await
    }

    /// The rooms `token`'s user has joined.
    pub async fn joined_rooms(&self, token: &str) -> Vec<String> {
        let (_, v) = self.api("GET", token, "/joined_rooms", json!({})).await;
        serde_json::from_value(v["joined_rooms"].clone()).unwrap_or_default()
    }

    /// The content of a state event, if set.
    pub async fn state(&self, token: &str, room: &str, kind: &str) -> Option<Value> {
        let (status, v) = self
            .api(
                "GET",
                token,
                &format!("/rooms/{room}/state/{kind}/"),
                json!({}),
            )
            .await;
        (status == 200).then_some(v)
    }

    /// Waits for at least one invite, then accepts every pending one; returns the rooms.
    pub async fn accept_new_invites(&self, token: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rooms = self.accept_invites(token).await;
            if !rooms.is_empty() {
                return rooms;
            }
            assert!(Instant::now() < deadline, "no invite came");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Accepts every pending invite of `token`'s user; returns the rooms joined.
    pub async fn accept_invites(&self, token: &str) -> Vec<String> {
        let (_, sync) = self.api("GET", token, "/sync?timeout=0", json!({})).await;
        let rooms: Vec<String> = sync["rooms"]["invite"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for r in &rooms {
            self.join(token, r).await;
        }
        rooms
    }
}
