//! `intake-bot --config PATH`: runs the intake bot as an appservice. The file holds the
//! runtime's settings (homeserver_url, server_name, registration, listen, state_dir) and an
//! optional `[intake]` table (see `config.rs` and docs/intake-bot.md). Without a
//! `[intake.model]` (or `INTAKE_MODEL_BASE_URL`) the offline interviewer runs.

use std::{path::PathBuf, sync::Arc};

use appservice_runtime::{server, AsClient, BoxError, Config, Handler, Store, Transaction};
use intake_bot::{bot::Bot, config::IntakeConfig};
use ruma::api::client::profile::get_profile;

struct Events(Arc<Bot>);

impl Handler for Events {
    async fn on_transaction(&self, txn: Transaction) -> Result<(), BoxError> {
        for raw in &txn.events {
            let ev: serde_json::Value = serde_json::from_str(raw.json().get())?;
            self.0.event(&ev).await?;
        }
        Ok(())
    }
}

/// The bot's display name (mentions by name count); its localpart when it has none.
async fn display_name(client: &AsClient, bot: &ruma::UserId) -> String {
    match client
        .send(get_profile::v3::Request::new(bot.to_owned()))
        .await
    {
        Ok(p) => p
            .get("displayname")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        Err(_) => None,
    }
    .unwrap_or_else(|| bot.localpart().to_owned())
}

appservice_runtime::appservice_main!(
    "intake-bot",
    "Interviews volunteers into profiles and takes texters' intake, as a Matrix appservice.",
    "Without [intake.model] (or INTAKE_MODEL_BASE_URL) the offline interviewer runs. Settings: docs/intake-bot.md.",
    run
);

async fn run(path: PathBuf) -> Result<(), BoxError> {
    let (config, mut intake) =
        Config::load_with::<IntakeConfig>(&path, "INTAKE_CONFIG", Some("intake"))?;
    intake.apply_env()?;
    let s = &config.settings;
    let reg = &config.registration;
    std::fs::create_dir_all(&s.state_dir)?;
    let store = Store::open(&s.state_dir.join("store"))?;
    let client = AsClient::new(&s.homeserver_url, &reg.as_token);
    let bot_id = ruma::UserId::parse(format!("@{}:{}", reg.sender_localpart, s.server_name))?;
    let name = display_name(&client, &bot_id).await;
    let bot = Arc::new(Bot::new(
        client.clone(),
        store.clone(),
        bot_id,
        name,
        intake,
    ));
    let app = server::router(reg.hs_token.clone(), store, Events(bot.clone())).merge(
        appservice_runtime::metrics::route(bot.metrics.registry.clone()),
    );
    // Once listening, ping the homeserver so it retries anything pending right away.
    client.ping_when_ready(&reg.id);
    server::serve(s.listen, app).await?;
    Ok(())
}
