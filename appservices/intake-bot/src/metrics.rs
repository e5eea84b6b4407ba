//! Prometheus metrics of the bot, served at `/metrics`: what the model costs and how it
//! behaves. Room IDs label the per-room token total; no user IDs or message text appear.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Answers produced, by backend and kind (`intake`, `group`, `summary`).
    pub requests: IntCounterVec,
    /// Tokens, by kind (`prompt`, `completion`).
    pub tokens: IntCounterVec,
    /// Time to produce an answer, by backend.
    pub latency: HistogramVec,
    /// Failed model calls and refused questions, by kind.
    pub errors: IntCounterVec,
    pub cache_hits: IntCounter,
    /// Tokens spent per room.
    pub room_tokens: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let latency = HistogramVec::new(
            HistogramOpts::new("intake_answer_seconds", "Time to produce an answer").buckets(vec![
                0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["backend"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        let cache_hits = IntCounter::new(
            "intake_cache_hits_total",
            "Group-room answers served from the cache",
        )
        .expect("valid metric");
        registry
            .register(Box::new(cache_hits.clone()))
            .expect("unique metric");
        Self {
            requests: vec(
                "intake_requests_total",
                "Answers produced",
                &["backend", "kind"],
            ),
            tokens: vec("intake_tokens_total", "Model tokens used", &["kind"]),
            errors: vec(
                "intake_errors_total",
                "Model failures and refused questions",
                &["kind"],
            ),
            room_tokens: vec(
                "intake_room_tokens_total",
                "Model tokens used per room",
                &["room"],
            ),
            latency,
            cache_hits,
            registry,
        }
    }

    /// Counts one produced answer and what it cost.
    pub fn answered(
        &self,
        backend: &str,
        kind: &str,
        room: &str,
        p: &crate::bot::Provenance,
        secs: f64,
    ) {
        self.requests.with_label_values(&[backend, kind]).inc();
        self.latency.with_label_values(&[backend]).observe(secs);
        self.tokens
            .with_label_values(&["prompt"])
            .inc_by(p.prompt_tokens);
        self.tokens
            .with_label_values(&["completion"])
            .inc_by(p.completion_tokens);
        let total = p.prompt_tokens + p.completion_tokens;
        if total > 0 {
            self.room_tokens.with_label_values(&[room]).inc_by(total);
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
