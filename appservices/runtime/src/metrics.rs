//! Prometheus metrics for appservices: a registry that hands out registered metrics, its text
//! exposition, and the `/metrics` route serving it.

use std::sync::Arc;

use axum::{extract::State, routing::get, Router};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    TextEncoder,
};

/// Registers every metric it creates; names must be unique (a clash is a programming error).
#[derive(Clone, Default)]
pub struct Registry(prometheus::Registry);

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, m: M) -> M {
        self.0
            .register(Box::new(m.clone()))
            .expect("metric names are unique");
        m
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts).expect("valid metric"))
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("valid metric"))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.0.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

async fn serve(State(r): State<Arc<Registry>>) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "text/plain; version=0.0.4")], r.render())
}

/// `GET /metrics` for `registry`.
pub fn route(registry: Registry) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(Arc::new(registry))
}
