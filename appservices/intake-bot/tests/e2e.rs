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

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_is_interviewed_into_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let (hs_port, bot_port) = (free_port(), free_port());
    let server = format!("localhost:{hs_port}");
    let reg = dir.path().join("intake.yaml");
    std::fs::write(&reg, format!("id: intake-bot\nurl: http://127.0.0.1:{bot_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: intake\nrate_limited: false\nnamespaces:\n  users: []\n")).unwrap();
    let hs_cfg = dir.path().join("haven.toml");
    std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{hs_port}\"\n[database]\npath = \"{}\"\n[registration]\nmode = \"open\"\ngreeting_bots = [\"@intake:{server}\"]\n[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n[appservices]\nregistrations = [\"{}\"]\n[logging]\nlevel = \"warn\"\nformat = \"plain\"\n", dir.path().join("hs").display(), reg.display())).unwrap();
    let _hs = Proc(
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
    let _bot = Proc(
        Command::new(env!("CARGO_BIN_EXE_intake-bot"))
            .arg(&bot_cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while http
        .get(format!("http://127.0.0.1:{bot_port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let reg: Value = http
        .post(format!("{hs}/_matrix/client/v3/register"))
        .json(
            &json!({"username": "volunteer", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reg["access_token"].as_str().unwrap().to_owned();
    let get = |path: String| {
        http.get(format!("{hs}{path}"))
            .bearer_auth(token.clone())
            .send()
    };
    let sync: Value = get("/_matrix/client/v3/sync".into())
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
    http.post(format!("{hs}/_matrix/client/v3/rooms/{room}/join"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    // Waits until the bot has said `n` things in the room and returns them.
    let bot_says = |n: usize| {
        let (http, hs, token, room) = (http.clone(), hs.clone(), token.clone(), room.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let v: Value = http
                    .get(format!(
                        "{hs}/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100"
                    ))
                    .bearer_auth(&token)
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
