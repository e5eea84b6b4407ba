//! Requests the homeserver makes to appservices: transactions, user and alias queries, pings.
//! All carry `Authorization: Bearer <hs_token>`.

use std::time::{Duration, Instant};

use ruma::{
    api::{
        appservice::{
            ping::send_ping,
            query::{query_room_alias, query_user_id},
        },
        OutgoingRequest, OutgoingRequestExt,
    },
    OwnedRoomId, OwnedTransactionId, RoomAliasId, UserId,
};

use super::Appservice;
use crate::Haven;

/// Why an appservice request failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the appservice has no url")]
    NoUrl,
    #[error("the appservice answered {status}")]
    Status { status: u16, body: String },
    #[error("the appservice did not answer in time")]
    Timeout,
    #[error("cannot reach the appservice: {0}")]
    Connection(String),
}

/// Sends a request built by ruma to the appservice and returns the body of a 2xx answer.
pub async fn send<R>(
    h: &Haven,
    asv: &Appservice,
    req: R,
    timeout: Duration,
) -> Result<Vec<u8>, OutboundError>
where
    R: OutgoingRequest,
    for<'a> R::Authentication: ruma::api::auth_scheme::AuthScheme<Input<'a> = &'a str>,
    for<'a> R::PathBuilder: ruma::api::path_builder::PathBuilder<Input<'a> = ()>,
{
    send_http(h, asv, build(asv, req)?, timeout).await
}

/// The HTTP form of a ruma request to the appservice (with the hs_token).
pub fn build<R>(asv: &Appservice, req: R) -> Result<http::Request<Vec<u8>>, OutboundError>
where
    R: OutgoingRequest,
    for<'a> R::Authentication: ruma::api::auth_scheme::AuthScheme<Input<'a> = &'a str>,
    for<'a> R::PathBuilder: ruma::api::path_builder::PathBuilder<Input<'a> = ()>,
{
    let url = asv.r.reg.url.as_deref().ok_or(OutboundError::NoUrl)?;
    req.try_into_http_request::<Vec<u8>>(url, &asv.r.reg.hs_token, ())
        .map_err(|e| OutboundError::Connection(e.to_string()))
}

/// Sends an HTTP request to the appservice and returns the body of a 2xx answer.
pub async fn send_http(
    h: &Haven,
    asv: &Appservice,
    http_req: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<Vec<u8>, OutboundError> {
    let (parts, body) = http_req.into_parts();
    let mut url = parts.uri.to_string();
    if h.config.appservices.legacy_query_auth {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("access_token=");
        let token = percent_encoding::utf8_percent_encode(
            &asv.r.reg.hs_token,
            percent_encoding::NON_ALPHANUMERIC,
        );
        url.push_str(&token.to_string());
    }
    let mut rb = h
        .http
        .request(parts.method, url)
        .timeout(timeout)
        .body(body);
    for (k, v) in parts.headers.iter() {
        rb = rb.header(k, v);
    }
    let resp = rb.send().await.map_err(|e| {
        if e.is_timeout() {
            OutboundError::Timeout
        } else {
            OutboundError::Connection(e.to_string())
        }
    })?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| OutboundError::Connection(e.to_string()))?;
    if !status.is_success() {
        let body = String::from_utf8_lossy(&bytes).chars().take(1000).collect();
        return Err(OutboundError::Status {
            status: status.as_u16(),
            body,
        });
    }
    Ok(bytes.to_vec())
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the appservices claiming `user` whether it exists (they create it if so).
pub async fn query_user(h: &Haven, user: &UserId) -> bool {
    for asv in h.appservices.user_claimants(user) {
        if send(
            h,
            &asv,
            query_user_id::v1::Request::new(user.to_owned()),
            QUERY_TIMEOUT,
        )
        .await
        .is_ok()
        {
            return true;
        }
    }
    false
}

/// Asks the appservices claiming `alias` to create it, then resolves it again.
pub async fn query_alias(
    h: &Haven,
    alias: &RoomAliasId,
) -> crate::error::Result<Option<OwnedRoomId>> {
    for asv in h.appservices.alias_claimants(alias) {
        if send(
            h,
            &asv,
            query_room_alias::v1::Request::new(alias.to_owned()),
            QUERY_TIMEOUT,
        )
        .await
        .is_ok()
        {
            if let Some(room) = h.rooms.resolve_alias(alias)? {
                return Ok(Some(room));
            }
        }
    }
    Ok(None)
}

/// Pings the appservice and measures the round trip.
pub async fn ping(
    h: &Haven,
    asv: &Appservice,
    txn: Option<OwnedTransactionId>,
) -> Result<Duration, OutboundError> {
    let mut req = send_ping::v1::Request::new();
    req.transaction_id = txn;
    let start = Instant::now();
    send(h, asv, req, Duration::from_secs(15)).await?;
    Ok(start.elapsed())
}
