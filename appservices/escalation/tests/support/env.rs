//! The escalation handler's test environment (shared by the end-to-end tests and the
//! benchmark): the real homeserver, SMS bridge and handler on loopback, staff accounts, and
//! local doubles of Twilio and of the webhook receivers.
#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use haven_testkit::{
    sibling_binary, texts_to, twilio_double, wait_for, webhook_double, Matrix, Port, Proc,
    TwilioSent, Webhooks,
};
use serde_json::{json, Value};

pub const SMS_AS: &str = "sms_as_token_for_escalation_tests";
pub const ESC_AS: &str = "esc_as_token_for_escalation_tests";
pub const AUTH_TOKEN: &str = "twilio_auth_token_for_tests";
pub const EMERGENCY_SECRET: &str = "emergency-secret-for-tests";
pub const DASH_SECRET: &str = "dashboard-secret-for-tests";
pub const CRISIS: &str = "+15550001111";
pub const YOUTH: &str = "+15550002222";
pub const TEXTER: &str = "+15551234567";
pub const YOUNG_TEXTER: &str = "+15557654321";

pub struct Staff {
    pub token: String,
}

pub struct Env {
    pub m: Matrix,
    pub server: String,
    pub sent: TwilioSent,
    pub hooks: Webhooks,
    pub bridge: String,
    pub esc_url: String,
    pub esc_cfg: PathBuf,
    /// The handler's port, held for its restarts.
    pub esc_port: Port,
    pub esc: Option<Proc>,
    pub ann: Staff,
    pub bo: Staff,
    pub sue: Staff,
    pub ada: Staff,
    pub _procs: Vec<Proc>,
    pub _ports: Vec<Port>,
    pub _dir: tempfile::TempDir,
}

/// Starts the handler on `port` and waits until it answers.
pub async fn spawn_handler(cfg: &std::path::Path, port: &Port) -> Proc {
    let mut p = Proc::start(
        Command::new(env!("CARGO_BIN_EXE_escalation"))
            .arg("--config")
            .arg(cfg)
            .env("ESCALATION_EMERGENCY_SECRET", EMERGENCY_SECRET)
            .env("ESCALATION_SUBSCRIBER_DASH_SECRET", DASH_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null()),
        &[port],
    );
    p.wait_ready("escalation", &format!("{}/health", port.url()))
        .await;
    p
}

impl Env {
    /// Where every process of this line keeps its data (`hs`, `bridge-state`, `esc-state`,
    /// `intake-state`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// `extra`: more keys (and tables) of the handler's `[escalation]` table.
    pub async fn start_with(extra: &str) -> Self {
        Self::start_opts(extra, false).await
    }

    /// With `intake`, the real intake bot runs too (as both sample configurations have it),
    /// asking the youth line's question "What should we call you?".
    pub async fn start_opts(extra: &str, intake: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let intake_listener = Port::new();
        let (hs_listener, bridge_listener, esc_listener) = (Port::new(), Port::new(), Port::new());
        let (hs_port, bridge_port, esc_port) = (
            hs_listener.port(),
            bridge_listener.port(),
            esc_listener.port(),
        );
        let server = format!("localhost:{hs_port}");
        let sms_reg = d.join("sms.yaml");
        std::fs::write(&sms_reg, format!("id: sms\nurl: http://127.0.0.1:{bridge_port}\nas_token: {SMS_AS}\nhs_token: sms_hs_token_for_escalation_tests\nsender_localpart: sms_bridge\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@sms_.*:{server}'\n")).unwrap();
        let esc_reg = d.join("esc.yaml");
        std::fs::write(&esc_reg, format!("id: escalation\nurl: http://127.0.0.1:{esc_port}\nas_token: {ESC_AS}\nhs_token: esc_hs_token_for_escalation_tests\nsender_localpart: escalation\nrate_limited: false\norg.haven.admin: true\nnamespaces:\n  users: []\n")).unwrap();
        let intake_reg = d.join("intake.yaml");
        std::fs::write(&intake_reg, format!("id: intake\nurl: {}\nas_token: intake_as_token_for_escalation_tests\nhs_token: intake_hs_token_for_escalation_tests\nsender_localpart: intake\nrate_limited: false\nnamespaces:\n  users: []\n", intake_listener.url())).unwrap();
        let more_regs = if intake {
            format!(", \"{}\"", intake_reg.display())
        } else {
            String::new()
        };
        let hs_cfg = d.join("haven.toml");
        std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{hs_port}\"\n[database]\npath = \"{}\"\n[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n[appservices]\nregistrations = [\"{}\", \"{}\"{more_regs}]\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n", d.join("hs").display(), sms_reg.display(), esc_reg.display())).unwrap();
        let mut hs = Proc::start(
            Command::new(sibling_binary("haven", "haven"))
                .arg("--config")
                .arg(&hs_cfg)
                .stdout(Stdio::null()),
            &[&hs_listener],
        );
        let hs_url = hs_listener.url();
        hs.wait_ready("haven", &format!("{hs_url}/_matrix/client/versions"))
            .await;
        let m = Matrix::new(&hs_url);
        let mut staff = Vec::new();
        for name in ["ann", "bo", "sue", "ada"] {
            let (token, _) = m.register(name).await;
            staff.push(Staff { token });
        }
        let (sent, twilio) = twilio_double().await;
        let (hooks, hooks_url) = webhook_double().await;
        let esc_cfg = d.join("escalation.toml");
        std::fs::write(
            &esc_cfg,
            format!(
                r##"homeserver_url = "{hs_url}"
server_name = "{server}"
registration = "{reg}"
listen = "127.0.0.1:{esc_port}"
state_dir = "{state}"

[escalation]
{extra}

[escalation.emergency]
url = "{hooks_url}/emergency"

[[escalation.subscribers]]
id = "dash"
url = "{hooks_url}/events"

[[escalation.affiliates]]
id = "riverside"
retention_days = 30

[[escalation.affiliates]]
id = "harbor"
retention_days = 0

[[escalation.programs]]
id = "crisis"
name = "Crisis line"
affiliate = "riverside"
queue_room = "#crisis-queue:{server}"
supervisor_room = "#crisis-supervisors:{server}"
responders = ["@ann:{server}", "@bo:{server}"]
supervisors = ["@sue:{server}"]
admins = ["@ada:{server}"]
on_call = ["@sue:{server}"]
max_concurrent = 1
first_response_target_s = 1
next_response_target_s = 600
canned = {{ hello = "Hi, I'm here to listen." }}
exit_survey = ["How helpful was this, from 1 to 5?"]

[[escalation.programs]]
id = "youth"
name = "Youth line"
affiliate = "harbor"
queue_room = "#youth-queue:{server}"
supervisor_room = "#youth-supervisors:{server}"
responders = ["@bo:{server}"]
admins = ["@ada:{server}"]
queue_timeout_s = {youth_timeout}
entry_survey = ["How old are you?"]
"##,
                reg = esc_reg.display(),
                state = d.join("esc-state").display(),
                // With intake the youth line's conversations wait through its questions.
                youth_timeout = if intake { 120 } else { 3 },
            ),
        )
        .unwrap();
        let esc = spawn_handler(&esc_cfg, &esc_listener).await;
        let esc_url = esc_listener.url();
        let mut procs = Vec::new();
        if intake {
            let cfg = d.join("intake.toml");
            std::fs::write(&cfg, format!("homeserver_url = \"{hs_url}\"\nserver_name = \"{server}\"\nregistration = \"{}\"\nlisten = \"127.0.0.1:{}\"\nstate_dir = \"{}\"\n[intake.programs.youth]\nquestions = [\"What should we call you?\"]\nclosing = \"Thanks. Someone will be with you soon.\"\n", intake_reg.display(), intake_listener.port(), d.join("intake-state").display())).unwrap();
            let mut p = Proc::start(
                Command::new(sibling_binary("intake-bot", "intake-bot"))
                    .arg("--config")
                    .arg(&cfg)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null()),
                &[&intake_listener],
            );
            p.wait_ready("intake-bot", &format!("{}/health", intake_listener.url()))
                .await;
            procs.push(p);
        }
        let bridge_cfg = d.join("bridge.toml");
        std::fs::write(
            &bridge_cfg,
            format!(
                r##"[bridge]
homeserver_url = "{hs_url}"
server_name = "{server}"
registration = "{reg}"
listen = "127.0.0.1:{bridge_port}"
public_url = "http://127.0.0.1:{bridge_port}"
state_dir = "{state}"
escalation_bot = "@escalation:{server}"
{intake_bot}

[twilio]
api_base_url = "{twilio}"
account_sid = "ACtest"

[[affiliates]]
id = "riverside"
name = "Riverside"

[[affiliates.programs]]
id = "crisis"
name = "Crisis line"
number = "{CRISIS}"
queue_room = "#crisis-queue:{server}"
auto_response = "Thanks for texting the crisis line."
help_text = "Crisis line."
supervisors = ["@sue:{server}"]

[[affiliates]]
id = "harbor"
name = "Harbor"

[[affiliates.programs]]
id = "youth"
name = "Youth line"
number = "{YOUTH}"
queue_room = "#youth-queue:{server}"
auto_response = "Youth line here."
help_text = "Youth line."
"##,
                reg = sms_reg.display(),
                state = d.join("bridge-state").display(),
                intake_bot = if intake {
                    format!("intake_bot = \"@intake:{server}\"")
                } else {
                    String::new()
                },
            ),
        )
        .unwrap();
        let mut bridge = Proc::start(
            Command::new(sibling_binary("sms-bridge", "sms-bridge"))
                .arg("--config")
                .arg(&bridge_cfg)
                .env("SMS_BRIDGE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
                .env("SMS_BRIDGE_HASH_KEY", STANDARD.encode([9u8; 32]))
                .env(
                    "SMS_BRIDGE_NUMBER_KEYS",
                    format!("k1={}", STANDARD.encode([3u8; 32])),
                )
                .env("SMS_BRIDGE_NUMBER_KEY_ID", "k1")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null()),
            &[&bridge_listener],
        );
        let bridge_url = bridge_listener.url();
        bridge
            .wait_ready("sms-bridge", &format!("{bridge_url}/health"))
            .await;
        let mut staff = staff.into_iter();
        let mut next = || staff.next().unwrap();
        let (ann, bo, sue, ada) = (next(), next(), next(), next());
        Env {
            m,
            server,
            sent,
            hooks,
            bridge: bridge_url,
            esc_url,
            esc_cfg,
            esc_port: esc_listener,
            esc: Some(esc),
            ann,
            bo,
            sue,
            ada,
            _procs: {
                procs.extend([bridge, hs]);
                procs
            },
            _ports: vec![hs_listener, bridge_listener, intake_listener],
            _dir: dir,
        }
    }

    /// A signed inbound SMS, as Twilio posts it.
    pub async fn sms(&self, from: &str, to: &str, sid: &str, body: &str) {
        let params: Vec<(String, String)> = [
            ("MessageSid", sid),
            ("AccountSid", "ACtest"),
            ("From", from),
            ("To", to),
            ("Body", body),
            ("NumMedia", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = format!("{}/twilio/sms", self.bridge);
        let sig = sms_bridge::signature::compute(AUTH_TOKEN, &url, &params);
        let r = self
            .m
            .http
            .post(&url)
            .header("x-twilio-signature", sig)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    pub async fn room_of_alias(&self, alias: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (st, v) = self
                .m
                .api(
                    "GET",
                    &self.ann.token,
                    &format!("/directory/room/{}", alias.replace('#', "%23")),
                    json!({}),
                )
                .await;
            if st == 200 {
                return v["room_id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no room {alias}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The conversation rooms the bridge has opened, oldest first.
    pub async fn conversation_rooms(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rooms = self.m.joined_rooms(SMS_AS).await;
            if rooms.len() >= n {
                return rooms;
            }
            assert!(
                Instant::now() < deadline,
                "{} conversation rooms, wanted {n}",
                rooms.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The conversation state, once it satisfies `pred`.
    pub async fn conversation(&self, room: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.m.state(SMS_AS, room, "org.haven.conversation").await {
                if pred(&c) {
                    return c;
                }
                assert!(Instant::now() < deadline, "conversation state stuck at {c}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn state_is(&self, room: &str, state: &str) -> Value {
        self.conversation(room, |c| c["state"] == state).await
    }

    /// Waits for the handler's notice containing `needle` in `room`, read as `token`.
    pub async fn notice(&self, token: &str, room: &str, needle: &str) -> Value {
        self.m
            .wait_message(token, room, needle, |m| {
                m["content"]["msgtype"] == "m.notice"
                    && m["content"]["body"]
                        .as_str()
                        .is_some_and(|b| b.contains(needle))
            })
            .await
    }

    /// The conversation's entry survey answers, once there are some.
    pub async fn entry_survey(&self, room: &str) -> Value {
        self.conversation(room, |c| {
            !c["surveys"]["entry"].as_array().unwrap().is_empty()
        })
        .await["surveys"]["entry"]
            .clone()
    }

    pub async fn texts(&self, to: &str, needle: &str) {
        wait_for(needle, || {
            texts_to(&self.sent, to).iter().any(|b| b.contains(needle))
        })
        .await;
    }

    pub async fn metrics(&self) -> String {
        self.m
            .http
            .get(format!("{}/metrics", self.esc_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

pub fn verify(hook: &haven_testkit::Hook, secret: &str) -> bool {
    appservice_runtime::signing::verify(
        secret.as_bytes(),
        &hook.body,
        hook.header("x-haven-signature").unwrap_or_default(),
    )
}
