//! Prometheus metrics of the bridge, served at `/metrics`. No labels carry numbers or IDs.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
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
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str| {
            let buckets = vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let failures = IntCounterVec::new(
            Opts::new("sms_bridge_failures_total", "Failures by kind"),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(failures.clone()))
            .expect("unique metric");
        Self {
            inbound: counter("sms_bridge_inbound_total", "Texts received and bridged"),
            outbound: counter("sms_bridge_outbound_total", "Replies sent as SMS"),
            segments: counter(
                "sms_bridge_segments_total",
                "SMS segments billed for replies",
            ),
            opt_outs: counter("sms_bridge_opt_outs_total", "STOP requests"),
            inbound_latency: histogram("sms_bridge_inbound_seconds", "Webhook to Matrix event"),
            outbound_latency: histogram(
                "sms_bridge_outbound_seconds",
                "Provider API call for a reply",
            ),
            failures,
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
