//! `/_matrix/client/v1/appservice/{appserviceId}/ping`: an appservice asks the homeserver to
//! ping it back, which proves both directions work and retries pending transactions at once.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode};
use ruma::api::client::appservice::request_ping;
use serde_json::json;

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    appservice::outbound::{self, OutboundError},
    error::{ErrCode, Error},
    Haven,
};

pub async fn ping(
    State(h): State<Arc<Haven>>,
    r: Ruma<request_ping::v1::Request>,
) -> ApiResult<request_ping::v1::Response> {
    let asv = r
        .session()?
        .appservice
        .clone()
        .ok_or_else(|| Error::forbidden("Only appservices can ping"))?;
    if asv.id() != r.body.appservice_id {
        return Err(Error::forbidden(
            "The access token does not belong to this appservice",
        ));
    }
    match outbound::ping(&h, &asv, r.body.transaction_id.clone()).await {
        Ok(duration) => {
            asv.wake.notify_one();
            Ok(RumaResponse(request_ping::v1::Response::new(duration)))
        }
        Err(OutboundError::NoUrl) => Err(Error::bad_request(
            ErrCode::UrlNotSet,
            "The appservice has no URL",
        )),
        Err(OutboundError::Status { status, body }) => Err(Error::Matrix {
            status: StatusCode::BAD_GATEWAY,
            code: ErrCode::BadStatus,
            message: format!("The appservice answered {status}"),
            extra: Some(json!({ "status": status, "body": body })),
        }),
        Err(OutboundError::Timeout) => Err(Error::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrCode::ConnectionTimeout,
            "The appservice did not answer in time",
        )),
        Err(OutboundError::Connection(e)) => Err(Error::new(
            StatusCode::BAD_GATEWAY,
            ErrCode::ConnectionFailed,
            format!("Cannot reach the appservice: {e}"),
        )),
    }
}
