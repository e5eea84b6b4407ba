//! `sms-bridge --config PATH`: runs the SMS bridge. Secrets come from the environment:
//! `SMS_BRIDGE_TWILIO_AUTH_TOKEN` (or the API key secret), `SMS_BRIDGE_HASH_KEY` (base64, 32+
//! bytes, names puppets), `SMS_BRIDGE_NUMBER_KEYS` (`id=base64key,...`, AES-256) and
//! `SMS_BRIDGE_NUMBER_KEY_ID` (the key that encrypts new numbers).

use std::{path::PathBuf, sync::Arc};

use appservice_runtime::{
    config::load_registration, server, AsClient, BoxError, Handler, Store, Transaction,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use sms_bridge::{
    bridge::Bridge,
    config::Config,
    privacy,
    provider::{PartnerProvider, Provider, TwilioProvider},
    twilio::TwilioClient,
    web,
};

struct Events(Arc<Bridge>);

impl Handler for Events {
    async fn on_transaction(&self, txn: Transaction) -> Result<(), BoxError> {
        for raw in &txn.events {
            let ev: serde_json::Value = serde_json::from_str(raw.json().get())?;
            self.0.matrix_event(&ev).await?;
        }
        Ok(())
    }
}

fn env(name: &str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

appservice_runtime::appservice_main!(
    "sms-bridge",
    "Bridges SMS (Twilio and partner carriers) to Matrix rooms, as a Matrix appservice.",
    "Secrets come from the environment: SMS_BRIDGE_TWILIO_AUTH_TOKEN, SMS_BRIDGE_HASH_KEY, SMS_BRIDGE_NUMBER_KEYS, SMS_BRIDGE_NUMBER_KEY_ID. Settings: docs/sms-bridge.md.",
    run
);

async fn run(path: PathBuf) -> Result<(), BoxError> {
    let config = Config::load(&path)?;
    let reg = load_registration(&config.bridge.registration)?;
    let namer = privacy::PuppetNamer::new(&STANDARD.decode(env("SMS_BRIDGE_HASH_KEY")?)?)?;
    let vault = privacy::NumberVault::from_env_value(
        &env("SMS_BRIDGE_NUMBER_KEYS")?,
        &env("SMS_BRIDGE_NUMBER_KEY_ID")?,
    )?;
    let auth_token = env("SMS_BRIDGE_TWILIO_AUTH_TOKEN")?;
    let twilio = TwilioClient::new(&config.twilio, auth_token.clone());
    std::fs::create_dir_all(&config.bridge.state_dir)?;
    let store = Store::open(&config.bridge.state_dir.join("store"))?;
    let client = AsClient::new(&config.bridge.homeserver_url, &reg.as_token);
    let bot = ruma::UserId::parse(format!(
        "@{}:{}",
        reg.sender_localpart, config.bridge.server_name
    ))?;
    let listen = config.bridge.listen;
    let public = config.bridge.public_url.trim_end_matches('/').to_owned();
    let mut partners = std::collections::HashMap::new();
    let mut providers: std::collections::HashMap<String, Arc<dyn Provider>> =
        std::collections::HashMap::new();
    providers.insert(
        "twilio".into(),
        Arc::new(TwilioProvider {
            client: twilio.clone(),
            status_callback: format!("{public}/twilio/status"),
        }),
    );
    for p in &config.partners {
        let secret = env(&p.secret_env())?;
        let client =
            sms_bridge::partner::PartnerClient::new(&p.id, &p.send_url, secret.into_bytes());
        let status_callback = format!("{public}/partner/{}/status", p.id);
        providers.insert(
            p.id.clone(),
            Arc::new(PartnerProvider {
                client: client.clone(),
                status_callback,
            }),
        );
        partners.insert(p.id.clone(), client);
    }
    let bridge = Bridge::new(
        config,
        client,
        store.clone(),
        namer,
        vault,
        providers,
        bot,
        partners,
        Some(twilio),
    );
    let web_state = Arc::new(web::WebState {
        bridge: bridge.clone(),
        auth_token,
    });
    // Once listening, ping the homeserver so it retries anything pending right away.
    bridge.client.ping_when_ready(&reg.id);
    let worker = bridge.clone();
    tokio::spawn(async move {
        if let Err(e) = worker.recover_outbox().await {
            tracing::error!(error = %e, "could not check replies interrupted by the last stop");
        }
        worker.run_outbox().await;
    });
    let app =
        server::router(reg.hs_token.clone(), store, Events(bridge)).merge(web::router(web_state));
    server::serve(listen, app).await?;
    Ok(())
}
