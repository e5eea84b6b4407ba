//! Prometheus metrics of the handler, served at `/metrics`. Labels are programs, states and
//! kinds — never people or rooms.

use appservice_runtime::metrics::Registry;
use prometheus::{Histogram, IntCounterVec, IntGaugeVec};

pub struct Metrics {
    pub registry: Registry,
    /// Conversations by state (all programs).
    pub conversations: IntGaugeVec,
    /// Waiting conversations per program.
    pub queue_depth: IntGaugeVec,
    /// The longest current wait per program, in seconds.
    pub queue_wait: IntGaugeVec,
    /// Escalations by kind (medical, police).
    pub escalations: IntCounterVec,
    /// Supervisor alerts by kind (risk, first_response, next_response, escalation).
    pub alerts: IntCounterVec,
    /// Webhook deliveries by destination and outcome.
    pub webhooks: IntCounterVec,
    /// From assignment to the responder's first message.
    pub first_response: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            conversations: r.gauge_vec(
                "escalation_conversations",
                "Conversations by state",
                &["state"],
            ),
            queue_depth: r.gauge_vec(
                "escalation_queue_depth",
                "Waiting conversations",
                &["program"],
            ),
            queue_wait: r.gauge_vec(
                "escalation_queue_wait_seconds",
                "Longest current wait",
                &["program"],
            ),
            escalations: r.counter_vec("escalation_escalations_total", "Escalations", &["kind"]),
            alerts: r.counter_vec("escalation_alerts_total", "Supervisor alerts", &["kind"]),
            webhooks: r.counter_vec(
                "escalation_webhooks_total",
                "Webhook deliveries",
                &["destination", "outcome"],
            ),
            first_response: r.histogram(
                "escalation_first_response_seconds",
                "From assignment to the responder's first message",
                &[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0],
            ),
            registry: r,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
