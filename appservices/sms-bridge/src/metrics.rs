//! Prometheus metrics of the bridge, served at `/metrics`. No labels carry numbers or IDs.

use appservice_runtime::metrics::Registry;
use prometheus::{Histogram, IntCounter, IntCounterVec};

const LATENCY: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    pub registry: Registry,
    pub inbound: IntCounter,
    pub outbound: IntCounter,
    pub segments: IntCounter,
    pub failures: IntCounterVec,
    pub opt_outs: IntCounter,
    pub inbound_latency: Histogram,
    pub outbound_latency: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            inbound: r.counter("sms_bridge_inbound_total", "Texts received and bridged"),
            outbound: r.counter("sms_bridge_outbound_total", "Replies sent as SMS"),
            segments: r.counter(
                "sms_bridge_segments_total",
                "SMS segments billed for replies",
            ),
            opt_outs: r.counter("sms_bridge_opt_outs_total", "STOP requests"),
            inbound_latency: r.histogram(
                "sms_bridge_inbound_seconds",
                "Webhook to Matrix event",
                &LATENCY,
            ),
            outbound_latency: r.histogram(
                "sms_bridge_outbound_seconds",
                "Provider API call for a reply",
                &LATENCY,
            ),
            failures: r.counter_vec("sms_bridge_failures_total", "Failures by kind", &["kind"]),
            registry: r,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
