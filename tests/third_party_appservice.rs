//! A third-party appservice framework against Haven: a bot built with matrix-bot-sdk (npm)
//! registers, is invited, joins, receives a message and replies. matrix-bot-sdk 0.5 reads the
//! hs_token from the `access_token` query parameter only, so this server runs with
//! `appservices.legacy_query_auth` (Synapse needs `use_appservice_legacy_authorization` for
//! the same bots). Node packages are installed from tests/npm's lockfile when missing
//! (`haven_testkit::outside`).

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Port, Server};
use serde_json::Value;

const AS_TOKEN: &str = "sdkbot_as_token_0123456789abcdef";
const HS_TOKEN: &str = "sdkbot_hs_token_0123456789abcdef";

#[tokio::test(flavor = "multi_thread")]
async fn matrix_bot_sdk_appservice_joins_and_replies() {
    let npm_dir = haven_testkit::outside::node_packages();
    let dir = tempfile::tempdir().unwrap();
    let hs = Port::new();
    let hs_port = hs.port();
    let as_listener = Port::new();
    let as_port = as_listener.port();
    let reg = dir.path().join("sdkbot.yaml");
    std::fs::write(
        &reg,
        format!("id: sdkbot\nurl: http://127.0.0.1:{as_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: sdkbot\nrate_limited: false\nde.sorunome.msc2409.push_ephemeral: true\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@sdkbot_.*:localhost:{hs_port}'\n"),
    )
    .unwrap();
    let regs = format!("[\"{}\"]", reg.display());
    let server = Server::start_on(
        vec![hs],
        vec![
            ("HAVEN_APPSERVICES__REGISTRATIONS", regs.as_str()),
            ("HAVEN_APPSERVICES__LEGACY_QUERY_AUTH", "true"),
        ],
    )
    .await;

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut bot = haven_testkit::spawn_on(
        Command::new("node")
            .arg(npm_dir.join("bot.js"))
            .args([
                server.base.as_str(),
                &format!("localhost:{hs_port}"),
                "fd:3",
                AS_TOKEN,
                HS_TOKEN,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
        &[&as_listener],
    )
    .expect("node");
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let out = bot.stdout.take().unwrap();
    let _bot = KillOnDrop(bot);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let wait = |key: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) if v.get(key).is_some() => return v,
                Ok(v) if v.get("error").is_some() => panic!("bot failed: {v}"),
                Ok(_) => continue,
                Err(_) => panic!("timed out waiting for the bot to report {key}"),
            }
        }
    };
    let ready = wait("ready");
    assert_eq!(ready["ready"], format!("@sdkbot:localhost:{hs_port}"));

    let alice = server.user("alice").await;
    let bot_id = format!("@sdkbot:localhost:{hs_port}");
    let room = alice
        .create_room(|r| r.invite = vec![bot_id.as_str().try_into().unwrap()])
        .await;
    let joined = wait("joined");
    assert_eq!(joined["joined"], room.as_str());
    alice.send_text(&room, "!ping").await.unwrap();
    wait("replied");
    let bodies = alice.message_bodies(&room).await;
    assert!(
        bodies.contains(&"pong from matrix-bot-sdk".to_owned()),
        "{bodies:?}"
    );
    // Ephemeral events under MSC2409's field name, which this framework reads.
    let last = alice.send_text(&room, "read this").await.unwrap();
    let (st, _) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200);
    let eph = wait("ephemeral");
    assert_eq!(
        (eph["ephemeral"].as_str(), eph["room"].as_str()),
        (Some("m.receipt"), Some(room.as_str()))
    );
}
