//! Every request gets an ID (the client's `X-Request-Id` when it sent a sane one), a tracing
//! span carrying it with the method and the endpoint's route (never the URI: query strings may
//! hold access tokens), and its status and latency counted in the metrics.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

/// The route that answered, passed from inside the router to [`observe`].
#[derive(Clone)]
struct Endpoint(String);

/// Inner layer (per route): records which route matched.
pub async fn tag_endpoint(path: MatchedPath, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    // `{room_id}` -> `:room_id`: braces inside label values trip up some Prometheus tooling.
    let endpoint = path.as_str().replace('{', ":").replace('}', "");
    resp.extensions_mut().insert(Endpoint(endpoint));
    resp
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_owned())
}

/// Outer layer: request ID, span, metrics.
pub async fn observe(req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %method,
        endpoint = tracing::field::Empty
    );
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let took = start.elapsed();
    let endpoint = resp
        .extensions()
        .get::<Endpoint>()
        .map_or_else(|| "unmatched".to_owned(), |e| e.0.clone());
    span.record("endpoint", endpoint.as_str());
    let status = resp.status().as_u16();
    crate::metrics::METRICS.request(&endpoint, &method, status, took);
    span.in_scope(|| {
        tracing::debug!(status, ms = took.as_secs_f64() * 1000.0, "answered");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
