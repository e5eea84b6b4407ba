//! End to end: the real homeserver, the real bridge, and a local Twilio API double.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::State, routing::post, Form, Json, Router};
use base64::{engine::general_purpose::STANDARD, Engine};
use haven_testkit::{carrier::Mode, sibling_binary, texts_to, wait_for, Port, Proc};
use serde_json::{json, Value};

const AS_TOKEN: &str = "sms_as_token_for_tests_0123456789";
const HS_TOKEN: &str = "sms_hs_token_for_tests_0123456789";
const AUTH_TOKEN: &str = "twilio_auth_token_for_tests";
const TEXTER: &str = "+15551234567";
const PROGRAM_NUMBER: &str = "+15550001111";
/// The bytes of the MMS picture the Twilio double serves.
const PICTURE: &[u8] = b"\xff\xd8\xff\xe0 a small jpeg-ish picture for the test \xff\xd9";

fn haven_binary() -> PathBuf {
    sibling_binary("haven", "haven")
}

type Sent = haven_testkit::TwilioSent;
type PartnerSent = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
const PARTNER_SECRET: &str = "partner_shared_secret";
const PARTNER_NUMBER: &str = "+15550002222";

/// The partner carrier double: records each signed JSON send.
/// Serves `app` on a port the system picks; answers its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Answers the records and the double's base URL.
async fn partner_double() -> (PartnerSent, String) {
    let sent: PartnerSent = Default::default();
    async fn send(
        State(s): State<PartnerSent>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> Json<Value> {
        let sig = headers
            .get("x-haven-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        s.lock().unwrap().push((sig, body.to_vec()));
        Json(json!({ "message_id": "P1" }))
    }
    let app = Router::new()
        .route("/send", post(send))
        .with_state(sent.clone());
    (sent, serve(app).await)
}

/// The Twilio double: records every Messages.json request and answers like Twilio.
/// Answers the records and the double's base URL.
async fn twilio_double() -> (Sent, String) {
    let sent: Sent = Default::default();
    async fn create(State(s): State<Sent>, Form(form): Form<Vec<(String, String)>>) -> Json<Value> {
        let mut all = s.lock().unwrap();
        all.push(form);
        Json(json!({ "sid": format!("SM{:032}", all.len()), "status": "queued" }))
    }
    async fn media(headers: axum::http::HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse;
        // Twilio serves attachments behind the account's credentials.
        let expected = format!("Basic {}", STANDARD.encode(format!("ACtest:{AUTH_TOKEN}")));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        ([("content-type", "image/jpeg")], PICTURE.to_vec()).into_response()
    }
    let app = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
        .route("/media/pic", axum::routing::get(media))
        .with_state(sent.clone());
    (sent, serve(app).await)
}

struct Env {
    hs: String,
    bridge: String,
    http: reqwest::Client,
    sent: Sent,
    twilio_base: String,
    carrier: haven_testkit::carrier::Carrier,
    partner_sent: PartnerSent,
    data: PathBuf,
    bridge_cfg: PathBuf,
    /// The bridge's port, held for its restarts.
    bridge_port: Port,
    bridge_proc: Option<Proc>,
    _intake: Option<Proc>,
    _hs: Proc,
    _dir: tempfile::TempDir,
}

fn spawn_bridge(cfg: &std::path::Path, port: &Port) -> Proc {
    Proc::start(
        Command::new(env!("CARGO_BIN_EXE_sms-bridge"))
            .arg("--config")
            .arg(cfg)
            .env("SMS_BRIDGE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("SMS_BRIDGE_HASH_KEY", STANDARD.encode([9u8; 32]))
            .env(
                "SMS_BRIDGE_NUMBER_KEYS",
                format!("k1={}", STANDARD.encode([3u8; 32])),
            )
            .env("SMS_BRIDGE_NUMBER_KEY_ID", "k1")
            .env("SMS_BRIDGE_PARTNER_ACME_SECRET", PARTNER_SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(cfg.with_file_name("bridge.log"))
                    .unwrap(),
            ),
        &[port],
    )
}

impl Env {
    async fn start() -> Self {
        Self::start_opts(false).await
    }

    /// With `intake`, the real intake bot runs too, asking the crisis program's questions.
    async fn start_opts(intake: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (hs_listener, bridge_listener, intake_listener) =
            (Port::new(), Port::new(), Port::new());
        let (hs_port, bridge_port, intake_port) = (
            hs_listener.port(),
            bridge_listener.port(),
            intake_listener.port(),
        );
        let (partner_sent, partner_url) = partner_double().await;
        let server = format!("localhost:{hs_port}");
        let reg = dir.path().join("sms.yaml");
        std::fs::write(&reg, format!("id: sms-bridge\nurl: http://127.0.0.1:{bridge_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: sms_bridge\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@sms_.*:{server}'\n")).unwrap();
        let intake_reg = dir.path().join("intake.yaml");
        std::fs::write(&intake_reg, format!("id: intake-bot\nurl: http://127.0.0.1:{intake_port}\nas_token: intake_as_token_for_bridge_tests\nhs_token: intake_hs_token_for_bridge_tests\nsender_localpart: intake\nrate_limited: false\nnamespaces:\n  users: []\n")).unwrap();
        let registrations = if intake {
            format!("\"{}\", \"{}\"", reg.display(), intake_reg.display())
        } else {
            format!("\"{}\"", reg.display())
        };
        let data = dir.path().join("hs-data");
        let hs_cfg = dir.path().join("haven.toml");
        std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{hs_port}\"\n[database]\npath = \"{}\"\n[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n[appservices]\nregistrations = [{registrations}]\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n", data.display())).unwrap();
        let hs_log = std::fs::File::create(dir.path().join("hs.log")).unwrap();
        let mut hs = Proc::start(
            Command::new(haven_binary())
                .arg("--config")
                .arg(&hs_cfg)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(hs_log),
            &[&hs_listener],
        );
        // The Messages API is a carrier double that can be made to fail; the other double
        // serves MMS attachments.
        let carrier = haven_testkit::carrier::Carrier::start().await;
        let sent = carrier.sent.clone();
        let (_, twilio_base) = twilio_double().await;
        let bridge_cfg = dir.path().join("bridge.toml");
        std::fs::write(
            &bridge_cfg,
            format!(
                r##"
[bridge]
homeserver_url = "http://127.0.0.1:{hs_port}"
server_name = "{server}"
registration = "{reg}"
listen = "127.0.0.1:{bridge_port}"
public_url = "http://127.0.0.1:{bridge_port}"
state_dir = "{state}"
{intake_bot}

[twilio]
api_base_url = "{carrier_base}"
account_sid = "ACtest"
request_timeout_s = 2

[[partners]]
id = "acme"
send_url = "{partner_url}/send"

[[affiliates]]
id = "riverside"
name = "Riverside"

[[affiliates.programs]]
id = "youth"
name = "Youth line"
number = "{PARTNER_NUMBER}"
queue_room = "#youth-queue:{server}"
auto_response = "Youth line here."
help_text = "Youth line."
provider = "acme"

[[affiliates.programs]]
id = "teen"
name = "Teen line"
number = "{PROGRAM_NUMBER}"
queue_room = "#teen-queue:{server}"
auto_response = "Teen line here."
help_text = "Teen line."
keywords = ["TEEN"]

[[affiliates.programs]]
id = "crisis"
name = "Crisis line"
number = "{PROGRAM_NUMBER}"
queue_room = "#crisis-queue:{server}"
auto_response = "Thanks for texting Riverside."
help_text = "Riverside crisis line. Text STOP to stop."
default = true
supervisors = ["@sup:{server}"]

[pacing]
segments_per_second = 10.0

[delivery]
retry_max_interval_s = 1
check_unknown_after_s = 3
"##,
                carrier_base = carrier.base,
                reg = reg.display(),
                state = dir.path().join("bridge-state").display(),
                intake_bot = if intake {
                    format!("intake_bot = \"@intake:{server}\"")
                } else {
                    String::new()
                },
            ),
        )
        .unwrap();
        let http = reqwest::Client::new();
        let hs_url = hs_listener.url();
        hs.wait_ready("haven", &format!("{hs_url}/_matrix/client/versions"))
            .await;
        let intake_proc = intake.then(|| {
            let cfg = dir.path().join("intake.toml");
            std::fs::write(&cfg, format!("homeserver_url = \"{hs_url}\"\nserver_name = \"{server}\"\nregistration = \"{}\"\nlisten = \"127.0.0.1:{intake_port}\"\nstate_dir = \"{}\"\n[intake.programs.crisis]\nquestions = [\"How old are you?\", \"Which town are you in?\"]\nclosing = \"Thanks. A counsellor will be with you soon.\"\n", intake_reg.display(), dir.path().join("intake-state").display())).unwrap();
            Proc::start(
                Command::new(sibling_binary("intake-bot", "intake-bot"))
                    .arg("--config")
                    .arg(&cfg)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null()),
                &[&intake_listener],
            )
        });
        let mut intake_proc = intake_proc;
        if let Some(p) = intake_proc.as_mut() {
            p.wait_ready("intake-bot", &format!("{}/health", intake_listener.url()))
                .await;
        }
        let bridge = spawn_bridge(&bridge_cfg, &bridge_listener);
        let mut env = Env {
            _intake: intake_proc,
            hs: hs_url,
            bridge: format!("http://127.0.0.1:{bridge_port}"),
            http,
            sent,
            twilio_base,
            carrier,
            partner_sent,
            data,
            bridge_cfg,
            bridge_port: bridge_listener,
            bridge_proc: Some(bridge),
            _hs: hs,
            _dir: dir,
        };
        env.wait_bridge().await;
        env
    }

    async fn wait_bridge(&mut self) {
        let url = format!("{}/health", self.bridge);
        if let Some(p) = self.bridge_proc.as_mut() {
            p.wait_ready("sms-bridge", &url).await;
        }
    }

    /// A responder's text message in the conversation room; answers its event ID.
    async fn reply(&self, token: &str, room: &str, txn: &str, body: &str) -> String {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        let sent = self
            .api(
                reqwest::Method::PUT,
                &path,
                token,
                Some(json!({"msgtype": "m.text", "body": body})),
            )
            .await;
        sent["event_id"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits (30 s at most) for a notice in reply to `event_id` containing `words` (in any
    /// case); answers its body.
    async fn notice_about(&self, room: &str, event_id: &str, words: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.messages(room).await.into_iter().find_map(|m| {
                let body = m["content"]["body"].as_str().unwrap_or_default();
                (m["content"]["msgtype"] == "m.notice"
                    && m["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
                    && body.to_lowercase().contains(&words.to_lowercase()))
                .then(|| body.to_owned())
            });
            if let Some(body) = found {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no notice about {event_id} saying {words:?}; notices: {:?}",
                self.notices(room).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILLs the bridge (start it again with `start_bridge`).
    fn kill_bridge(&mut self) {
        self.bridge_proc = None;
    }

    async fn start_bridge(&mut self) {
        self.bridge_proc = Some(spawn_bridge(&self.bridge_cfg, &self.bridge_port));
        self.wait_bridge().await;
    }

    /// Posts an inbound text the way Twilio does, signed (or with `signature` when given).
    async fn text(&self, sid: &str, body: &str, signature: Option<&str>) -> u16 {
        self.text_with(sid, body, signature, vec![]).await
    }

    async fn text_with(
        &self,
        sid: &str,
        body: &str,
        signature: Option<&str>,
        extra: Vec<(String, String)>,
    ) -> u16 {
        let mut params = vec![
            ("MessageSid".to_owned(), sid.to_owned()),
            ("AccountSid".to_owned(), "ACtest".to_owned()),
            ("From".to_owned(), TEXTER.to_owned()),
            ("To".to_owned(), PROGRAM_NUMBER.to_owned()),
            ("Body".to_owned(), body.to_owned()),
        ];
        if extra.is_empty() {
            params.push(("NumMedia".to_owned(), "0".to_owned()));
        }
        params.extend(extra);
        self.post_twilio("/twilio/sms", params, signature).await
    }

    /// Registers a user, has the bridge bot invite them into `room`, joins; returns their token.
    async fn responder(&self, name: &str, room: &str) -> String {
        let reg: Value = self
            .http
            .post(format!("{}/_matrix/client/v3/register", self.hs))
            .json(&json!({"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reg["access_token"].as_str().unwrap().to_owned();
        let invite = json!({"user_id": reg["user_id"]});
        self.api(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            AS_TOKEN,
            Some(invite),
        )
        .await;
        self.api(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{room}/join"),
            &token,
            Some(json!({})),
        )
        .await;
        token
    }

    /// Bodies of the notices in a room, oldest first.
    async fn notices(&self, room: &str) -> Vec<String> {
        self.messages(room)
            .await
            .iter()
            .filter(|m| m["content"]["msgtype"] == "m.notice")
            .map(|m| m["content"]["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Posts a signed delivery status callback (or one with `signature`).
    async fn status(
        &self,
        sid: &str,
        status: &str,
        error: Option<&str>,
        signature: Option<&str>,
    ) -> u16 {
        let mut params = vec![
            ("MessageSid".to_owned(), sid.to_owned()),
            ("MessageStatus".to_owned(), status.to_owned()),
        ];
        if let Some(e) = error {
            params.push(("ErrorCode".to_owned(), e.to_owned()));
        }
        self.post_twilio("/twilio/status", params, signature).await
    }

    /// Posts a form to the bridge as Twilio does, signed (or with `signature` when given);
    /// answers the status.
    async fn post_twilio(
        &self,
        path: &str,
        params: Vec<(String, String)>,
        signature: Option<&str>,
    ) -> u16 {
        let url = format!("{}{path}", self.bridge);
        let sig = signature
            .map(str::to_owned)
            .unwrap_or_else(|| sms_bridge::signature::compute(AUTH_TOKEN, &url, &params));
        self.http
            .post(&url)
            .header("x-twilio-signature", sig)
            .form(&params)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.hs))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap().json().await.unwrap_or(Value::Null)
    }

    /// The bridge bot's conversation room (it is in exactly one here).
    async fn conversation_room(&self) -> String {
        self.bridge_rooms()
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The rooms the bridge bot is in.
    async fn bridge_rooms(&self) -> Vec<String> {
        let v = self
            .api(
                reqwest::Method::GET,
                "/_matrix/client/v3/joined_rooms",
                AS_TOKEN,
                None,
            )
            .await;
        v["joined_rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    }

    async fn messages(&self, room: &str) -> Vec<Value> {
        let v = self
            .api(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100"),
                AS_TOKEN,
                None,
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
}

#[tokio::test(flavor = "multi_thread")]
async fn a_texter_and_a_responder_talk_through_the_bridge() {
    let env = Env::start().await;

    // First contact: a room with the conversation state, the text from the puppet, and the
    // auto-response (which says how to stop and delete) back to the texter.
    assert_eq!(
        env.text("SM001", "I need someone to talk to", None).await,
        200
    );
    wait_for("auto-response", || !texts_to(&env.sent, TEXTER).is_empty()).await;
    let auto = &texts_to(&env.sent, TEXTER)[0];
    assert!(
        auto.starts_with("Thanks for texting Riverside.")
            && auto.contains("STOP")
            && auto.contains("DELETE"),
        "{auto}"
    );
    let room = env.conversation_room().await;
    assert!(room.starts_with('!'));
    let state = env
        .api(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.conversation/"),
            AS_TOKEN,
            None,
        )
        .await;
    assert_eq!(
        (
            state["program"].as_str(),
            state["provider"].as_str(),
            state["state"].as_str()
        ),
        (Some("crisis"), Some("twilio"), Some("new"))
    );
    let msgs = env.messages(&room).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["content"]["body"], "I need someone to talk to");
    let puppet = msgs[0]["sender"].as_str().unwrap().to_owned();
    assert!(puppet.starts_with("@sms_") && !puppet.contains("5551234567"));

    // A retried webhook (same MessageSid) and a forged one change nothing.
    assert_eq!(
        env.text("SM001", "I need someone to talk to", None).await,
        200
    );
    assert_eq!(
        env.text("SM002", "forged", Some("bm90IGEgc2lnbmF0dXJl"))
            .await,
        403
    );
    // The webhook answers only after the text is in the room.
    assert_eq!(env.text("SM003", "later text", None).await, 200);
    let bodies: Vec<String> = env
        .messages(&room)
        .await
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(bodies, vec!["I need someone to talk to", "later text"]);

    // A responder joins (invited by the bridge bot) and answers: the answer goes out by SMS.
    let reg: Value = env
        .http
        .post(format!("{}/_matrix/client/v3/register", env.hs))
        .json(
            &json!({"username": "responder", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let responder_token = reg["access_token"].as_str().unwrap().to_owned();
    let responder = reg["user_id"].as_str().unwrap().to_owned();
    env.api(
        reqwest::Method::POST,
        &format!("/_matrix/client/v3/rooms/{room}/invite"),
        AS_TOKEN,
        Some(json!({"user_id": responder})),
    )
    .await;
    env.api(
        reqwest::Method::POST,
        &format!("/_matrix/client/v3/rooms/{room}/join"),
        &responder_token,
        Some(json!({})),
    )
    .await;
    env.api(
        reqwest::Method::PUT,
        &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/r1"),
        &responder_token,
        Some(json!({"msgtype": "m.text", "body": "I'm here. What's going on?"})),
    )
    .await;
    wait_for("reply by SMS", || {
        texts_to(&env.sent, TEXTER)
            .iter()
            .any(|b| b == "I'm here. What's going on?")
    })
    .await;
    let reply = env
        .sent
        .lock()
        .unwrap()
        .iter()
        .find(|f| {
            f.iter()
                .any(|(k, v)| k == "Body" && v == "I'm here. What's going on?")
        })
        .cloned()
        .unwrap();
    assert!(reply
        .iter()
        .any(|(k, v)| k == "From" && v == PROGRAM_NUMBER));
    assert!(reply
        .iter()
        .any(|(k, v)| k == "StatusCallback" && v.contains("/twilio/status?ref=")));

    // Delivery statuses: "delivered" is the texter's read receipt on the reply; a failure is
    // a notice with Twilio's error code and its meaning. Unsigned callbacks are refused.
    let reply_sid = format!("SM{:032}", env.sent.lock().unwrap().len());
    assert_eq!(env.status(&reply_sid, "delivered", None, None).await, 204);
    let sync: Value = env
        .http
        .get(format!("{}/_matrix/client/v3/sync", env.hs))
        .bearer_auth(&responder_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let eph = sync["rooms"]["join"][room.as_str()]["ephemeral"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let receipt = eph
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .expect("a read receipt");
    let readers: Vec<&String> = receipt["content"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v["m.read"].as_object().unwrap().keys())
        .collect();
    assert!(readers.iter().any(|u| **u == puppet), "{receipt}");
    assert_eq!(
        env.status(
            &reply_sid,
            "failed",
            Some("30003"),
            Some("bm90IGEgc2lnbmF0dXJl")
        )
        .await,
        403
    );
    assert_eq!(
        env.status(&reply_sid, "failed", Some("30003"), None).await,
        204
    );
    let notices: Vec<String> = env
        .messages(&room)
        .await
        .iter()
        .filter(|m| m["content"]["msgtype"] == "m.notice")
        .map(|m| m["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("30003") && n.contains("unreachable")),
        "{notices:?}"
    );

    // STOP: later replies are refused with a notice, nothing is sent.
    assert_eq!(env.text("SM004", "stop", None).await, 200);
    let before = texts_to(&env.sent, TEXTER).len();
    env.api(
        reqwest::Method::PUT,
        &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/r2"),
        &responder_token,
        Some(json!({"msgtype": "m.text", "body": "Are you still there?"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let notices: Vec<String> = env
            .messages(&room)
            .await
            .iter()
            .filter(|m| m["content"]["msgtype"] == "m.notice")
            .map(|m| m["content"]["body"].as_str().unwrap_or_default().to_owned())
            .collect();
        if notices.iter().any(|n| n.starts_with("Not sent")) {
            break;
        }
        assert!(Instant::now() < deadline, "no opt-out notice: {notices:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(texts_to(&env.sent, TEXTER).len(), before);

    // DELETE marks the conversation for the retention path and is confirmed to the texter.
    assert_eq!(env.text("SM005", "DELETE", None).await, 200);
    let state = env
        .api(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.conversation/"),
            AS_TOKEN,
            None,
        )
        .await;
    assert_eq!(state["deletion_requested"], true);
    assert!(texts_to(&env.sent, TEXTER)
        .last()
        .unwrap()
        .contains("delete your conversation data"));

    // Metrics count what happened, and carry no numbers.
    let metrics = env
        .http
        .get(format!("{}/metrics", env.bridge))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(value("sms_bridge_opt_outs_total"), 1.0);
    assert_eq!(value("sms_bridge_outbound_total"), 1.0);
    assert_eq!(
        value("sms_bridge_failures_total{kind=\"bad_signature\"}"),
        1.0
    );
    assert!(value("sms_bridge_inbound_total") >= 4.0, "{metrics}");
    assert!(!metrics.contains("5551234567"));

    // Nor in either program's logs.
    for log in ["hs.log", "bridge.log"] {
        let text = std::fs::read_to_string(env.bridge_cfg.with_file_name(log)).unwrap();
        assert!(
            !text.is_empty(),
            "{log} is empty: the check would prove nothing"
        );
        assert!(!text.contains("5551234567"), "phone number in {log}");
    }

    // The texter's number is nowhere in the homeserver's data.
    let found = haven_testkit::files_holding(&env.data, b"5551234567");
    assert!(found.is_empty(), "phone number found in {found:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_restart_loses_and_duplicates_nothing() {
    let mut env = Env::start().await;
    assert_eq!(env.text("SM101", "hello?", None).await, 200);
    let room = env.conversation_room().await;
    let token = env.responder("responder", &room).await;
    env.reply(&token, &room, "a", "one").await;
    wait_for("one", || {
        texts_to(&env.sent, TEXTER).contains(&"one".to_owned())
    })
    .await;

    // Replies written while the bridge is down reach the texter once it is back, once each.
    env.kill_bridge();
    env.reply(&token, &room, "b", "two").await;
    env.reply(&token, &room, "c", "three").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.start_bridge().await;
    wait_for("replies after restart", || {
        let b = texts_to(&env.sent, TEXTER);
        b.contains(&"two".to_owned()) && b.contains(&"three".to_owned())
    })
    .await;
    // Another restart: nothing is sent again.
    env.kill_bridge();
    env.start_bridge().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = texts_to(&env.sent, TEXTER);
    for b in ["one", "two", "three"] {
        assert_eq!(
            sent.iter().filter(|s| *s == b).count(),
            1,
            "{b} sent {sent:?}"
        );
    }
    let order: Vec<&String> = sent
        .iter()
        .filter(|s| ["one", "two", "three"].contains(&s.as_str()))
        .collect();
    assert_eq!(order, vec!["one", "two", "three"]);
    // The texter's next text still lands in the same room.
    assert_eq!(env.text("SM102", "still me", None).await, 200);
    let bodies: Vec<String> = env
        .messages(&room)
        .await
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(bodies.contains(&"still me".to_owned()));
    assert_eq!(env.conversation_room().await, room);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_carrier_plugs_in_through_signed_json() {
    let env = Env::start().await;
    let body = serde_json::to_vec(&json!({"message_id": "m1", "from": "+15557654321", "to": PARTNER_NUMBER, "body": "hi from a partner"})).unwrap();
    let url = format!("{}/partner/acme/sms", env.bridge);
    let post = |sig: String, body: Vec<u8>| {
        env.http
            .post(&url)
            .header("x-haven-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        post("sha256=00".into(), body.clone())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(
            sms_bridge::partner::sign(PARTNER_SECRET.as_bytes(), &body),
            body.clone()
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let room = env.conversation_room().await;
    let state = env
        .api(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.conversation/"),
            AS_TOKEN,
            None,
        )
        .await;
    assert_eq!(
        (state["provider"].as_str(), state["program"].as_str()),
        (Some("acme"), Some("youth"))
    );
    assert_eq!(
        env.messages(&room).await[0]["content"]["body"],
        "hi from a partner"
    );
    // The auto-response went out through the partner, signed, from the program's number.
    let sent = env.partner_sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let (sig, raw) = &sent[0];
    assert!(sms_bridge::partner::verify(
        PARTNER_SECRET.as_bytes(),
        raw,
        sig
    ));
    let v: Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(
        (v["to"].as_str(), v["from"].as_str()),
        (Some("+15557654321"), Some(PARTNER_NUMBER))
    );
    assert!(v["body"].as_str().unwrap().starts_with("Youth line here."));
    assert!(
        env.sent.lock().unwrap().is_empty(),
        "nothing went through Twilio"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_supervisor_can_reveal_a_number_and_it_is_logged() {
    let env = Env::start().await;
    assert_eq!(env.text("SM201", "please help", None).await, 200);
    let room = env.conversation_room().await;
    let mut tokens = Vec::new();
    for name in ["sup", "responder"] {
        let reg: Value = env
            .http
            .post(format!("{}/_matrix/client/v3/register", env.hs))
            .json(&json!({"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reg["access_token"].as_str().unwrap().to_owned();
        env.api(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            AS_TOKEN,
            Some(json!({"user_id": reg["user_id"]})),
        )
        .await;
        env.api(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{room}/join"),
            &token,
            Some(json!({})),
        )
        .await;
        tokens.push(token);
    }
    let (sup, responder) = (&tokens[0], &tokens[1]);
    // A responder cannot.
    env.reply(responder, &room, "x1", "!reveal").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env
        .notices(&room)
        .await
        .iter()
        .any(|n| n.starts_with("Only this program's supervisors"))
    {
        assert!(Instant::now() < deadline, "no refusal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The supervisor gets a link; the number itself never enters Matrix.
    env.reply(sup, &room, "x2", "!reveal").await;
    let link = loop {
        if let Some(n) = env
            .notices(&room)
            .await
            .into_iter()
            .find(|n| n.contains("/reveal/"))
        {
            break n.rsplit(' ').next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no reveal link");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !texts_to(&env.sent, TEXTER).iter().any(|b| b == "!reveal"),
        "commands are not texted"
    );
    let open = |token: &str| env.http.get(&link).bearer_auth(token.to_owned()).send();
    assert_eq!(open(responder).await.unwrap().status(), 403);
    assert_eq!(env.http.get(&link).send().await.unwrap().status(), 401);
    let r = open(sup).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), TEXTER);
    assert_eq!(open(sup).await.unwrap().status(), 403, "one use only");
    for n in env.notices(&room).await {
        assert!(!n.contains("5551234567"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mms_picture_arrives_as_an_image() {
    let env = Env::start().await;
    let tw = env.twilio_base.clone();
    let extra = vec![
        ("NumMedia".to_owned(), "1".to_owned()),
        ("MediaUrl0".to_owned(), format!("{tw}/media/pic")),
        ("MediaContentType0".to_owned(), "image/jpeg".to_owned()),
    ];
    assert_eq!(env.text_with("SM301", "", None, extra).await, 200);
    let room = env.conversation_room().await;
    let msgs = env.messages(&room).await;
    let image = msgs
        .iter()
        .find(|m| m["content"]["msgtype"] == "m.image")
        .expect("an m.image");
    assert!(image["sender"].as_str().unwrap().starts_with("@sms_"));
    assert_eq!(image["content"]["info"]["mimetype"], "image/jpeg");
    let mxc = image["content"]["url"]
        .as_str()
        .unwrap()
        .strip_prefix("mxc://")
        .unwrap()
        .to_owned();
    let bytes = env
        .http
        .get(format!("{}/_matrix/client/v1/media/download/{mxc}", env.hs))
        .bearer_auth(AS_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.to_vec(), PICTURE);
    // A picture-only MMS adds no empty text message.
    assert!(!msgs
        .iter()
        .any(|m| m["content"]["msgtype"] == "m.text" && m["content"]["body"] == ""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_responders_picture_goes_out_as_mms_from_an_unguessable_url() {
    let env = Env::start().await;
    assert_eq!(env.text("SM401", "can you see this?", None).await, 200);
    let room = env.conversation_room().await;
    let token = env.responder("responder", &room).await;
    let up: Value = env
        .http
        .post(format!(
            "{}/_matrix/media/v3/upload?filename=map.png",
            env.hs
        ))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(PICTURE.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mxc = up["content_uri"].as_str().unwrap();
    let content = json!({"msgtype": "m.image", "body": "map.png", "url": mxc, "info": {"mimetype": "image/png"}});
    env.api(
        reqwest::Method::PUT,
        &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/img1"),
        &token,
        Some(content),
    )
    .await;
    wait_for("MMS", || {
        env.sent
            .lock()
            .unwrap()
            .iter()
            .any(|f| f.iter().any(|(k, _)| k == "MediaUrl"))
    })
    .await;
    let form = env
        .sent
        .lock()
        .unwrap()
        .iter()
        .find(|f| f.iter().any(|(k, _)| k == "MediaUrl"))
        .cloned()
        .unwrap();
    let url = form
        .iter()
        .find(|(k, _)| k == "MediaUrl")
        .unwrap()
        .1
        .clone();
    assert!(url.starts_with(&format!("{}/mms/", env.bridge)));
    let token_part = url.rsplit('/').next().unwrap();
    assert_eq!(token_part.len(), 40, "unguessable");
    let r = env.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), PICTURE);
    let guessed = format!("{}/mms/{}", env.bridge, "a".repeat(40));
    assert_eq!(env.http.get(&guessed).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn carrier_opt_outs_and_ended_conversations() {
    let env = Env::start().await;
    assert_eq!(env.text("SM501", "hi", None).await, 200);
    let room = env.conversation_room().await;
    // Twilio's Advanced Opt-Out classified this text as STOP.
    let extra = vec![("OptOutType".to_owned(), "STOP".to_owned())];
    assert_eq!(
        env.text_with("SM502", "please no more messages", None, extra)
            .await,
        200
    );
    assert!(env
        .notices(&room)
        .await
        .iter()
        .any(|n| n.contains("opted out")));

    // The escalation handler closes the conversation: the next text opens a new one.
    let state = env
        .api(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.conversation/"),
            AS_TOKEN,
            None,
        )
        .await;
    let mut closed = state.clone();
    closed["state"] = json!("closed");
    env.api(
        reqwest::Method::PUT,
        &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.conversation/"),
        AS_TOKEN,
        Some(closed),
    )
    .await;
    assert_eq!(env.text("SM503", "START", None).await, 200);
    let rooms = env
        .api(
            reqwest::Method::GET,
            "/_matrix/client/v3/joined_rooms",
            AS_TOKEN,
            None,
        )
        .await;
    let rooms: Vec<&str> = rooms["joined_rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(rooms.len(), 2, "{rooms:?}");
    let new_room = rooms.iter().find(|r| **r != room).unwrap();
    let bodies: Vec<String> = env
        .messages(new_room)
        .await
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(bodies, vec!["START"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_intake_bot_asks_the_programs_questions_by_sms_and_briefs_the_responder() {
    let env = Env::start_opts(true).await;
    assert_eq!(env.text("SMintake1", "hi, I need to talk", None).await, 200);
    // The auto-response, then the program's first question, both by SMS.
    wait_for("the first intake question", || {
        texts_to(&env.sent, TEXTER)
            .iter()
            .any(|b| b == "How old are you?")
    })
    .await;
    assert_eq!(env.text("SMintake2", "17", None).await, 200);
    wait_for("the second question", || {
        texts_to(&env.sent, TEXTER)
            .iter()
            .any(|b| b == "Which town are you in?")
    })
    .await;
    assert_eq!(env.text("SMintake3", "Leeds", None).await, 200);
    wait_for("the closing words", || {
        texts_to(&env.sent, TEXTER)
            .iter()
            .any(|b| b.starts_with("Thanks. A counsellor"))
    })
    .await;
    // The summary is for the responder in Matrix, never texted.
    let room = env.conversation_room().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let notices = env.notices(&room).await;
        if let Some(s) = notices.iter().find(|n| n.starts_with("Intake summary")) {
            break s.clone();
        }
        assert!(Instant::now() < deadline, "no summary: {notices:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        summary.contains("First message — hi, I need to talk")
            && summary.contains("How old are you? — 17")
            && summary.contains("Which town are you in? — Leeds"),
        "{summary}"
    );
    let state = env
        .api(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.intake.summary/"),
            AS_TOKEN,
            None,
        )
        .await;
    assert_eq!(state["complete"], true);
    assert!(texts_to(&env.sent, TEXTER)
        .iter()
        .all(|b| !b.contains("Intake summary")));
    // The texter's answers themselves reached the room as usual.
    let texts: Vec<String> = env
        .messages(&room)
        .await
        .iter()
        .filter_map(|m| m["content"]["body"].as_str().map(str::to_owned))
        .collect();
    assert!(texts.contains(&"Leeds".to_owned()));
}

/// How many times `body` reached the carrier for the texter.
fn times_sent(env: &Env, body: &str) -> usize {
    texts_to(&env.sent, TEXTER)
        .iter()
        .filter(|b| *b == body)
        .count()
}

/// A conversation with a responder in it; answers (room, responder's token).
async fn conversation(env: &Env, sid: &str) -> (String, String) {
    assert_eq!(env.text(sid, "hello?", None).await, 200);
    let room = env.conversation_room().await;
    let token = env.responder("responder", &room).await;
    wait_for("auto-response", || !texts_to(&env.sent, TEXTER).is_empty()).await;
    (room, token)
}

/// Issue 17, items 1 and 10: with the carrier unreachable for longer than any short retry
/// budget, a reply is kept and sent once when it is back; the room is told, in reply to the
/// message and without internal details, that it is delayed and when it went out; a later
/// delivery failure names the reply too.
#[tokio::test(flavor = "multi_thread")]
async fn a_carrier_outage_delays_a_reply_which_goes_out_once_the_carrier_is_back() {
    let env = Env::start().await;
    let (room, token) = conversation(&env, "SM201").await;
    env.carrier.set(Mode::Down).await;
    let body = "Are you somewhere safe right now?";
    let reply = env.reply(&token, &room, "o1", body).await;
    let delayed = env.notice_about(&room, &reply, "delayed").await;
    for internal in ["http", "ACtest", "127.0.0.1", "Twilio could not", "error"] {
        assert!(!delayed.contains(internal), "{delayed:?} shows {internal}");
    }
    // Longer than the old budget (five tries over about 15 s).
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(times_sent(&env, body), 0);
    env.carrier.set(Mode::Up).await;
    wait_for("the delayed reply", || times_sent(&env, body) == 1).await;
    env.notice_about(&room, &reply, "now been sent").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(times_sent(&env, body), 1);

    // A delivery failure reported later is about that reply.
    let index = env
        .sent
        .lock()
        .unwrap()
        .iter()
        .position(|f| f.iter().any(|(k, v)| k == "Body" && v == body))
        .unwrap();
    let sid = format!("SM{:032}", index + 1);
    assert_eq!(
        env.status(&sid, "undelivered", Some("30003"), None).await,
        204
    );
    env.notice_about(&room, &reply, "not delivered").await;
}

/// Issue 17, items 2 and 10: a send the carrier answers too late may have gone out; it is
/// never resent blindly. The bridge finds out (the carrier's list of recent messages) and
/// resends only what did not go out, telling the room while the outcome is unknown.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_carrier_never_gets_a_reply_twice() {
    let env = Env::start().await;
    let (room, token) = conversation(&env, "SM301").await;
    let slow = |takes_it| Mode::Slow {
        delay: Duration::from_secs(5),
        takes_it,
    };

    // Taken, answered after the bridge stopped waiting (2 s).
    env.carrier.set(slow(true)).await;
    let first = "I am here with you.";
    let reply = env.reply(&token, &room, "s1", first).await;
    env.notice_about(&room, &reply, "not yet known").await;
    env.carrier.set(Mode::Up).await;
    env.notice_about(&room, &reply, "did go out").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(times_sent(&env, first), 1);

    // Not taken, answered late: sent again, once.
    env.carrier.set(slow(false)).await;
    let second = "Can you tell me where you are?";
    let reply = env.reply(&token, &room, "s2", second).await;
    env.notice_about(&room, &reply, "not yet known").await;
    env.carrier.set(Mode::Up).await;
    wait_for("the resent reply", || times_sent(&env, second) == 1).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(times_sent(&env, second), 1);
}

/// Issue 17, item 9: a long reply with emoji is split between whole characters (a flag is
/// two code points), each part within Twilio's 1,600 UTF-16 units, sent in order and paced.
#[tokio::test(flavor = "multi_thread")]
async fn long_replies_split_on_whole_characters_in_order_and_paced() {
    let env = Env::start().await;
    let (room, token) = conversation(&env, "SM401").await;
    let flag = "\u{1F1FA}\u{1F1E6}";
    let long = format!("{}{}", "Take a breath. ".repeat(40), flag.repeat(700));
    env.reply(&token, &room, "e1", &long).await;
    let before = 1; // the auto-response
    wait_for("every part", || {
        texts_to(&env.sent, TEXTER)[before..].concat() == long
    })
    .await;
    let taken = env.carrier.taken_to(TEXTER)[before..].to_vec();
    assert!(taken.len() >= 2, "{} parts", taken.len());
    for (_, part) in &taken {
        assert!(
            part.encode_utf16().count() <= 1600,
            "a part of {} units",
            part.encode_utf16().count()
        );
        let halves = part.replace(flag, "");
        assert!(
            !halves.contains('\u{1F1FA}') && !halves.contains('\u{1F1E6}'),
            "a flag cut in half"
        );
    }
    // Paced: each part leaves once the previous one's segments have had their time (10 a
    // second here), so they cannot overtake each other.
    for pair in taken.windows(2) {
        let units = pair[0].1.encode_utf16().count();
        let segments = units.div_ceil(67) as f64;
        let gap = pair[1].0.duration_since(pair[0].0).as_secs_f64();
        assert!(
            gap >= segments / 10.0 - 0.05,
            "{gap} s after a part of {segments} segments"
        );
    }
}

/// Issue 17, item 7: a keyword is found whatever the case, punctuation, spacing or look-alike
/// characters around it; a word that only starts like it is not it.
#[tokio::test(flavor = "multi_thread")]
async fn keywords_match_on_words_not_characters() {
    let env = Env::start().await;
    async fn program(env: &Env) -> String {
        let room = env.conversation_room().await;
        let state = env
            .api(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/rooms/{room}/state/org.haven.conversation/"),
                AS_TOKEN,
                None,
            )
            .await;
        state["program"].as_str().unwrap_or_default().to_owned()
    }
    assert_eq!(env.text("SM501", "TEEN. I need help", None).await, 200);
    assert_eq!(program(&env).await, "teen");
    let env = Env::start().await;
    // Cyrillic Т and Е, then a comma.
    assert_eq!(
        env.text("SM502", "\u{0422}\u{0415}\u{0415}N,help", None)
            .await,
        200
    );
    assert_eq!(program(&env).await, "teen");
    let env = Env::start().await;
    assert_eq!(env.text("SM503", "teenager here", None).await, 200);
    assert_eq!(program(&env).await, "crisis");
    // "Stop." is STOP.
    assert_eq!(env.text("SM504", "Stop.", None).await, 200);
    let room = env.conversation_room().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut notices = env.notices(&room).await;
    while !notices.iter().any(|n| n.contains("opted out")) {
        assert!(Instant::now() < deadline, "no opt-out notice: {notices:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        notices = env.notices(&room).await;
    }
}

impl Env {
    /// Posts a signed Twilio SMS webhook with these fields (and `NumMedia=0`).
    async fn sms_webhook(&self, fields: &[(&str, &str)]) -> u16 {
        let mut params: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        params.push(("NumMedia".into(), "0".into()));
        self.post_twilio("/twilio/sms", params, None).await
    }

    async fn bridge_metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.bridge))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Issue 17, item 8: odd input is answered so the carrier does not retry, and never opens a
/// conversation it should not; what reaches a room is marked for what it is.
#[tokio::test(flavor = "multi_thread")]
async fn unconfigured_numbers_other_accounts_short_codes_and_empty_texts() {
    let env = Env::start().await;
    // A number no program answers on: handled (no retry), counted, no room.
    let unconfigured = env
        .sms_webhook(&[
            ("MessageSid", "SM601"),
            ("AccountSid", "ACtest"),
            ("From", TEXTER),
            ("To", "+15559990000"),
            ("Body", "hello?"),
        ])
        .await;
    assert_eq!(unconfigured, 200);
    assert!(env
        .bridge_metrics()
        .await
        .contains("sms_bridge_failures_total{kind=\"unconfigured_number\"} 1"));
    // Another Twilio account's webhook, though signed: refused.
    let other = env
        .sms_webhook(&[
            ("MessageSid", "SM602"),
            ("AccountSid", "ACsomeoneelse"),
            ("From", TEXTER),
            ("To", PROGRAM_NUMBER),
            ("Body", "hello?"),
        ])
        .await;
    assert_eq!(other, 403);
    // A short code: handled, no conversation.
    let short = env
        .sms_webhook(&[
            ("MessageSid", "SM603"),
            ("AccountSid", "ACtest"),
            ("From", "72166"),
            ("To", PROGRAM_NUMBER),
            ("Body", "Your carrier balance is low"),
        ])
        .await;
    assert_eq!(short, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.bridge_rooms().await.is_empty());
    assert!(texts_to(&env.sent, "72166").is_empty());

    // An empty text in an open conversation is marked, not an empty message.
    assert_eq!(env.text("SM604", "hi", None).await, 200);
    let room = env.conversation_room().await;
    assert_eq!(env.text("SM605", "", None).await, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env
        .notices(&room)
        .await
        .iter()
        .any(|n| n == "The texter sent an empty text.")
    {
        assert!(Instant::now() < deadline, "no empty-text notice");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let texts: Vec<Value> = env.messages(&room).await;
    assert!(!texts
        .iter()
        .any(|m| m["content"]["msgtype"] == "m.text" && m["content"]["body"] == ""));
    // The same texter writing to another line's number: shown in their conversation, said.
    let other_line = env
        .sms_webhook(&[
            ("MessageSid", "SM606"),
            ("AccountSid", "ACtest"),
            ("From", TEXTER),
            ("To", PARTNER_NUMBER),
            ("Body", "is this the youth line?"),
        ])
        .await;
    assert_eq!(other_line, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env
        .notices(&room)
        .await
        .iter()
        .any(|n| n.contains("Youth line's number"))
    {
        assert!(Instant::now() < deadline, "no other-number notice");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
