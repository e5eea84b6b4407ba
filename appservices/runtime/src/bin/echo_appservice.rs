//! `echo-appservice --config PATH`: a minimal appservice built on the runtime, used by the
//! integration tests and as an example. Its bot joins rooms it is invited to and answers each
//! text message with "echo: <text>"; every event it receives is appended to
//! `<state_dir>/received.jsonl` (transaction ID, event ID, type, sender, body). Users matching
//! its namespace are created on demand when the homeserver asks about them.

use std::{io::Write, path::PathBuf, sync::Mutex};

use appservice_runtime::{server, AsClient, BoxError, Config, Handler, Store, Transaction};
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{json, Value};

struct Echo {
    client: AsClient,
    bot: OwnedUserId,
    log: Mutex<std::fs::File>,
    namespace_prefix: String,
}

impl Handler for Echo {
    async fn on_transaction(&self, txn: Transaction) -> Result<(), BoxError> {
        for raw in &txn.events {
            let ev: Value = serde_json::from_str(raw.json().get())?;
            let line = json!({
                "txn": txn.txn_id,
                "event_id": ev["event_id"],
                "type": ev["type"],
                "sender": ev["sender"],
                "body": ev["content"]["body"],
            });
            writeln!(self.log.lock().map_err(|_| "log lock")?, "{line}")?;
            let room: OwnedRoomId = serde_json::from_value(ev["room_id"].clone())?;
            let is_invite_for_bot = ev["type"] == "m.room.member"
                && ev["state_key"] == self.bot.as_str()
                && ev["content"]["membership"] == "invite";
            if is_invite_for_bot {
                self.client.join(&room).await?;
            } else if ev["type"] == "m.room.message"
                && ev["sender"] != self.bot.as_str()
                && ev["content"]["msgtype"] == "m.text"
            {
                let body = ev["content"]["body"].as_str().unwrap_or_default();
                self.client
                    .send_text(&room, &format!("echo: {body}"), true)
                    .await?;
            }
        }
        if let Some(ext) = &txn.device_extensions {
            let line = json!({ "txn": txn.txn_id, "device_lists_changed": ext["device_lists"]["changed"], "otk_counts": ext["device_one_time_keys_count"] });
            writeln!(self.log.lock().map_err(|_| "log lock")?, "{line}")?;
        }
        for e in &txn.to_device {
            let line = json!({ "txn": txn.txn_id, "to_device": e["type"], "to_user_id": e["to_user_id"], "to_device_id": e["to_device_id"], "content": e["content"] });
            writeln!(self.log.lock().map_err(|_| "log lock")?, "{line}")?;
        }
        for e in &txn.ephemeral {
            let line =
                json!({ "txn": txn.txn_id, "ephemeral": e["type"], "room_id": e["room_id"] });
            writeln!(self.log.lock().map_err(|_| "log lock")?, "{line}")?;
        }
        Ok(())
    }

    async fn query_user(&self, user: OwnedUserId) -> bool {
        let local = user.localpart();
        local.starts_with(&self.namespace_prefix)
            && self.client.ensure_registered(local).await.is_ok()
    }
}

appservice_runtime::appservice_main!(
    "echo-appservice",
    "A minimal appservice: its bot answers each text with \"echo: <text>\".",
    "Settings: homeserver_url, server_name, registration, listen, state_dir (ECHO_<KEY> overrides).",
    run
);

async fn run(path: PathBuf) -> Result<(), BoxError> {
    let config = Config::load(&path, "ECHO")?;
    let s = &config.settings;
    std::fs::create_dir_all(&s.state_dir)?;
    let store = Store::open(&s.state_dir.join("store"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.state_dir.join("received.jsonl"))?;
    let reg = &config.registration;
    let bot = OwnedUserId::try_from(format!("@{}:{}", reg.sender_localpart, s.server_name))?;
    let handler = Echo {
        client: AsClient::new(&s.homeserver_url, &reg.as_token),
        bot,
        log: Mutex::new(log),
        namespace_prefix: format!("{}_", reg.sender_localpart),
    };
    let client = handler.client.clone();
    let listener = server::serve(
        s.listen,
        server::router(reg.hs_token.clone(), store, handler),
    );
    // Once listening, ping the homeserver so it retries anything pending right away.
    client.ping_when_ready(&reg.id);
    listener.await?;
    Ok(())
}
