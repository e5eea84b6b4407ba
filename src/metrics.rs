//! Prometheus metrics: counters and histograms updated where things happen (requests, events,
//! flushes, sync waits), and gauges read from the database when `/metrics` is scraped
//! (federation queues, appservice lag, database size).

use std::{sync::LazyLock, time::Duration};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::Haven;

/// The server's metrics, registered once per process.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub sync_waiters: IntGauge,
    pub events_persisted: IntCounter,
    pub flush_seconds: Histogram,
    federation_queue: IntGaugeVec,
    appservice_lag: IntGaugeVec,
    database_bytes: IntGauge,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn must<T>(r: prometheus::Result<T>) -> T {
    // Names and labels are constants: a failure here is a programming error caught by tests.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new_custom(Some("haven".into()), None)
            .unwrap_or_else(|e| panic!("metric registry: {e}"));
        let requests = must(IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by endpoint, method and status",
            ),
            &["endpoint", "method", "status"],
        ));
        let request_seconds = must(HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ],
            ),
            &["endpoint", "method"],
        ));
        let sync_waiters = must(IntGauge::new(
            "sync_waiters",
            "Clients waiting in a long-poll /sync",
        ));
        let events_persisted = must(IntCounter::new(
            "events_persisted_total",
            "Events added to room timelines (local and received)",
        ));
        let flush_seconds = must(Histogram::with_opts(
            HistogramOpts::new("database_flush_duration_seconds", "Database flush latency")
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
        ));
        let federation_queue = must(IntGaugeVec::new(
            Opts::new(
                "federation_queue_depth",
                "PDUs and EDUs waiting to be sent, by destination server",
            ),
            &["destination"],
        ));
        let appservice_lag = must(IntGaugeVec::new(
            Opts::new(
                "appservice_lag_events",
                "Stream positions not yet delivered to each appservice",
            ),
            &["appservice"],
        ));
        let database_bytes = must(IntGauge::new(
            "database_size_bytes",
            "Size of the database on disk",
        ));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(sync_waiters.clone()),
            Box::new(events_persisted.clone()),
            Box::new(flush_seconds.clone()),
            Box::new(federation_queue.clone()),
            Box::new(appservice_lag.clone()),
            Box::new(database_bytes.clone()),
            Box::new(crate::cache::REQUESTS.clone()),
            Box::new(crate::cache::ENTRIES.clone()),
        ] {
            must(registry.register(c));
        }
        Self {
            registry,
            requests,
            request_seconds,
            sync_waiters,
            events_persisted,
            flush_seconds,
            federation_queue,
            appservice_lag,
            database_bytes,
        }
    }

    /// Records one answered request.
    pub fn request(&self, endpoint: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .with_label_values(&[endpoint, method, &status.to_string()])
            .inc();
        self.request_seconds
            .with_label_values(&[endpoint, method])
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition, with the gauges read from the database now.
    pub fn render(&self, h: &Haven) -> String {
        self.federation_queue.reset();
        for (dest, depth) in h.rooms.outbox.depths().unwrap_or_default() {
            self.federation_queue
                .with_label_values(&[dest.as_str()])
                .set(depth as i64);
        }
        self.appservice_lag.reset();
        for (id, lag) in crate::appservice::sender::lags(h).unwrap_or_default() {
            self.appservice_lag
                .with_label_values(&[&id])
                .set(lag as i64);
        }
        self.database_bytes
            .set(h.db.size_on_disk().unwrap_or(0) as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics not encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Counts a long-poll `/sync` while it waits.
pub struct SyncWaiter;

impl SyncWaiter {
    pub fn start() -> Self {
        METRICS.sync_waiters.inc();
        SyncWaiter
    }
}

impl Drop for SyncWaiter {
    fn drop(&mut self) {
        METRICS.sync_waiters.dec();
    }
}
