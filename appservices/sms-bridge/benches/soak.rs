//! Soak: a crisis line's traffic for an hour with the carrier down every ten minutes.
//!
//! `cargo bench -p sms-bridge --bench soak -- [MINUTES] [OUTAGE_S] [EVERY_S]` (defaults 60, 60
//! and 600: an hour, with a minute's outage every ten minutes).
//! Starts Haven and the bridge (release builds) on loopback with the carrier double of the
//! test kit. Twenty texters take turns texting, one text every three seconds; a responder
//! answers each text at once with a reply of its own. Every ten minutes the carrier stops
//! listening for OUTAGE_S seconds. At the end, after the bridge has had time to drain, it
//! checks that every text reached its room once and every reply reached the carrier once,
//! and prints the counts and how late the replies were. Results go to docs/performance.md.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use haven_testkit::{carrier::Carrier, carrier::Mode, sibling_binary, Port, Proc};
use serde_json::{json, Value};

const AS_TOKEN: &str = "soak_as_token_0123456789";
const AUTH: &str = "soak_auth_token";
const LINE: &str = "+15550001111";
const TEXTERS: usize = 20;

struct Line {
    hs: String,
    bridge: String,
    http: reqwest::Client,
    _procs: Vec<Proc>,
    _ports: Vec<Port>,
    _dir: tempfile::TempDir,
}

impl Line {
    async fn start(carrier: &Carrier) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path();
        let (hs_port, bridge_port) = (Port::new(), Port::new());
        let server = format!("localhost:{}", hs_port.port());
        let reg = d.join("sms.yaml");
        std::fs::write(&reg, format!("id: sms\nurl: {}\nas_token: {AS_TOKEN}\nhs_token: soak_hs_token_0123456789\nsender_localpart: sms_bridge\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@sms_.*:{server}'\n", bridge_port.url())).expect("registration");
        let hs_cfg = d.join("haven.toml");
        std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{}\"\n[database]\npath = \"{}\"\n[rate_limits]\nenabled = false\n[appservices]\nregistrations = [\"{}\"]\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n", hs_port.port(), d.join("hs").display(), reg.display())).expect("config");
        let mut hs = Proc::start(
            Command::new(sibling_binary("haven", "haven"))
                .arg("--config")
                .arg(&hs_cfg)
                .stdout(Stdio::null()),
            &[&hs_port],
        );
        hs.wait_ready(
            "haven",
            &format!("{}/_matrix/client/versions", hs_port.url()),
        )
        .await;
        let bridge_cfg = d.join("bridge.toml");
        std::fs::write(
            &bridge_cfg,
            format!(
                r##"[bridge]
homeserver_url = "{hs}"
server_name = "{server}"
registration = "{reg}"
listen = "127.0.0.1:{port}"
public_url = "{public}"
state_dir = "{state}"

[twilio]
api_base_url = "{carrier}"
account_sid = "ACsoak"

[pacing]
segments_per_second = 20.0

[[affiliates]]
id = "riverside"
name = "Riverside"

[[affiliates.programs]]
id = "crisis"
name = "Crisis line"
number = "{LINE}"
queue_room = "#crisis-queue:{server}"
auto_response = "Thanks for texting."
help_text = "Crisis line."
"##,
                hs = hs_port.url(),
                reg = reg.display(),
                port = bridge_port.port(),
                public = bridge_port.url(),
                state = d.join("bridge").display(),
                carrier = carrier.base
            ),
        )
        .expect("config");
        let mut bridge = Proc::start(
            Command::new(sibling_binary("sms-bridge", "sms-bridge"))
                .arg("--config")
                .arg(&bridge_cfg)
                .env("SMS_BRIDGE_TWILIO_AUTH_TOKEN", AUTH)
                .env("SMS_BRIDGE_HASH_KEY", STANDARD.encode([9u8; 32]))
                .env(
                    "SMS_BRIDGE_NUMBER_KEYS",
                    format!("k1={}", STANDARD.encode([3u8; 32])),
                )
                .env("SMS_BRIDGE_NUMBER_KEY_ID", "k1")
                .env("RUST_LOG", "error")
                .stdout(Stdio::null()),
            &[&bridge_port],
        );
        bridge
            .wait_ready("sms-bridge", &format!("{}/health", bridge_port.url()))
            .await;
        Self {
            hs: hs_port.url(),
            bridge: bridge_port.url(),
            http: reqwest::Client::new(),
            _procs: vec![bridge, hs],
            _ports: vec![hs_port, bridge_port],
            _dir: dir,
        }
    }

    /// A signed inbound text; answers the HTTP status.
    async fn text(&self, sid: &str, from: &str, body: &str) -> u16 {
        let url = format!("{}/twilio/sms", self.bridge);
        let params = vec![
            ("MessageSid".to_owned(), sid.to_owned()),
            ("AccountSid".to_owned(), "ACsoak".to_owned()),
            ("From".to_owned(), from.to_owned()),
            ("To".to_owned(), LINE.to_owned()),
            ("Body".to_owned(), body.to_owned()),
            ("NumMedia".to_owned(), "0".to_owned()),
        ];
        let sig = sms_bridge::signature::compute(AUTH, &url, &params);
        match self
            .http
            .post(&url)
            .header("x-twilio-signature", sig)
            .form(&params)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let mut rb = self
            .http
            .request(method, format!("{}/_matrix/client/v3{path}", self.hs));
        if !body.is_null() {
            rb = rb.json(&body);
        }
        if !token.is_empty() {
            rb = rb.bearer_auth(token);
        }
        let r = rb.send().await;
        match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Bodies of the texter's messages in `room`.
    async fn texter_bodies(&self, room: &str) -> Vec<String> {
        let v = self
            .api(
                reqwest::Method::GET,
                &format!("/rooms/{room}/messages?dir=f&limit=100000"),
                AS_TOKEN,
                Value::Null,
            )
            .await;
        v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| e["type"] == "m.room.message" && e["content"]["msgtype"] == "m.text")
            .filter(|e| {
                e["sender"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("@sms_") && !s.starts_with("@sms_bridge"))
            })
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    }
}

fn texter(i: usize) -> String {
    format!("+1555100{i:04}")
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let minutes = args.first().copied().unwrap_or(60);
    let outage_s = args.get(1).copied().unwrap_or(60);
    let every_s = args.get(2).copied().unwrap_or(600);
    let carrier = Carrier::start().await;
    let line = Line::start(&carrier).await;

    // A responder, and a conversation per texter with the responder in it.
    let reg = line
        .api(reqwest::Method::POST, "/register", "", json!({"username": "responder", "password": "soak-password-1", "auth": {"type": "m.login.dummy"}}))
        .await;
    let token = reg["access_token"]
        .as_str()
        .expect("a responder")
        .to_owned();
    let responder = reg["user_id"].as_str().expect("a responder").to_owned();
    let mut rooms: HashMap<usize, String> = HashMap::new();
    for i in 0..TEXTERS {
        assert_eq!(
            line.text(&format!("SMopen{i}"), &texter(i), "hello").await,
            200
        );
        let joined = line
            .api(reqwest::Method::GET, "/joined_rooms", AS_TOKEN, Value::Null)
            .await;
        let known: Vec<&String> = rooms.values().collect();
        let room = joined["joined_rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|r| !known.iter().any(|k| k.as_str() == *r))
            .unwrap_or_else(|| panic!("the new conversation room: {joined}"))
            .to_owned();
        line.api(
            reqwest::Method::POST,
            &format!("/rooms/{room}/invite"),
            AS_TOKEN,
            json!({"user_id": responder}),
        )
        .await;
        line.api(
            reqwest::Method::POST,
            &format!("/rooms/{room}/join"),
            &token,
            json!({}),
        )
        .await;
        rooms.insert(i, room);
    }

    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let mut n = 0usize;
    let mut replied_at: HashMap<String, Instant> = HashMap::new();
    let mut texts: HashMap<usize, Vec<String>> = HashMap::new();
    let mut inbound_failures = 0;
    let mut outages = 0;
    let mut down_until: Option<Instant> = None;
    let mut next_outage = start + Duration::from_secs(every_s);
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_outage && down_until.is_none() {
            carrier.set(Mode::Down).await;
            down_until = Some(now + Duration::from_secs(outage_s));
            next_outage += Duration::from_secs(every_s);
            outages += 1;
        }
        if down_until.is_some_and(|t| now >= t) {
            carrier.set(Mode::Up).await;
            down_until = None;
        }
        let i = n % TEXTERS;
        let body = format!("text {n} from texter {i}");
        // A text the bridge did not take is retried by the carrier, as Twilio does.
        let mut tries = 0;
        while line.text(&format!("SM{n:08}"), &texter(i), &body).await != 200 {
            tries += 1;
            inbound_failures += 1;
            if tries > 20 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        texts.entry(i).or_default().push(body);
        let reply = format!("reply {n} to texter {i}");
        line.api(
            reqwest::Method::PUT,
            &format!("/rooms/{}/send/m.room.message/soak{n}", rooms[&i]),
            &token,
            json!({"msgtype": "m.text", "body": reply}),
        )
        .await;
        replied_at.insert(reply, Instant::now());
        n += 1;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if down_until.is_some() {
        carrier.set(Mode::Up).await;
    }

    // Drain: every reply out, or three minutes.
    let drain = Instant::now() + Duration::from_secs(180);
    let count = |body: &str| {
        carrier
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|f| f.iter().any(|(k, v)| k == "Body" && v == body))
            .count()
    };
    while Instant::now() < drain && replied_at.keys().any(|r| count(r) == 0) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut lost = 0;
    let mut doubled = 0;
    let mut delays: Vec<f64> = Vec::new();
    let mut taken_at: HashMap<String, Instant> = HashMap::new();
    for i in 0..TEXTERS {
        for (at, body) in carrier.taken_to(&texter(i)) {
            taken_at.entry(body).or_insert(at);
        }
    }
    for (reply, at) in &replied_at {
        match count(reply) {
            0 => lost += 1,
            1 => {}
            _ => doubled += 1,
        }
        if let Some(t) = taken_at.get(reply) {
            delays.push(t.duration_since(*at).as_secs_f64());
        }
    }
    let mut texts_lost = 0;
    let mut texts_doubled = 0;
    for (i, sent) in &texts {
        let seen = line.texter_bodies(&rooms[i]).await;
        for body in sent {
            match seen.iter().filter(|b| *b == body).count() {
                0 => texts_lost += 1,
                1 => {}
                _ => texts_doubled += 1,
            }
        }
    }
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "soak: {minutes} min, {outages} carrier outages of {outage_s} s, {n} texts and {n} replies"
    );
    println!("texts: {texts_lost} lost, {texts_doubled} doubled ({inbound_failures} webhook answers other than 200, retried)");
    println!("replies: {lost} lost, {doubled} doubled");
    println!(
        "reply delay (written -> carrier took it): p50 {:.0} ms, p99 {:.1} s, max {:.1} s",
        pct(0.5) * 1000.0,
        pct(0.99),
        delays.last().copied().unwrap_or(0.0)
    );
    assert_eq!(
        (lost, doubled, texts_lost, texts_doubled),
        (0, 0, 0, 0),
        "the soak lost or doubled something"
    );
}
