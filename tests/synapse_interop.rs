//! Haven and Synapse (from PyPI, `tests/synapse/requirements.txt`, installed on first use into
//! `tests/synapse/.venv` by `haven_testkit::outside`) federating on loopback: a user of each joins the other's room and
//! they exchange messages both ways.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Port, Server};
use serde_json::{json, Value};

/// A Synapse process with its own TLS listener, killed when dropped.
struct Synapse {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    port: u16,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Synapse {
    /// Starts Synapse on a free port. Synapse cannot be handed a bound socket, so the port is
    /// held until just before Synapse starts; should another process take it meanwhile, Synapse
    /// stops at once and is started again on another port.
    async fn start() -> Self {
        for _ in 0..3 {
            if let Some(s) = Self::try_start(Port::new()).await {
                return s;
            }
        }
        panic!("synapse could not get a port three times");
    }

    /// `None` when the port was taken before Synapse could bind it.
    async fn try_start(held: Port) -> Option<Self> {
        let port = held.port();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(d.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
        let name = format!("127.0.0.1:{port}");
        let template = include_str!("synapse/homeserver.yaml.in");
        let config = template
            .replace("@NAME@", &name)
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", &d.display().to_string());
        let cfg = d.join("homeserver.yaml");
        std::fs::write(&cfg, config).unwrap();
        let py = haven_testkit::outside::synapse_python();
        let gen = Command::new(&py)
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(&cfg)
            .current_dir(d)
            .output()
            .expect("python runs");
        assert!(
            gen.status.success(),
            "synapse --generate-keys: {}",
            String::from_utf8_lossy(&gen.stderr)
        );
        let log = std::fs::File::create(d.join("synapse.log")).unwrap();
        drop(held);
        let mut child = Command::new(&py)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&cfg)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start synapse");
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let base = format!("https://127.0.0.1:{port}");
        let deadline = Instant::now() + haven_testkit::START_DEADLINE;
        loop {
            if let Ok(r) = http
                .get(format!("{base}/_matrix/client/versions"))
                .send()
                .await
            {
                if r.status().is_success() {
                    break;
                }
            }
            let log = || std::fs::read_to_string(d.join("synapse.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                let log = log();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("synapse exited ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("synapse did not start:\n{}", log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(Synapse {
            child,
            _dir: dir,
            base,
            http,
            port,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("synapse.log")).unwrap_or_default()
    }

    /// Registers a user; answers (access token, user ID).
    async fn register(&self, name: &str) -> (String, String) {
        let v: Value = self
            .http
            .post(format!("{}/_matrix/client/v3/register", self.base))
            .json(&json!({ "username": name, "password": "interop-pass-1", "auth": { "type": "m.login.dummy" } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            v["access_token"]
                .as_str()
                .expect("synapse registration")
                .to_owned(),
            v["user_id"].as_str().unwrap().to_owned(),
        )
    }

    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn bodies(&self, token: &str, room: &str) -> Vec<String> {
        let (_, v) = self
            .call(
                token,
                "GET",
                &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100"),
                None,
            )
            .await;
        let mut out: Vec<String> = v["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "m.room.message")
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect();
        out.reverse();
        out
    }
}

async fn until<T, F, Fut>(what: &str, secs: u64, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let r = common::poll(secs, f).await;
    if r.is_none() {
        eprintln!("timed out waiting for {what}");
    }
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn haven_and_synapse_share_rooms_both_ways() {
    let syn = Synapse::start().await;
    let haven = Server::start_federating(Port::new(), &[syn.port]).await;
    let alice = haven.user("alice").await;
    let (sam_token, sam) = syn.register("sam").await;
    let fail = |what: &str| -> ! { panic!("{what}\n--- synapse log ---\n{}", syn.log()) };

    // A Haven room: Alice invites Sam, Sam joins through Synapse, they talk.
    let room = alice
        .create_room(|r| r.name = Some("Haven side".into()))
        .await;
    alice.send_text(&room, "earlier on haven").await.unwrap();
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&json!({ "user_id": sam }).to_string()),
        )
        .await;
    if st != 200 {
        fail(&format!("invite to synapse: {st} {v}"));
    }
    let (st, v) = syn
        .call(
            &sam_token,
            "POST",
            &format!("/_matrix/client/v3/join/{room}"),
            Some(json!({})),
        )
        .await;
    if st != 200 {
        fail(&format!("synapse joining haven's room: {st} {v}"));
    }
    alice.send_text(&room, "hello from haven").await.unwrap();
    if until("haven's message on synapse", 30, || async {
        syn.bodies(&sam_token, room.as_str())
            .await
            .contains(&"hello from haven".to_owned())
            .then_some(())
    })
    .await
    .is_none()
    {
        fail("haven's message never reached synapse");
    }
    // History from before Synapse joined comes by backfill from Haven.
    if !syn
        .bodies(&sam_token, room.as_str())
        .await
        .contains(&"earlier on haven".to_owned())
    {
        fail("synapse did not backfill the history before its join from haven");
    }
    let (st, v) = syn
        .call(
            &sam_token,
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/t1"),
            Some(json!({ "msgtype": "m.text", "body": "hello from synapse" })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    if until("synapse's message on haven", 30, || async {
        alice
            .message_bodies(&room)
            .await
            .contains(&"hello from synapse".to_owned())
            .then_some(())
    })
    .await
    .is_none()
    {
        fail("synapse's message never reached haven");
    }

    // A Synapse room: Sam invites Alice, she joins through Haven, they talk.
    let (st, v) = syn
        .call(
            &sam_token,
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(json!({ "name": "Synapse side", "invite": [alice.uid()] })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let sroom = v["room_id"].as_str().unwrap().to_owned();
    let sroom_id = ruma::OwnedRoomId::try_from(sroom.as_str()).unwrap();
    let (st, _) = syn
        .call(
            &sam_token,
            "PUT",
            &format!("/_matrix/client/v3/rooms/{sroom}/send/m.room.message/t0"),
            Some(json!({ "msgtype": "m.text", "body": "earlier on synapse" })),
        )
        .await;
    assert_eq!(st, 200);
    if until("synapse's invite at haven", 30, || async {
        alice
            .sync(None, 0)
            .await
            .rooms
            .invite
            .get(&sroom_id)
            .map(|_| ())
    })
    .await
    .is_none()
    {
        fail("synapse's invite never reached haven");
    }
    let (st, v) = alice
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{sroom}"),
            Some("{}"),
        )
        .await;
    if st != 200 {
        fail(&format!("haven joining synapse's room: {st} {v}"));
    }
    let (st, _) = syn
        .call(
            &sam_token,
            "PUT",
            &format!("/_matrix/client/v3/rooms/{sroom}/send/m.room.message/t2"),
            Some(json!({ "msgtype": "m.text", "body": "welcome to synapse" })),
        )
        .await;
    assert_eq!(st, 200);
    if until("synapse's message in its room on haven", 30, || async {
        alice
            .message_bodies(&sroom_id)
            .await
            .contains(&"welcome to synapse".to_owned())
            .then_some(())
    })
    .await
    .is_none()
    {
        fail("synapse's message in its own room never reached haven");
    }
    // History from before Haven joined comes by backfill from Synapse.
    let bodies = alice.message_bodies(&sroom_id).await;
    if bodies.first().map(String::as_str) != Some("earlier on synapse") {
        fail(&format!(
            "haven did not backfill synapse's history: {bodies:?}"
        ));
    }
    alice
        .send_text(&sroom_id, "thanks from haven")
        .await
        .unwrap();
    if until("haven's message in synapse's room", 30, || async {
        syn.bodies(&sam_token, &sroom)
            .await
            .contains(&"thanks from haven".to_owned())
            .then_some(())
    })
    .await
    .is_none()
    {
        fail("haven's message in synapse's room never reached synapse");
    }
}
