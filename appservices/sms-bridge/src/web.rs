//! Webhooks Twilio calls: inbound texts and delivery statuses. Every request must carry a valid
//! `X-Twilio-Signature` over the configured public URL; anything else gets 403 and nothing is
//! stored.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};

use crate::{
    bridge::{Bridge, Inbound},
    signature,
};

pub struct WebState {
    pub bridge: Arc<Bridge>,
    pub auth_token: String,
}

fn empty_twiml() -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response()
}

/// Parses and authenticates a form webhook; `None` means reject with 403.
fn verified(
    state: &WebState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    let sig = headers.get("x-twilio-signature")?.to_str().ok()?;
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let mut url = format!(
        "{}{}",
        state.bridge.config.bridge.public_url.trim_end_matches('/'),
        uri.path()
    );
    if let Some(q) = uri.query() {
        url.push('?');
        url.push_str(q);
    }
    if !signature::verify_form(&state.auth_token, &url, &params, sig) {
        return None;
    }
    // Signed with our token, but for another account (a subaccount sharing it, a
    // misrouted webhook): not ours to act on.
    match param(&params, "AccountSid") {
        Some(account) if account != state.bridge.config.twilio.account_sid => {
            tracing::warn!("refused a webhook for another Twilio account");
            None
        }
        _ => Some(params),
    }
}

/// Bridges one inbound text (any carrier), timing it; `ok` is the carrier's success answer.
/// A failure answers 500 so the carrier retries (the MessageSid makes retries harmless).
async fn bridge_inbound(state: &WebState, inbound: Inbound, ok: Response) -> Response {
    let started = std::time::Instant::now();
    let result = state.bridge.inbound(inbound).await;
    state
        .bridge
        .metrics
        .inbound_latency
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => ok,
        Err(e) => {
            state
                .bridge
                .metrics
                .failures
                .with_label_values(&["inbound"])
                .inc();
            // No number in logs: the error comes from the homeserver or the carrier.
            tracing::error!(error = %e, "inbound text not bridged; the carrier will retry");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Applies a delivery status from any carrier.
async fn apply_status(
    state: &WebState,
    uri: &Uri,
    message_id: &str,
    status: &str,
    error_code: Option<&str>,
) -> Response {
    // The part's reference rides in the callback URL the bridge gave the carrier.
    let query: Vec<(String, String)> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let reference = param(&query, "ref");
    match state
        .bridge
        .status(message_id, status, error_code, reference)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "delivery status not applied");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Authenticates a partner's signed JSON request and parses it; `Err` is the answer to give.
fn verified_partner_json(
    state: &WebState,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, StatusCode> {
    let Some(partner) = state.bridge.partners.get(id) else {
        return Err(StatusCode::NOT_FOUND);
    };
    let sig = headers
        .get(crate::partner::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !crate::partner::verify(partner.secret(), body, sig) {
        state
            .bridge
            .metrics
            .failures
            .with_label_values(&["bad_signature"])
            .inc();
        return Err(StatusCode::FORBIDDEN);
    }
    serde_json::from_slice(body).map_err(|_| StatusCode::BAD_REQUEST)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn sms(
    State(state): State<Arc<WebState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(params) = verified(&state, &uri, &headers, &body) else {
        tracing::warn!("rejected an unsigned or forged SMS webhook");
        state
            .bridge
            .metrics
            .failures
            .with_label_values(&["bad_signature"])
            .inc();
        return StatusCode::FORBIDDEN.into_response();
    };
    let (Some(sid), Some(from), Some(to)) = (
        param(&params, "MessageSid"),
        param(&params, "From"),
        param(&params, "To"),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let inbound = Inbound {
        message_sid: sid.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        body: param(&params, "Body").unwrap_or_default().to_owned(),
        media: (0..param(&params, "NumMedia")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
            .min(10))
            .filter_map(|i| {
                let url = param(&params, &format!("MediaUrl{i}"))?.to_owned();
                let ct = param(&params, &format!("MediaContentType{i}"))
                    .unwrap_or_default()
                    .to_owned();
                Some((url, ct))
            })
            .collect(),
        opt_out_type: param(&params, "OptOutType").map(str::to_owned),
    };
    bridge_inbound(&state, inbound, empty_twiml()).await
}

async fn status(
    State(state): State<Arc<WebState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(params) = verified(&state, &uri, &headers, &body) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let (Some(sid), Some(st)) = (
        param(&params, "MessageSid"),
        param(&params, "MessageStatus"),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    apply_status(&state, &uri, sid, st, param(&params, "ErrorCode")).await
}

/// `POST /partner/<id>/sms`: a partner carrier's inbound text (signed JSON).
async fn partner_sms(
    State(state): State<Arc<WebState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v = match verified_partner_json(&state, &id, &headers, &body) {
        Ok(v) => v,
        Err(status) => return status.into_response(),
    };
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let (Some(message_id), Some(from), Some(to)) =
        (field("message_id"), field("from"), field("to"))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let inbound = Inbound {
        message_sid: format!("{id}:{message_id}"),
        from,
        to,
        body: field("body").unwrap_or_default(),
        media: Vec::new(),
        opt_out_type: None,
    };
    bridge_inbound(&state, inbound, StatusCode::OK.into_response()).await
}

/// `POST /partner/<id>/status`: a partner's delivery status, signed JSON
/// `{"message_id", "status": "delivered"|"undelivered"|"failed", "error_code"}`.
async fn partner_status(
    State(state): State<Arc<WebState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v = match verified_partner_json(&state, &id, &headers, &body) {
        Ok(v) => v,
        Err(status) => return status.into_response(),
    };
    let (Some(message_id), Some(status)) = (v["message_id"].as_str(), v["status"].as_str()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    apply_status(&state, &uri, message_id, status, v["error_code"].as_str()).await
}

/// `GET /reveal/<token>` with the supervisor's Matrix access token as a Bearer token.
async fn reveal(
    State(state): State<Arc<WebState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(access) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match state.bridge.reveal_open(&token, access).await {
        Ok(Some(number)) => ([("cache-control", "no-store")], number).into_response(),
        Ok(None) => StatusCode::FORBIDDEN.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reveal failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /mms/<token>`: a responder's picture, for the carrier to fetch (unguessable, expiring).
async fn mms(
    State(state): State<Arc<WebState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    match state.bridge.published_media(&token).await {
        Ok(Some((bytes, ct))) => (
            [
                ("content-type", ct),
                ("cache-control", "no-store".to_owned()),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "published media unavailable");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<WebState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.bridge.metrics.render(),
    )
        .into_response()
}

pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/twilio/sms", post(sms))
        .route("/twilio/status", post(status))
        .route("/partner/{id}/sms", post(partner_sms))
        .route("/partner/{id}/status", post(partner_status))
        .route("/reveal/{token}", axum::routing::get(reveal))
        .route("/mms/{token}", axum::routing::get(mms))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state)
}
