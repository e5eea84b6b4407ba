//! Operating Haven: health and readiness, request IDs, Prometheus metrics (scraped and parsed
//! as Prometheus would), and logs that never carry access tokens, passwords or message bodies.

mod common;

use common::{Port, Server};

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_request_ids_and_clean_logs() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("haven.log");
    let metrics_port = Port::new();
    let maddr = metrics_port.addr();
    let log_s = log.display().to_string();
    let s = Server::start_on(
        vec![Port::new(), metrics_port],
        vec![
            ("HAVEN_METRICS__LISTEN", maddr.as_str()),
            ("TEST_SERVER_STDERR", log_s.as_str()),
            ("HAVEN_LOGGING__FORMAT", "json"),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), body);
    }

    // A user's ordinary traffic, with a secret body and the token also in a query string.
    let alice = s.user("alice").await;
    let room = alice.create_room(|_| {}).await;
    alice
        .send_text(&room, "my very private words")
        .await
        .unwrap();
    let token = alice.token.clone().unwrap();
    let r = http
        .get(format!(
            "{}/_matrix/client/v3/account/whoami?access_token={token}",
            s.base
        ))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-me-42", "echoed");
    let r = http
        .get(format!("{}/_matrix/client/v3/nothing/here", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 16, "{generated}");

    // Scraped and parsed as Prometheus does.
    let text = http
        .get(format!("http://{maddr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                _ => 0.0,
            })
            .sum()
    };
    assert!(
        value(
            "haven_http_requests_total",
            &[
                (
                    "endpoint",
                    "/_matrix/client/v3/rooms/:room_id/send/:event_type/:txn_id"
                ),
                ("method", "PUT"),
                ("status", "200")
            ]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value(
            "haven_http_requests_total",
            &[("endpoint", "unmatched"), ("status", "404")]
        ) >= 1.0,
        "{text}"
    );
    assert!(value("haven_events_persisted_total", &[]) >= 7.0, "{text}");
    assert!(value("haven_database_size_bytes", &[]) > 0.0, "{text}");
    assert!(
        value("haven_database_flush_duration_seconds_count", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        value(
            "haven_http_request_duration_seconds_count",
            &[("method", "PUT")]
        ) >= 1.0,
        "{text}"
    );
    assert!(text.contains("haven_sync_waiters"), "{text}");

    // The log has the request IDs, and none of the secrets.
    drop(s);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("trace-me-42"), "request IDs are logged");
    for secret in [token.as_str(), "my very private words", "password\""] {
        assert!(!logged.contains(secret), "{secret} in the log");
    }
    assert!(
        logged
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON log lines"
    );
}
