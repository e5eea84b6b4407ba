//! Shared by the end-to-end tests: ports held for the processes under test, child processes
//! killed on drop, sibling binaries, waiting, outside packages the tests need (see [`outside`]),
//! local doubles of outside services (Twilio's Messages API, webhook receivers, a model server)
//! and a small client-server API client.

pub mod carrier;
pub mod outside;

use std::{
    os::fd::AsFd,
    path::PathBuf,
    process::{Child, Command},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{extract::State, routing::post, Form, Json, Router};
use command_fds::{CommandFdExt, FdMapping};
use serde_json::{json, Value};

/// How long a process under test may take to start answering: generous, because a debug build on
/// a loaded two-core machine can take many seconds, and a process that exits is noticed at once.
pub const START_DEADLINE: Duration = Duration::from_secs(180);

/// A loopback port held by the test: bound when made (port 0, so the system picks a free one) and
/// kept for as long as the value lives. Processes started with [`spawn_on`] are handed the bound
/// socket itself, so no other process can take the port between choosing it and using it, and a
/// restarted process gets the same port back.
#[derive(Debug)]
pub struct Port(std::net::TcpListener);

impl Port {
    pub fn new() -> Self {
        Self(std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port"))
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().expect("a bound address").port()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
}

impl Default for Port {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts `cmd` with `ports` handed over as its listening sockets, following systemd's socket
/// activation protocol (descriptors 3, 4, ... and `LISTEN_FDS`): Haven and the appservice
/// runtime listen on the handed-over socket bound to each configured address.
pub fn spawn_on(cmd: &mut Command, ports: &[&Port]) -> std::io::Result<Child> {
    let mappings = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(FdMapping {
                parent_fd: p.0.as_fd().try_clone_to_owned()?,
                child_fd: 3 + i as i32,
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    cmd.fd_mappings(mappings)
        .map_err(std::io::Error::other)?
        .env("LISTEN_FDS", ports.len().to_string())
        .env_remove("LISTEN_PID")
        .spawn()
}

impl Proc {
    /// [`spawn_on`], killed when dropped; panics when it cannot start.
    pub fn start(cmd: &mut Command, ports: &[&Port]) -> Proc {
        let program = cmd.get_program().to_string_lossy().into_owned();
        Proc(spawn_on(cmd, ports).unwrap_or_else(|e| panic!("cannot start {program}: {e}")))
    }

    /// Waits until the process answers `url` (see [`wait_started`]).
    pub async fn wait_ready(&mut self, what: &str, url: &str) {
        wait_started(&mut self.0, what, url).await;
    }
}

/// A port nothing listens on: bound for a moment and released (for "this server is down").
pub fn unused_port() -> u16 {
    Port::new().port()
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

/// The files under `dir` (recursively) whose bytes hold `needle`: how tests prove that
/// something (a phone number, a purged conversation's words) is not on disk.
pub fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p);
            }
        }
    }
    found
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
    let deadline = Instant::now() + START_DEADLINE;
    while http.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `url` answers with a success status while `child` runs: panics at once if the
/// process exits first (with its status), or after [`START_DEADLINE`].
pub async fn wait_started(child: &mut Child, what: &str, url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it answered {url}: {status}");
        }
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not answer {url} within {START_DEADLINE:?}");
        }
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

/// Checks an appservice binary's command line as a person meets it: `--help` and `--version`
/// answer on stdout with status 0, a missing settings file and a bare path are explained in a
/// sentence (status 1 and 2), never in Rust's debug form.
pub fn check_command_line(bin: &std::path::Path, name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0), "{name} --help");
    assert!(
        out.contains("--config <PATH>") && out.contains("--version"),
        "{out}"
    );
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0), "{name} --version");
    assert!(out.starts_with(&format!("{name} ")), "{out}");
    let (code, _, err) = run(&["--config", "/nonexistent/settings.toml"]);
    assert_eq!(code, Some(1), "{name} with a missing file: {err}");
    assert!(
        err.starts_with(&format!("{name}: "))
            && err.contains("/nonexistent/settings.toml")
            && err.contains("No such file"),
        "{err}"
    );
    assert!(!err.contains("Read {") && !err.contains("Error:"), "{err}");
    let (code, _, err) = run(&["settings.toml"]);
    assert_eq!(code, Some(2), "{name} with a bare path: {err}");
    assert!(err.contains("--config"), "{err}");
    let (code, _, err) = run(&[]);
    assert_eq!(code, Some(2), "{name} with no arguments: {err}");
}
