//! End to end: a newly registered user is greeted by the intake bot in the direct room the
//! homeserver opens, answers, and ends with a correct profile state event.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

const AS_TOKEN: &str = "intake_as_token_for_tests_0123";
const HS_TOKEN: &str = "intake_hs_token_for_tests_0123";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn haven_binary() -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("haven");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        assert!(Command::new(cargo)
            .args(["build", "-p", "haven", "--bin", "haven"])
            .status()
            .unwrap()
            .success());
    }
    bin
}

struct Env {
    hs: String,
    http: reqwest::Client,
    _procs: Vec<Proc>,
    _dir: tempfile::TempDir,
}

/// Haven with the intake bot as greeting bot, and the intake bot (on a model when given).
async fn start(model_base: Option<String>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (hs_port, bot_port) = (free_port(), free_port());
    let server = format!("localhost:{hs_port}");
    let reg = dir.path().join("intake.yaml");
    std::fs::write(&reg, format!("id: intake-bot\nurl: http://127.0.0.1:{bot_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: intake\nrate_limited: false\nnamespaces:\n  users: []\n")).unwrap();
    let hs_cfg = dir.path().join("haven.toml");
    std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{hs_port}\"\n[database]\npath = \"{}\"\n[registration]\nmode = \"open\"\ngreeting_bots = [\"@intake:{server}\"]\n[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n[appservices]\nregistrations = [\"{}\"]\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n", dir.path().join("hs").display(), reg.display())).unwrap();
    let hs_proc = Proc(
        Command::new(haven_binary())
            .arg("--config")
            .arg(&hs_cfg)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bot_cfg = dir.path().join("intake.toml");
    std::fs::write(&bot_cfg, format!("homeserver_url = \"http://127.0.0.1:{hs_port}\"\nserver_name = \"{server}\"\nregistration = \"{}\"\nlisten = \"127.0.0.1:{bot_port}\"\nstate_dir = \"{}\"\n", reg.display(), dir.path().join("bot").display())).unwrap();
    let http = reqwest::Client::new();
    let hs = format!("http://127.0.0.1:{hs_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{hs}/_matrix/client/versions"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake-bot"));
    cmd.arg(&bot_cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(base) = &model_base {
        cmd.env("INTAKE_MODEL_BASE_URL", base)
            .env("INTAKE_MODEL", "test-model")
            .env("INTAKE_MODEL_TIMEOUT_MS", "2000");
    }
    let bot = Proc(cmd.spawn().unwrap());
    while http
        .get(format!("http://127.0.0.1:{bot_port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Env {
        hs,
        http,
        _procs: vec![bot, hs_proc],
        _dir: dir,
    }
}

impl Env {
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
    let env = start(None).await;
    let (hs, http) = (env.hs.clone(), env.http.clone());

    let (token, room) = env.greeted_user("volunteer").await;
    let bot_says = |n: usize| env.bot_said(&token, &room, n);
    let get = |path: String| {
        http.get(format!("{hs}{path}"))
            .bearer_auth(token.clone())
            .send()
    };
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
    let profile: Value = get(format!(
        "/_matrix/client/v3/rooms/{room}/state/org.haven.intake.profile/"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
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
    let profile: Value = get(format!(
        "/_matrix/client/v3/rooms/{room}/state/org.haven.intake.profile/"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(profile["availability"]["days"], json!(["sun"]));
}

/// The OpenAI-compatible double: records requests; answers 500 while `fail` is set.
#[derive(Clone, Default)]
struct ModelDouble {
    requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
        let last = body["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned();
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
                json!(["en"]),
                true,
            )
        };
        let content = json!({"reply": reply, "profile": {"skills": skills, "languages": langs,
            "availability": {"days": [], "times": []}, "location": null, "willing_to_travel": null,
            "causes": [], "searchable_text": "A lawyer.", "complete": complete}});
        Json(json!({"model": "test-model-2026", "usage": {"prompt_tokens": 120, "completion_tokens": 30},
            "choices": [{"message": {"role": "assistant", "content": content.to_string()}}]})).into_response()
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(d.clone());
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (d, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_backend_runs_the_interview_and_failures_get_an_apology() {
    let (double, base) = model_double().await;
    let env = start(Some(base)).await;
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

    // The model fails: a short apology, and the conversation goes on afterwards.
    double.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    send("m2", "English").await.unwrap();
    let said = bot_messages(3).await;
    assert_eq!(said[2]["content"]["msgtype"], "m.notice");
    assert!(said[2]["content"]["body"]
        .as_str()
        .unwrap()
        .starts_with("Sorry"));
    double
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    send("m3", "English").await.unwrap();
    let said = bot_messages(4).await;
    assert_eq!(said[3]["content"]["body"], "Thank you, that's all I need.");
    let profile: Value = http
        .get(format!(
            "{hs}/_matrix/client/v3/rooms/{room}/state/org.haven.intake.profile/"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            profile["skills"].clone(),
            profile["languages"].clone(),
            profile["complete"].clone()
        ),
        (json!(["legal"]), json!(["en"]), json!(true))
    );
}
