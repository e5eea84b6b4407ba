//! Prometheus metrics of the bot, served at `/metrics`: what the model costs and how it
//! behaves. Room IDs label the per-room token total; no user IDs or message text appear.

use appservice_runtime::metrics::Registry;
use prometheus::{HistogramVec, IntCounter, IntCounterVec};

pub struct Metrics {
    pub registry: Registry,
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
        let r = Registry::new();
        Self {
            requests: r.counter_vec(
                "intake_requests_total",
                "Answers produced",
                &["backend", "kind"],
            ),
            tokens: r.counter_vec("intake_tokens_total", "Model tokens used", &["kind"]),
            errors: r.counter_vec(
                "intake_errors_total",
                "Model failures and refused questions",
                &["kind"],
            ),
            room_tokens: r.counter_vec(
                "intake_room_tokens_total",
                "Model tokens used per room",
                &["room"],
            ),
            latency: r.histogram_vec(
                "intake_answer_seconds",
                "Time to produce an answer",
                &[0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                &["backend"],
            ),
            cache_hits: r.counter(
                "intake_cache_hits_total",
                "Group-room answers served from the cache",
            ),
            registry: r,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
