//! End to end: a newly registered user is greeted by the intake bot in the direct room the
//! homeserver opens, answers, and ends with a correct profile state event.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use haven_testkit::{sibling_binary, Port, Proc};
use serde_json::{json, Value};

const AS_TOKEN: &str = "intake_as_token_for_tests_0123";
const HS_TOKEN: &str = "intake_hs_token_for_tests_0123";

fn haven_binary() -> PathBuf {
    sibling_binary("haven", "haven")
}

struct Env {
    hs: String,
    bot_url: String,
    http: reqwest::Client,
    _procs: Vec<Proc>,
    _dir: tempfile::TempDir,
}

/// Haven with the intake bot as greeting bot, and the intake bot (on a model when given, with
/// `intake_toml` as its `[intake]` table).
async fn start(model_base: Option<String>, intake_toml: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (hs_listener, bot_listener) = (Port::new(), Port::new());
    let (hs_port, bot_port) = (hs_listener.port(), bot_listener.port());
    let server = format!("localhost:{hs_port}");
    let reg = dir.path().join("intake.yaml");
    std::fs::write(&reg, format!("id: intake-bot\nurl: http://127.0.0.1:{bot_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: intake\nrate_limited: false\nnamespaces:\n  users: []\n")).unwrap();
    let hs_cfg = dir.path().join("haven.toml");
    std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{hs_port}\"\n[database]\npath = \"{}\"\n[registration]\nmode = \"open\"\ngreeting_bots = [\"@intake:{server}\"]\n[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n[appservices]\nregistrations = [\"{}\"]\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n", dir.path().join("hs").display(), reg.display())).unwrap();
    let mut hs_proc = Proc::start(
        Command::new(haven_binary())
            .arg("--config")
            .arg(&hs_cfg)
            .stdout(Stdio::null()),
        &[&hs_listener],
    );
    let bot_cfg = dir.path().join("intake.toml");
    std::fs::write(&bot_cfg, format!("homeserver_url = \"http://127.0.0.1:{hs_port}\"\nserver_name = \"{server}\"\nregistration = \"{}\"\nlisten = \"127.0.0.1:{bot_port}\"\nstate_dir = \"{}\"\n[intake]\n{intake_toml}\n", reg.display(), dir.path().join("bot").display())).unwrap();
    let http = reqwest::Client::new();
    let hs = hs_listener.url();
    hs_proc
        .wait_ready("haven", &format!("{hs}/_matrix/client/versions"))
        .await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake-bot"));
    cmd.arg("--config")
        .arg(&bot_cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(base) = &model_base {
        cmd.env("INTAKE_MODEL_BASE_URL", base)
            .env("INTAKE_MODEL", "test-model")
            .env("INTAKE_MODEL_TIMEOUT_MS", "2000");
    }
    let mut bot = Proc::start(&mut cmd, &[&bot_listener]);
    bot.wait_ready("intake-bot", &format!("{}/health", bot_listener.url()))
        .await;
    Env {
        hs,
        bot_url: format!("http://127.0.0.1:{bot_port}"),
        http,
        _procs: vec![bot, hs_proc],
        _dir: dir,
    }
}

impl Env {
    /// A client-server API call; answers (status, JSON body).
    async fn api(&self, method: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/_matrix/client/v3{path}", self.hs);
        let rb = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url).json(&body),
            _ => self.http.post(url).json(&body),
        };
        let r = rb.bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The intake profile written in `room` (its state event).
    async fn profile(&self, token: &str, room: &str) -> Value {
        let (status, profile) = self
            .api(
                "GET",
                token,
                &format!("/rooms/{room}/state/org.haven.intake.profile/"),
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{profile}");
        profile
    }

    /// Sends a message; returns its event ID.
    async fn send(&self, token: &str, room: &str, content: Value) -> String {
        static TXN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = TXN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (status, v) = self
            .api(
                "PUT",
                token,
                &format!("/rooms/{room}/send/m.room.message/t{n}"),
                content,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["event_id"].as_str().unwrap().to_owned()
    }

    /// The bot's Prometheus metrics.
    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.bot_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Registers `name` and accepts the invite to the greeting room; returns (token, room).
    async fn greeted_user(&self, name: &str) -> (String, String) {
        let hs = &self.hs;
        let reg: Value = self
            .http
            .post(format!("{hs}/_matrix/client/v3/register"))
            .json(&json!({"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reg["access_token"].as_str().unwrap().to_owned();
        let sync: Value = self
            .http
            .get(format!("{hs}/_matrix/client/v3/sync"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let room = sync["rooms"]["invite"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .expect("greeting invite")
            .clone();
        self.http
            .post(format!("{hs}/_matrix/client/v3/rooms/{room}/join"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        (token, room)
    }

    /// Waits until the bot has said `n` things in `room` and returns them.
    async fn bot_said(&self, token: &str, room: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!(
                "{}/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100",
                self.hs
            );
            let v: Value = self
                .http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let said: Vec<Value> = v["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    e["type"] == "m.room.message"
                        && e["sender"].as_str().unwrap().starts_with("@intake:")
                })
                .cloned()
                .collect();
            if said.len() >= n {
                return said;
            }
            assert!(
                Instant::now() < deadline,
                "the bot said {} things, expected {n}",
                said.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_is_interviewed_into_a_profile() {
    let env = start(None, "").await;
    let (hs, http) = (env.hs.clone(), env.http.clone());

    let (token, room) = env.greeted_user("volunteer").await;
    let bot_says = |n: usize| env.bot_said(&token, &room, n);
    let greeting = bot_says(1).await;
    assert!(greeting[0]["content"]["body"]
        .as_str()
        .unwrap()
        .contains("skills"));
    assert_eq!(greeting[0]["content"]["org.haven.ai"]["backend"], "offline");

    let answers = [
        "I'm a paralegal and I speak English and Vietnamese",
        "Weekends, afternoons. I live in San Jose and I'm happy to travel",
        "Immigration and youth",
    ];
    for (i, a) in answers.iter().enumerate() {
        http.put(format!(
            "{hs}/_matrix/client/v3/rooms/{room}/send/m.room.message/a{i}"
        ))
        .bearer_auth(&token)
        .json(&json!({"msgtype": "m.text", "body": a}))
        .send()
        .await
        .unwrap();
        bot_says(i + 2).await;
    }
    let profile = env.profile(&token, &room).await;
    assert_eq!(profile["skills"], json!(["legal"]));
    assert_eq!(profile["languages"], json!(["en", "vi"]));
    assert_eq!(
        profile["availability"],
        json!({"days": ["sat", "sun"], "times": ["afternoon"]})
    );
    assert_eq!(profile["location"], "San Jose");
    assert_eq!(profile["willing_to_travel"], true);
    assert_eq!(profile["causes"], json!(["immigration", "youth"]));
    assert_eq!(profile["complete"], true);
    assert!(profile["searchable_text"]
        .as_str()
        .unwrap()
        .contains("San Jose"));

    // A correction updates the profile.
    http.put(format!(
        "{hs}/_matrix/client/v3/rooms/{room}/send/m.room.message/c1"
    ))
    .bearer_auth(&token)
    .json(&json!({"msgtype": "m.text", "body": "Actually I'm only free on Sundays"}))
    .send()
    .await
    .unwrap();
    bot_says(5).await;
    let profile = env.profile(&token, &room).await;
    assert_eq!(profile["availability"]["days"], json!(["sun"]));
}

/// The OpenAI-compatible double: records requests; answers 500 while `fail` is set, too late
/// while `slow` is, and with something that is not the JSON asked for while `malformed` is.
#[derive(Clone, Default)]
struct ModelDouble {
    requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Answers interview requests after longer than the bot's timeout.
    slow: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// 0: well-formed; 1: prose instead of JSON; 2: JSON without a profile.
    malformed: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

async fn model_double() -> (ModelDouble, String) {
    use axum::{
        extract::State, http::StatusCode, response::IntoResponse, routing::post, Json, Router,
    };
    let d = ModelDouble::default();
    async fn complete(
        State(d): State<ModelDouble>,
        Json(body): Json<Value>,
    ) -> axum::response::Response {
        d.requests.lock().unwrap().push(body.clone());
        if d.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return (StatusCode::INTERNAL_SERVER_ERROR, "overloaded").into_response();
        }
        if d.slow.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if body.get("response_format").is_none() {
            // A group-room question or a summary: plain text, slowly enough to see typing.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return Json(json!({"model": "test-model-2026", "usage": {"prompt_tokens": 200, "completion_tokens": 20},
                "choices": [{"message": {"role": "assistant", "content": "It moved to 12 Oak Street."}}]})).into_response();
        }
        let last = body["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned();
        let text = match d.malformed.load(std::sync::atomic::Ordering::SeqCst) {
            1 => Some("Great question! I would ask them which languages they speak.".to_owned()),
            2 => Some(json!({"reply": "Which languages?"}).to_string()),
            _ => None,
        };
        if let Some(text) = text {
            return Json(json!({"model": "test-model-2026", "usage": {"prompt_tokens": 120, "completion_tokens": 9},
                "choices": [{"message": {"role": "assistant", "content": text}}]})).into_response();
        }
        let (reply, skills, langs, complete) = if last.contains("lawyer") {
            (
                "Thanks! Which languages do you speak?",
                json!(["legal"]),
                json!([]),
                false,
            )
        } else {
            (
                "Thank you, that's all I need.",
                json!(["legal"]),
                json!(["English"]),
                true,
            )
        };
        // As models often answer: in a code fence, with names where codes were asked for.
        let content = json!({"reply": reply, "profile": {"skills": skills, "languages": langs,
            "availability": {"days": ["Saturdays"], "times": []}, "location": null, "willing_to_travel": null,
            "causes": [], "searchable_text": "A lawyer.", "complete": complete}});
        let content = format!("```json\n{content}\n```");
        Json(json!({"model": "test-model-2026", "usage": {"prompt_tokens": 120, "completion_tokens": 30},
            "choices": [{"message": {"role": "assistant", "content": content}}]})).into_response()
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(d.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (d, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_backend_runs_the_interview_and_the_offline_interviewer_answers_when_it_fails() {
    let (double, base) = model_double().await;
    let env = start(Some(base), "").await;
    let (hs, http) = (env.hs.clone(), env.http.clone());
    let (token, room) = env.greeted_user("volunteer").await;
    let bot_messages = |n: usize| env.bot_said(&token, &room, n);
    bot_messages(1).await;
    let send = |txn: &str, body: &str| {
        http.put(format!(
            "{hs}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"
        ))
        .bearer_auth(&token)
        .json(&json!({"msgtype": "m.text", "body": body}))
        .send()
    };
    send("m1", "I'm a lawyer").await.unwrap();
    let said = bot_messages(2).await;
    assert_eq!(
        said[1]["content"]["body"],
        "Thanks! Which languages do you speak?"
    );
    let ai = &said[1]["content"]["org.haven.ai"];
    assert_eq!(
        (
            ai["backend"].as_str(),
            ai["model"].as_str(),
            ai["prompt_tokens"].as_u64(),
            ai["completion_tokens"].as_u64()
        ),
        (Some("openai"), Some("test-model-2026"), Some(120), Some(30))
    );
    // The request: model, token limit, system prompt, the room's own conversation only.
    let req = double.requests.lock().unwrap()[0].clone();
    assert_eq!(req["model"], "test-model");
    assert_eq!(req["max_tokens"], 400);
    let msgs = req["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(msgs[1]["role"], "assistant"); // the greeting
    assert_eq!(msgs.last().unwrap()["content"], "I'm a lawyer");

    // The model is down: the offline interviewer reads the answer and asks what is still
    // missing, from the profile the model had built (skills known, so not asked again).
    let fallback = |said: &Value| {
        let ai = &said["content"]["org.haven.ai"];
        assert_eq!(said["content"]["msgtype"], "m.text");
        assert_eq!(
            (ai["backend"].as_str(), ai["fallback"].as_bool()),
            (Some("offline"), Some(true))
        );
        said["content"]["body"].as_str().unwrap().to_owned()
    };
    double.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    send("m2", "English and Spanish").await.unwrap();
    let said = bot_messages(3).await;
    let body = fallback(&said[2]);
    assert!(
        body.contains("Where are you based") && !body.contains("skills"),
        "{body}"
    );
    double
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // Slow (over the 2 s timeout; tried once): the offline interviewer again, in time.
    double.slow.store(true, std::sync::atomic::Ordering::SeqCst);
    send("m3", "Weekends, mornings. I live in Fresno")
        .await
        .unwrap();
    let said = bot_messages(4).await;
    assert!(fallback(&said[3]).contains("group of people"));
    double
        .slow
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // Prose instead of JSON, then JSON without a profile: the offline interviewer.
    for (i, mode) in [1u8, 2].into_iter().enumerate() {
        double
            .malformed
            .store(mode, std::sync::atomic::Ordering::SeqCst);
        send(&format!("bad{i}"), "hmm").await.unwrap();
        let said = bot_messages(5 + i).await;
        fallback(&said[4 + i]);
    }
    double
        .malformed
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let profile = env.profile(&token, &room).await;
    assert_eq!(profile["languages"], json!(["en", "es"]));
    assert_eq!(profile["availability"]["times"], json!(["morning"]));
    assert_eq!(profile["location"], "Fresno");
    // The model is back and takes over; its words are brought to the contract.
    send("m4", "English").await.unwrap();
    let said = bot_messages(7).await;
    assert_eq!(said[6]["content"]["body"], "Thank you, that's all I need.");
    let profile = env.profile(&token, &room).await;
    assert_eq!(
        (
            profile["skills"].clone(),
            profile["languages"].clone(),
            profile["availability"]["days"].clone(),
            profile["complete"].clone()
        ),
        (json!(["legal"]), json!(["en"]), json!(["sat"]), json!(true))
    );
}

impl Env {
    /// The user ID behind `token`.
    async fn whoami(&self, token: &str) -> String {
        let (_, v) = self.api("GET", token, "/account/whoami", json!({})).await;
        v["user_id"].as_str().unwrap().to_owned()
    }

    /// Creates a room with `body` as `owner`; waits until the bot has joined it.
    async fn room_with_bot(&self, owner: &str, body: Value) -> String {
        let (status, v) = self.api("POST", owner, "/createRoom", body).await;
        assert_eq!(status, 200, "{v}");
        let room = v["room_id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, m) = self
                .api(
                    "GET",
                    owner,
                    &format!("/rooms/{room}/joined_members"),
                    json!({}),
                )
                .await;
            if m["joined"]
                .as_object()
                .is_some_and(|j| j.keys().any(|k| k.starts_with("@intake:")))
            {
                return room;
            }
            assert!(Instant::now() < deadline, "the bot did not join");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn join(&self, token: &str, room: &str) {
        let (status, v) = self
            .api("POST", token, &format!("/rooms/{room}/join"), json!({}))
            .await;
        assert_eq!(status, 200, "{v}");
    }
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

#[tokio::test(flavor = "multi_thread")]
async fn mentions_in_a_group_room_are_answered_and_nothing_else() {
    let env = start(None, "user_questions_per_minute = 4").await;
    // Alice's intake first, so there is a profile to find.
    let (alice, dm) = env.greeted_user("alice").await;
    env.bot_said(&alice, &dm, 1).await;
    let answers = [
        "I'm a paralegal and I speak English and Vietnamese",
        "Weekends, afternoons. I live in San Jose and I'm happy to travel",
        "Immigration and youth",
    ];
    for (i, a) in answers.iter().enumerate() {
        env.send(&alice, &dm, text(a)).await;
        env.bot_said(&alice, &dm, i + 2).await;
    }
    let (bob, _) = env.greeted_user("bob").await;
    let bob_id = env.whoami(&bob).await;
    let bot = bob_id.replace("@bob:", "@intake:");
    let room = env
        .room_with_bot(
            &alice,
            json!({"preset": "private_chat", "name": "Coordinators", "invite": [bot, bob_id]}),
        )
        .await;
    env.join(&bob, &room).await;

    // Not asked: no answer. Asked with the trigger: profile search is off by default.
    env.send(&bob, &room, text("hello everyone, the intake form is long"))
        .await;
    let q1 = env
        .send(&bob, &room, text("!ai who speaks Vietnamese?"))
        .await;
    let said = env.bot_said(&bob, &room, 1).await;
    assert_eq!(said.len(), 1, "only the question was answered: {said:#?}");
    let a1 = &said[0]["content"];
    assert_eq!(a1["msgtype"], "m.notice");
    assert_eq!(a1["m.relates_to"]["m.in_reply_to"]["event_id"], q1.as_str());
    assert_eq!(a1["m.mentions"]["user_ids"], json!([bob_id]));
    assert!(!a1["body"].as_str().unwrap().contains("alice"));
    assert_eq!(a1["org.haven.ai"]["backend"], "offline");

    // Only room admins change the settings: Bob (power 0) cannot, Alice can.
    let settings_path = format!("/rooms/{room}/state/org.haven.intake.settings/");
    let (status, v) = env
        .api("PUT", &bob, &settings_path, json!({"profile_search": true}))
        .await;
    assert_eq!((status, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (status, _) = env
        .api(
            "PUT",
            &alice,
            &settings_path,
            json!({"enabled": true, "trigger": "!ai", "profile_search": true}),
        )
        .await;
    assert_eq!(status, 200);

    // A mention in a thread is answered in that thread, now from the profiles.
    let q2 = env
        .send(
            &bob,
            &room,
            json!({"msgtype": "m.text", "body": "@intake who speaks Vietnamese?",
                "m.relates_to": {"rel_type": "m.thread", "event_id": q1}}),
        )
        .await;
    let said = env.bot_said(&bob, &room, 2).await;
    let a2 = &said[1]["content"];
    assert_eq!(a2["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(a2["m.relates_to"]["event_id"], q1.as_str());
    assert_eq!(a2["m.relates_to"]["m.in_reply_to"]["event_id"], q2.as_str());
    let body = a2["body"].as_str().unwrap();
    assert!(
        body.contains("alice") && body.contains("San Jose"),
        "{body}"
    );

    // The same question, differently written: from the cache.
    env.send(&bob, &room, text("!ai Who speaks VIETNAMESE"))
        .await;
    let said = env.bot_said(&bob, &room, 3).await;
    assert_eq!(said[2]["content"]["body"], body);
    assert_eq!(said[2]["content"]["org.haven.ai"]["cached"], true);

    // Bob's fourth question is answered, the fifth gets one notice, the sixth nothing.
    env.send(&bob, &room, text("!ai who can drive?")).await;
    let said = env.bot_said(&bob, &room, 4).await;
    assert!(said[3]["content"]["body"]
        .as_str()
        .unwrap()
        .starts_with("Nobody"));
    env.send(&bob, &room, text("!ai who works nights?")).await;
    let said = env.bot_said(&bob, &room, 5).await;
    assert!(said[4]["content"]["body"]
        .as_str()
        .unwrap()
        .contains("faster"));
    env.send(&bob, &room, text("!ai who works mornings?")).await;
    // Notices (how bots speak) are never answered.
    env.send(
        &alice,
        &room,
        json!({"msgtype": "m.notice", "body": "!ai who speaks English?"}),
    )
    .await;
    let last = env
        .send(&alice, &room, text("Intake, who cares about youth?"))
        .await;
    let said = env.bot_said(&bob, &room, 6).await;
    assert_eq!(said.len(), 6);
    assert_eq!(
        said[5]["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        last.as_str()
    );

    // The bot marked what it read.
    let (_, sync) = env.api("GET", &bob, "/sync", json!({})).await;
    let receipts = &sync["rooms"]["join"][&room]["ephemeral"]["events"];
    let read = receipts
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .expect("receipts");
    assert!(read["content"][&last]["m.read"][&bot].is_object(), "{read}");

    let m = env.metrics().await;
    for line in [
        "intake_requests_total{backend=\"offline\",kind=\"group\"} 4",
        "intake_cache_hits_total 1",
        "intake_errors_total{kind=\"rate_limited\"} 2",
    ] {
        assert!(m.contains(line), "{line} missing from:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn texters_get_the_programs_questions_and_responders_a_summary() {
    let env = start(
        None,
        "[intake.programs.crisis]\nintro = \"Before a counsellor joins:\"\n\
         questions = [\"How old are you?\", \"Which town are you in?\"]\n\
         closing = \"Thanks. A counsellor will be with you soon.\"",
    )
    .await;
    // Stand-ins for the SMS bridge's bot, a texter's puppet and a responder.
    let (bridge, _) = env.greeted_user("bridge").await;
    let (texter, _) = env.greeted_user("texter").await;
    let (responder, _) = env.greeted_user("responder").await;
    let texter_id = env.whoami(&texter).await;
    let bot = texter_id.replace("@texter:", "@intake:");
    let conversation = json!({"program": "crisis", "puppet": texter_id, "state": "new"});

    // The conversation state is set after the bot joined, and the bot may write state here
    // (as the SMS bridge arranges); in the second room it may not.
    let room = env
        .room_with_bot(
            &bridge,
            json!({"preset": "private_chat", "invite": [bot, texter_id],
                "power_level_content_override": {"users": {bot.clone(): 50}}}),
        )
        .await;
    env.join(&texter, &room).await;
    let (status, _) = env
        .api(
            "PUT",
            &bridge,
            &format!("/rooms/{room}/state/org.haven.conversation/"),
            conversation.clone(),
        )
        .await;
    assert_eq!(status, 200);
    // Every SMS conversation opens with the texter's text; the questions follow it.
    env.send(&texter, &room, text("hi")).await;
    let said = env.bot_said(&bridge, &room, 1).await;
    assert_eq!(said[0]["content"]["msgtype"], "m.text"); // texted out by the bridge
    assert_eq!(
        said[0]["content"]["body"],
        "Before a counsellor joins: How old are you?"
    );
    env.send(&texter, &room, text("16")).await;
    let said = env.bot_said(&bridge, &room, 2).await;
    assert_eq!(said[1]["content"]["body"], "Which town are you in?");
    env.send(&texter, &room, text("Leeds")).await;
    let said = env.bot_said(&bridge, &room, 4).await;
    assert_eq!(
        said[2]["content"]["body"],
        "Thanks. A counsellor will be with you soon."
    );
    assert_eq!(said[3]["content"]["msgtype"], "m.notice"); // not texted out
    assert_eq!(
        said[3]["content"]["body"],
        "Intake summary for the responder:\nFirst message — hi\nHow old are you? — 16\nWhich town are you in? — Leeds"
    );
    let (_, summary) = env
        .api(
            "GET",
            &bridge,
            &format!("/rooms/{room}/state/org.haven.intake.summary/"),
            json!({}),
        )
        .await;
    assert_eq!(summary["complete"], true);
    assert_eq!(
        summary["answers"][1],
        json!({"question": "Which town are you in?", "answer": "Leeds"})
    );

    // The state is there when the bot is invited; a responder takes over half way.
    let responder_id = env.whoami(&responder).await;
    let room = env
        .room_with_bot(
            &bridge,
            json!({"preset": "private_chat", "invite": [bot, texter_id, responder_id],
                "initial_state": [{"type": "org.haven.conversation", "state_key": "", "content": conversation}]}),
        )
        .await;
    env.join(&texter, &room).await;
    env.join(&responder, &room).await;
    env.send(&texter, &room, text("hello")).await;
    env.bot_said(&bridge, &room, 1).await;
    env.send(&texter, &room, text("15")).await;
    env.bot_said(&bridge, &room, 2).await;
    env.send(&responder, &room, text("Hi, I'm Sam, I'm here with you."))
        .await;
    let said = env.bot_said(&bridge, &room, 3).await;
    assert_eq!(
        said[2]["content"]["body"],
        "Intake stopped (a responder took over). Answers so far:\nFirst message — hello\nHow old are you? — 15"
    );
    env.send(&texter, &room, text("York")).await;
    let marker = env.send(&responder, &room, text("Thanks")).await;
    // Nothing more from the bot after the texter's message (it would precede the marker).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let said = env.bot_said(&bridge, &room, 3).await;
    assert_eq!(said.len(), 3, "{marker}");
}

#[tokio::test(flavor = "multi_thread")]
async fn group_questions_go_to_the_model_with_the_rooms_context_while_typing() {
    let (double, base) = model_double().await;
    let env = start(Some(base), "").await;
    let (alice, _) = env.greeted_user("alice").await;
    let (bob, _) = env.greeted_user("bob").await;
    let bob_id = env.whoami(&bob).await;
    let bot = bob_id.replace("@bob:", "@intake:");
    let room = env
        .room_with_bot(
            &alice,
            json!({"preset": "private_chat", "invite": [bot, bob_id]}),
        )
        .await;
    env.join(&bob, &room).await;
    env.send(&alice, &room, text("The shelter moved to 12 Oak Street."))
        .await;
    let (_, sync) = env.api("GET", &bob, "/sync", json!({})).await;
    let mut since = sync["next_batch"].as_str().unwrap().to_owned();
    let requests_before = double.requests.lock().unwrap().len();
    env.send(&bob, &room, text("@intake where is the shelter now?"))
        .await;

    // The bot shows as typing while the model works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = env
            .api(
                "GET",
                &bob,
                &format!("/sync?since={since}&timeout=1000"),
                json!({}),
            )
            .await;
        since = s["next_batch"].as_str().unwrap().to_owned();
        let typing = s["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["type"] == "m.typing" && e["content"]["user_ids"] == json!([bot]));
        if typing {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never showed as typing");
    }
    let said = env.bot_said(&bob, &room, 1).await;
    let answer = &said[0]["content"];
    assert_eq!(answer["body"], "It moved to 12 Oak Street.");
    assert_eq!(answer["org.haven.ai"]["backend"], "openai");
    assert_eq!(answer["org.haven.ai"]["prompt_tokens"], 200);

    // One request, for the question only, with the members and the room's recent messages.
    let requests = double.requests.lock().unwrap()[requests_before..].to_vec();
    assert_eq!(requests.len(), 1);
    let msgs = requests[0]["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(
        system.contains("Room members:") && system.contains(&bob_id),
        "{system}"
    );
    assert!(msgs
        .iter()
        .any(|m| m["content"] == "alice: The shelter moved to 12 Oak Street."));
    assert_eq!(
        msgs.last().unwrap()["content"],
        "bob: where is the shelter now?"
    );
    assert_eq!(requests[0]["max_tokens"], 400);

    let m = env.metrics().await;
    for line in [
        format!("intake_room_tokens_total{{room=\"{room}\"}} 220"),
        "intake_tokens_total{kind=\"prompt\"} 200".to_owned(),
        "intake_requests_total{backend=\"openai\",kind=\"group\"} 1".to_owned(),
        "intake_answer_seconds_count{backend=\"openai\"} 1".to_owned(),
    ] {
        assert!(m.contains(&line), "{line} missing from:\n{m}");
    }
}
