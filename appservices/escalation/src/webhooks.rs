//! Signed webhooks out, through a durable outbox: lifecycle events to subscribers and
//! escalations to the emergency-services endpoint. A delivery is stored before anything is
//! sent, retried with backoff until it is answered 2xx (surviving restarts), and given up
//! after `webhook_max_attempts`; an emergency call given up on is reported to the responder
//! (in the conversation room) and the supervisors, with what to do instead.

use std::{sync::Arc, time::Duration};

use appservice_runtime::{signing, AsClient, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::{config::EscConfig, metrics::Metrics, now_ms};

const OUTBOX: &str = "webhook_outbox";
const SEQ: &str = "webhook_seq";
/// The emergency endpoint's destination name in the outbox.
pub const EMERGENCY: &str = "emergency";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    /// A subscriber ID, or [`EMERGENCY`].
    pub destination: String,
    pub event: String,
    pub body: Value,
    pub attempts: u32,
    pub next_ms: u64,
    /// Told when the delivery is given up on.
    pub alert_room: Option<String>,
    /// Also told (the conversation room, where the responder waits for emergency services).
    #[serde(default)]
    pub alert_rooms: Vec<String>,
}

/// What the responder and the supervisors read when the emergency call is given up on: that
/// nobody was notified, and what to do instead (no internal details).
fn gave_up_notice(d: &Delivery) -> String {
    let reference = d.body["reference"].as_str().unwrap_or("this escalation");
    let conversation = d.body["conversation"]
        .as_u64()
        .map_or(String::new(), |n| format!(" (conversation #{n})"));
    let location = d.body["location"]
        .as_str()
        .map_or("no location was given".to_owned(), |l| {
            format!("location given: {l}")
        });
    format!(
        "⚠️ Emergency services were NOT notified for {reference}{conversation}: the automatic emergency call failed {} times and was given up. Call emergency services directly now and tell them what you know ({location}). A supervisor can get the texter's number with !reveal{}.",
        d.attempts,
        d.body["conversation"].as_u64().map_or(String::new(), |n| format!(" {n}")),
    )
}

/// Where deliveries go and with which secret.
#[derive(Clone)]
struct Destination {
    url: String,
    secret: Vec<u8>,
    events: Vec<String>,
}

#[derive(Clone)]
pub struct Webhooks {
    /// Tries before a delivery is given up on (`webhook_max_attempts`).
    max_attempts: u32,
    /// The first wait between tries, doubling (`webhook_first_retry_ms`).
    first_retry_ms: u64,
    store: Store,
    destinations: Arc<std::collections::BTreeMap<String, Destination>>,
    wake: Arc<Notify>,
    seq: Arc<std::sync::Mutex<()>>,
}

fn secret(var: &str) -> Result<Vec<u8>, String> {
    match std::env::var(var) {
        Ok(s) if !s.is_empty() => Ok(s.into_bytes()),
        _ => Err(format!("{var} is not set (the webhook's signing secret)")),
    }
}

impl Webhooks {
    /// Reads every destination's secret from the environment (a missing one stops the start).
    pub fn new(store: Store, config: &EscConfig) -> Result<Self, String> {
        let mut destinations = std::collections::BTreeMap::new();
        if let Some(e) = &config.emergency {
            destinations.insert(
                EMERGENCY.to_owned(),
                Destination {
                    url: e.url.clone(),
                    secret: secret("ESCALATION_EMERGENCY_SECRET")?,
                    events: Vec::new(),
                },
            );
        }
        for s in &config.subscribers {
            destinations.insert(
                s.id.clone(),
                Destination {
                    url: s.url.clone(),
                    secret: secret(&s.secret_env())?,
                    events: s.events.clone(),
                },
            );
        }
        Ok(Self {
            max_attempts: config.webhook_max_attempts.max(1),
            first_retry_ms: config.webhook_first_retry_ms.max(1),
            store,
            destinations: Arc::new(destinations),
            wake: Arc::new(Notify::new()),
            seq: Arc::new(std::sync::Mutex::new(())),
        })
    }

    fn enqueue(
        &self,
        destination: &str,
        event: &str,
        body: Value,
        alert_rooms: Vec<String>,
    ) -> Result<(), appservice_runtime::BoxError> {
        let _one = self.seq.lock().map_err(|_| "outbox lock")?;
        let n: u64 = self.store.get(SEQ, "n")?.unwrap_or(0) + 1;
        self.store.put(SEQ, "n", &n)?;
        let d = Delivery {
            id: format!("evt-{n}"),
            destination: destination.to_owned(),
            event: event.to_owned(),
            body,
            attempts: 0,
            next_ms: 0,
            alert_room: None,
            alert_rooms,
        };
        self.store.put(OUTBOX, &format!("{n:020}"), &d)?;
        Ok(())
    }

    /// Queues a lifecycle event for every subscriber that wants it (flush, then [`Self::kick`]).
    pub fn event(&self, event: &str, data: Value) -> Result<(), appservice_runtime::BoxError> {
        for (id, d) in self.destinations.iter() {
            if id == EMERGENCY || !(d.events.is_empty() || d.events.iter().any(|e| e == event)) {
                continue;
            }
            let body = json!({ "event": event, "at": now_ms(), "data": data });
            self.enqueue(id, event, body, Vec::new())?;
        }
        Ok(())
    }

    /// Queues an escalation for the emergency endpoint; false when none is configured. The
    /// `alert_rooms` (supervisors', the conversation's) are told if it is given up on.
    pub fn emergency(
        &self,
        body: Value,
        alert_rooms: Vec<String>,
    ) -> Result<bool, appservice_runtime::BoxError> {
        if !self.destinations.contains_key(EMERGENCY) {
            return Ok(false);
        }
        self.enqueue(EMERGENCY, "escalation", body, alert_rooms)?;
        Ok(true)
    }

    /// Wakes the sender after the outbox was flushed.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// Sends due deliveries for ever.
    pub async fn run(self, client: AsClient, metrics: Arc<Metrics>) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        loop {
            let mut next_due: Option<u64> = None;
            match self.store.entries::<Delivery>(OUTBOX) {
                Ok(entries) => {
                    for (key, mut d) in entries {
                        let now = now_ms();
                        if d.next_ms > now {
                            next_due = Some(next_due.map_or(d.next_ms, |n| n.min(d.next_ms)));
                            continue;
                        }
                        let outcome = self.send(&http, &d).await;
                        d.attempts += 1;
                        let done = match outcome {
                            Ok(()) => {
                                metrics
                                    .webhooks
                                    .with_label_values(&[d.destination.as_str(), "delivered"])
                                    .inc();
                                true
                            }
                            Err(e) if d.attempts >= self.max_attempts => {
                                tracing::error!(delivery = %d.id, destination = %d.destination, error = %e, "webhook given up");
                                metrics
                                    .webhooks
                                    .with_label_values(&[d.destination.as_str(), "given_up"])
                                    .inc();
                                let rooms = d.alert_room.iter().chain(d.alert_rooms.iter());
                                let text = gave_up_notice(&d);
                                for room in rooms.filter_map(|r| ruma::RoomId::parse(r).ok()) {
                                    if let Err(e) = client.send_text(&room, &text, true).await {
                                        tracing::error!(%room, error = %e, "could not say an emergency call was given up");
                                    }
                                }
                                true
                            }
                            Err(e) => {
                                tracing::warn!(delivery = %d.id, destination = %d.destination, error = %e, attempt = d.attempts, "webhook failed; will retry");
                                metrics
                                    .webhooks
                                    .with_label_values(&[d.destination.as_str(), "retried"])
                                    .inc();
                                let backoff = self.first_retry_ms << d.attempts.min(9);
                                d.next_ms = now_ms() + backoff;
                                next_due = Some(next_due.map_or(d.next_ms, |n| n.min(d.next_ms)));
                                false
                            }
                        };
                        let saved = if done {
                            self.store.remove(OUTBOX, &key)
                        } else {
                            self.store.put(OUTBOX, &key, &d)
                        };
                        if let Err(e) = saved {
                            tracing::error!(error = %e, "webhook outbox not updated");
                        }
                        let _ = self.store.flush().await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "webhook outbox unreadable"),
            }
            let wait = next_due.map_or(Duration::from_secs(60), |due| {
                Duration::from_millis(due.saturating_sub(now_ms()).max(10))
            });
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn send(&self, http: &reqwest::Client, d: &Delivery) -> Result<(), String> {
        let dest = self
            .destinations
            .get(&d.destination)
            .ok_or_else(|| format!("{} is no longer configured", d.destination))?;
        let body = serde_json::to_vec(&d.body).map_err(|e| e.to_string())?;
        let r = http
            .post(&dest.url)
            .header("content-type", "application/json")
            .header(signing::HEADER, signing::sign(&dest.secret, &body))
            .header("x-haven-event", &d.event)
            .header("x-haven-delivery", &d.id)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", r.status()))
        }
    }
}
