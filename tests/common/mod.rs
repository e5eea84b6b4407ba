//! Test harness: starts the real `haven` binary on a free loopback port with a temporary data
//! directory and talks to it with ruma's request types over reqwest.
#![allow(dead_code)]

use std::{
    borrow::Cow,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ruma::api::{
    path_builder::VersionHistory, IncomingResponseExt, OutgoingBody, OutgoingRequest,
    SupportedVersions,
};
use serde_json::Value;

pub use haven_testkit::Port;

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub extra_env: Vec<(String, String)>,
    /// Files the server needs for as long as it runs (TLS certificates).
    pub keep: Vec<tempfile::TempDir>,
    /// The ports the server listens on, held by the test and handed to each start: the client
    /// port first, then any other listener's (federation, metrics).
    pub ports: Vec<Port>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(vec![]).await
    }

    pub async fn start_with(extra_env: Vec<(&str, &str)>) -> Self {
        Self::start_on(vec![Port::new()], extra_env).await
    }

    /// Starts on given ports (when other processes must know them in advance): the client
    /// port first, then the ports of other listeners `extra_env` configures.
    pub async fn start_on(ports: Vec<Port>, extra_env: Vec<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = ports[0].port();
        let mut s = Server {
            child: None,
            port,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            extra_env: extra_env
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            keep: Vec::new(),
            ports,
        };
        s.spawn().await;
        s
    }

    /// A server that federates: named `127.0.0.1:<fed port>`, its federation listener on that
    /// port speaking TLS with a fresh self-signed certificate, trusting the certificates of the
    /// servers on `peers` (their federation ports) without checking them.
    pub async fn start_federating(fed: Port, peers: &[u16]) -> Self {
        let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Self::start_federating_as(&fed.addr(), fed, &peers).await
    }

    /// [`Server::start_federating`] with a chosen server name (`host:fed_port`) and peers
    /// named in full.
    pub async fn start_federating_as(name: &str, fed: Port, peers: &[String]) -> Self {
        let certs = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let listen = fed.addr();
        let peers = format!(
            "[{}]",
            peers
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let env = vec![
            ("HAVEN_SERVER_NAME", name),
            ("HAVEN_FEDERATION__LISTEN", listen.as_str()),
            ("HAVEN_FEDERATION__TLS_CERTIFICATE", cert.as_str()),
            ("HAVEN_FEDERATION__TLS_PRIVATE_KEY", key.as_str()),
            ("HAVEN_FEDERATION__INSECURE_PEERS", peers.as_str()),
            // The other servers are on loopback, which is denied by default.
            ("HAVEN_OUTBOUND__IP_RANGE_ALLOWLIST", "[\"127.0.0.0/8\"]"),
        ];
        let mut s = Self::start_on(vec![Port::new(), fed], env).await;
        s.keep.push(certs);
        s
    }

    /// The federation listener's port (a server started federating).
    pub fn fed_port(&self) -> u16 {
        self.ports[1].port()
    }

    pub fn data_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub async fn spawn(&mut self) {
        let config = self.dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "server_name = \"localhost:{p}\"\n[listen]\naddress = \"127.0.0.1:{p}\"\n[database]\npath = \"{d}\"\ncache_mb = 8\n[rate_limits]\nenabled = false\nper_second = 10.0\nburst = 10\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n",
                p = self.port,
                d = self.data_path().display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_haven"));
        // `TEST_SERVER_STDERR=<file>` among the extra variables: the server's log goes there.
        let stderr = match self
            .extra_env
            .iter()
            .find(|(k, _)| k == "TEST_SERVER_STDERR")
        {
            Some((_, path)) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        };
        cmd.arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let ports: Vec<&Port> = self.ports.iter().collect();
        let mut child = haven_testkit::spawn_on(&mut cmd, &ports).expect("start haven");
        haven_testkit::wait_started(
            &mut child,
            "haven",
            &format!("{}/_matrix/client/versions", self.base),
        )
        .await;
        self.child = Some(child);
    }

    /// Runs `haven --config <this server's config> args...` (an operator command) to its end.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_haven"));
        cmd.arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run haven")
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::new(),
            token: None,
            user_id: None,
        }
    }

    /// Logs `user` in with `password` (which must be right) and returns the client.
    pub async fn login(&self, user: &str, password: &str) -> Client {
        let mut c = self.client();
        let body = serde_json::json!({"type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user}, "password": password});
        let (st, v) = c
            .raw("POST", "/_matrix/client/v3/login", Some(&body.to_string()))
            .await;
        assert_eq!(st, 200, "{v}");
        c.token = Some(v["access_token"].as_str().unwrap().to_owned());
        c.user_id = Some(ruma::UserId::parse(v["user_id"].as_str().unwrap()).unwrap());
        c
    }

    /// Registers `name` (password "password") and returns a logged-in client.
    pub async fn user(&self, name: &str) -> Client {
        let mut c = self.client();
        c.register(name, "password").await;
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub errcode: String,
    pub body: Value,
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    pub user_id: Option<ruma::OwnedUserId>,
}

impl Client {
    /// Sends a ruma request, with this client's access token when it has one.
    pub async fn send<R>(&self, req: R) -> Result<R::IncomingResponse, ApiError>
    where
        R: OutgoingRequest<PathBuilder = VersionHistory>,
    {
        let versions = SupportedVersions::from_parts(&["v1.12".to_owned()], &Default::default());
        let http_req = req
            .try_into_http_request_inner(&self.base, Cow::Owned(versions))
            .expect("build request");
        let (parts, body) = http_req.into_parts();
        let body: Vec<u8> = body.try_into_buf().map_err(|_| ()).expect("body");
        let mut rb = self
            .http
            .request(parts.method.clone(), parts.uri.to_string())
            .body(body);
        rb = rb.header("content-type", "application/json");
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await.expect("send");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body").to_vec();
        if !status.is_success() {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(ApiError {
                status: status.as_u16(),
                errcode: body["errcode"].as_str().unwrap_or_default().to_owned(),
                body,
            });
        }
        let http_resp = http::Response::builder()
            .status(status)
            .body(bytes.as_slice())
            .unwrap();
        Ok(R::IncomingResponse::try_from_http_response(http_resp).expect("parse response"))
    }

    /// Raw JSON request for cases ruma's types cannot express (malformed bodies).
    pub async fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn register(&mut self, name: &str, password: &str) {
        use ruma::api::client::{account::register, uiaa};
        let mut req = register::v3::Request::new();
        req.username = Some(name.to_owned());
        req.password = Some(password.to_owned());
        req.auth = Some(uiaa::AuthData::Dummy(uiaa::Dummy::new()));
        let resp = self.send(req).await.expect("register");
        self.token = resp.access_token;
        self.user_id = Some(resp.user_id);
    }

    /// This client's device ID (from `whoami`).
    pub async fn device_id(&self) -> String {
        let (_, who) = self
            .raw("GET", "/_matrix/client/v3/account/whoami", None)
            .await;
        who["device_id"].as_str().expect("a device").to_owned()
    }

    pub fn uid(&self) -> &ruma::UserId {
        self.user_id.as_deref().unwrap()
    }

    pub async fn create_room(
        &self,
        f: impl FnOnce(&mut ruma::api::client::room::create_room::v3::Request),
    ) -> ruma::OwnedRoomId {
        let mut req = ruma::api::client::room::create_room::v3::Request::new();
        f(&mut req);
        self.send(req).await.expect("createRoom").room_id
    }

    /// Creates a public room and has each of `others` join it.
    pub async fn public_room_with(&self, others: &[&Client]) -> ruma::OwnedRoomId {
        let room = self
            .create_room(|r| {
                r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
            })
            .await;
        for c in others {
            c.join(&room).await.expect("join");
        }
        room
    }

    /// `POST /createRoom` with a raw JSON body; answers the room ID.
    pub async fn create_room_json(&self, body: serde_json::Value) -> String {
        let (st, v) = self
            .raw(
                "POST",
                "/_matrix/client/v3/createRoom",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v["room_id"].as_str().expect("room_id").to_owned()
    }

    pub async fn send_text(
        &self,
        room: &ruma::RoomId,
        body: &str,
    ) -> Result<ruma::OwnedEventId, ApiError> {
        use ruma::{
            api::client::message::send_message_event,
            events::room::message::RoomMessageEventContent, TransactionId,
        };
        let content = RoomMessageEventContent::text_plain(body);
        let req =
            send_message_event::v3::Request::new(room.to_owned(), TransactionId::new(), &content)
                .unwrap();
        self.send(req).await.map(|r| r.event_id)
    }

    pub async fn join(&self, room: &ruma::RoomId) -> Result<(), ApiError> {
        use ruma::api::client::membership::join_room_by_id;
        self.send(join_room_by_id::v3::Request::new(room.to_owned()))
            .await
            .map(|_| ())
    }

    pub async fn sync(
        &self,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> ruma::api::client::sync::sync_events::v3::Response {
        use ruma::api::client::sync::sync_events;
        let mut req = sync_events::v3::Request::new();
        req.since = since.map(str::to_owned);
        req.timeout = Some(Duration::from_millis(timeout_ms));
        self.send(req).await.expect("sync")
    }

    /// Bodies of m.room.message events in a room, oldest first, via /messages.
    pub async fn message_bodies(&self, room: &ruma::RoomId) -> Vec<String> {
        use ruma::api::{client::message::get_message_events, Direction};
        let mut out = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let mut req =
                get_message_events::v3::Request::new(room.to_owned(), Direction::Backward);
            req.from = from.clone();
            req.limit = ruma::UInt::from(500u32);
            let resp = self.send(req).await.expect("messages");
            for e in &resp.chunk {
                let v: Value = e.deserialize_as().unwrap();
                if v["type"] == "m.room.message" {
                    out.push(v["content"]["body"].as_str().unwrap_or_default().to_owned());
                }
            }
            match resp.end {
                Some(end) if !resp.chunk.is_empty() => from = Some(end),
                _ => break,
            }
        }
        out.reverse();
        out
    }
}

/// Polls `f` until it answers something (every 100 ms, for up to `secs` seconds); `None` when
/// it never did.
pub async fn poll<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two federating servers named `<host_a>:<port>` and `<host_b>:<port>` (each port its
/// federation listener's), Alice on the first and Bob on the second, Bob invited to and joined
/// in a room of Alice's.
pub async fn federated_room(
    host_a: &str,
    host_b: &str,
) -> (Server, Server, Client, Client, ruma::OwnedRoomId) {
    let (pa, pb) = (Port::new(), Port::new());
    let name_a = format!("{host_a}:{}", pa.port());
    let name_b = format!("{host_b}:{}", pb.port());
    let a = Server::start_federating_as(&name_a, pa, std::slice::from_ref(&name_b)).await;
    let b = Server::start_federating_as(&name_b, pb, &[name_a]).await;
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let room = alice
        .create_room(|r| r.invite = vec![bob.uid().to_owned()])
        .await;
    poll(30, || async {
        bob.sync(None, 0).await.rooms.invite.get(&room).map(|_| ())
    })
    .await
    .expect("bob's invite");
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{room}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    (a, b, alice, bob, room)
}
