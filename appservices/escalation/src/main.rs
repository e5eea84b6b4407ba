//! `escalation --config PATH`: runs the escalation handler. The file holds the appservice
//! runtime's settings and the `[escalation]` table (programs, affiliates, risk lexicon,
//! webhooks; see docs/escalation.md). Secrets come from the environment.

use std::{path::PathBuf, sync::Arc, time::Duration};

use appservice_runtime::{server, AsClient, BoxError, Config, Store, Transaction};
use escalation::{
    config::EscConfig, handler::Handler, metrics::Metrics, now_ms, rooms, webhooks::Webhooks,
};

struct Events(Arc<Handler>);

impl appservice_runtime::Handler for Events {
    async fn on_transaction(&self, txn: Transaction) -> Result<(), BoxError> {
        for raw in &txn.events {
            let ev: serde_json::Value = serde_json::from_str(raw.json().get())?;
            self.0.event(&ev).await?;
        }
        Ok(())
    }
}

/// Fires due timers, about every second, for ever.
async fn timer_loop(h: Arc<Handler>) {
    loop {
        match h.timers.due(now_ms()) {
            Ok((due, _)) => {
                for (key, timer) in due {
                    match h.fire(&timer).await {
                        Ok(()) => {
                            if let Err(e) = h.timers.done(&key) {
                                tracing::error!(error = %e, "timer not cleared");
                            }
                            let _ = h.store.flush().await;
                        }
                        Err(e) => tracing::warn!(error = %e, ?timer, "timer failed; will retry"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "timers unreadable"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Keeps wait times on the boards current, and runs retention on its schedule.
async fn housekeeping(h: Arc<Handler>) {
    let mut last_retention = now_ms();
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        if let Err(e) = h.refresh_boards().await {
            tracing::warn!(error = %e, "boards not refreshed");
        }
        let every = h.config.retention_interval_h * 3_600_000;
        if every > 0 && now_ms() - last_retention >= every {
            last_retention = now_ms();
            match h.retention(h.config.retention_purge).await {
                Ok(report) => tracing::info!(%report, "retention sweep"),
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
        }
    }
}

appservice_runtime::appservice_main!(
    "escalation",
    "Runs crisis and volunteer conversations: queues, claims, escalations, retention, as a Matrix appservice.",
    "Secrets come from the environment (ESCALATION_*). Settings: docs/escalation.md.",
    run
);

async fn run(path: PathBuf) -> Result<(), BoxError> {
    let (config, esc) =
        Config::load_with::<EscConfig>(&path, "ESCALATION_CONFIG", Some("escalation"))?;
    esc.validate()?;
    let s = &config.settings;
    let reg = &config.registration;
    std::fs::create_dir_all(&s.state_dir)?;
    let store = Store::open(&s.state_dir.join("store"))?;
    let client = AsClient::new(&s.homeserver_url, &reg.as_token);
    let bot = ruma::UserId::parse(format!("@{}:{}", reg.sender_localpart, s.server_name))?;
    let metrics = Arc::new(Metrics::new());
    let webhooks = Webhooks::new(store.clone(), &esc)?;
    let model = esc.model.as_ref().map(|m| {
        intake_bot::model::OpenAiClient::new(intake_bot::model::ModelConfig {
            base_url: m.base_url.clone(),
            model: m.model.clone(),
            api_key: std::env::var("ESCALATION_MODEL_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_millis(m.timeout_ms),
            max_tokens: m.max_tokens,
            history_chars: 12_000,
        })
    });
    // The programs' rooms need the homeserver: wait for it.
    let dir = loop {
        match rooms::setup(&client, &esc.programs).await {
            Ok(d) => break d,
            Err(e) => {
                tracing::warn!(error = %e, "programs' rooms not ready; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let (risk_tx, risk_rx) = tokio::sync::mpsc::unbounded_channel();
    let risk_model = esc.risk_model.then_some(risk_tx);
    let handler = Arc::new(Handler::new(
        client.clone(),
        store.clone(),
        bot,
        esc,
        model,
        metrics.clone(),
        webhooks.clone(),
        dir,
        risk_model,
    )?);
    tokio::spawn(escalation::handler::risk_worker(handler.clone(), risk_rx));
    handler.refresh_boards().await?;
    tokio::spawn(webhooks.run(client.clone(), metrics.clone()));
    tokio::spawn(timer_loop(handler.clone()));
    tokio::spawn(housekeeping(handler.clone()));
    let app = server::router(reg.hs_token.clone(), store, Events(handler))
        .merge(appservice_runtime::metrics::route(metrics.registry.clone()));
    client.ping_when_ready(&reg.id);
    server::serve(s.listen, app).await?;
    Ok(())
}
