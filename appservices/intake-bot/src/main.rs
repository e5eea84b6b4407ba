//! `intake-bot CONFIG.toml`: runs the intake bot (offline interviewer) as an appservice.
//! The config is the runtime's (homeserver_url, server_name, registration, listen, state_dir);
//! `INTAKE_MAX_EXCHANGES` sets how many answers end an interview (default 5). With
//! `INTAKE_MODEL_BASE_URL` set, an OpenAI-compatible model runs the interview instead of the
//! offline interviewer (`INTAKE_MODEL`, `INTAKE_MODEL_API_KEY`, `INTAKE_MODEL_TIMEOUT_MS`,
//! `INTAKE_MODEL_MAX_TOKENS`).

use std::path::PathBuf;

use appservice_runtime::{server, AsClient, BoxError, Config, Handler, Store, Transaction};
use intake_bot::bot::Bot;

struct Events(Bot);

impl Handler for Events {
    async fn on_transaction(&self, txn: Transaction) -> Result<(), BoxError> {
        for raw in &txn.events {
            let ev: serde_json::Value = serde_json::from_str(raw.json().get())?;
            self.0.event(&ev).await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    appservice_runtime::init_logging();
    let path = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: intake-bot CONFIG.toml")?,
    );
    let config = Config::load(&path, "INTAKE_CONFIG")?;
    let s = &config.settings;
    let reg = &config.registration;
    std::fs::create_dir_all(&s.state_dir)?;
    let store = Store::open(&s.state_dir.join("store"))?;
    let client = AsClient::new(&s.homeserver_url, &reg.as_token);
    let bot_id = ruma::UserId::parse(format!("@{}:{}", reg.sender_localpart, s.server_name))?;
    let max_exchanges = std::env::var("INTAKE_MAX_EXCHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let model = match std::env::var("INTAKE_MODEL_BASE_URL") {
        Ok(base_url) if !base_url.is_empty() => Some(intake_bot::model::OpenAiClient::new(
            intake_bot::model::ModelConfig {
                base_url,
                model: std::env::var("INTAKE_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()),
                api_key: std::env::var("INTAKE_MODEL_API_KEY").ok(),
                timeout: std::time::Duration::from_millis(
                    std::env::var("INTAKE_MODEL_TIMEOUT_MS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(20_000),
                ),
                max_tokens: std::env::var("INTAKE_MODEL_MAX_TOKENS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(400),
                history_chars: 12_000,
            },
        )),
        _ => None,
    };
    let bot = Bot {
        client: client.clone(),
        store: store.clone(),
        bot: bot_id,
        max_exchanges,
        model,
    };
    let app = server::router(reg.hs_token.clone(), store, Events(bot));
    // Once listening, ping the homeserver so it retries anything pending right away.
    client.ping_when_ready(&reg.id);
    server::serve(s.listen, app).await?;
    Ok(())
}
