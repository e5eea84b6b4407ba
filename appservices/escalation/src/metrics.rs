//! Prometheus metrics of the handler, served at `/metrics`. Labels are programs, states and
//! kinds — never people or rooms.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
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
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let first_response = Histogram::with_opts(
            HistogramOpts::new(
                "escalation_first_response_seconds",
                "From assignment to the responder's first message",
            )
            .buckets(vec![5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(first_response.clone()))
            .expect("unique metric");
        Self {
            conversations: gauge(
                "escalation_conversations",
                "Conversations by state",
                &["state"],
            ),
            queue_depth: gauge(
                "escalation_queue_depth",
                "Waiting conversations",
                &["program"],
            ),
            queue_wait: gauge(
                "escalation_queue_wait_seconds",
                "Longest current wait",
                &["program"],
            ),
            escalations: counter("escalation_escalations_total", "Escalations", &["kind"]),
            alerts: counter("escalation_alerts_total", "Supervisor alerts", &["kind"]),
            webhooks: counter(
                "escalation_webhooks_total",
                "Webhook deliveries",
                &["destination", "outcome"],
            ),
            first_response,
            registry,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
