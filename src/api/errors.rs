//! Every error a client gets is a Matrix error (`{"errcode", "error"}` in JSON), including those
//! raised before a handler runs: a malformed query string or path parameter, a body over the
//! size limit, a URI too long. Handlers answer `crate::error::Error`, mapped in `error.rs`; this
//! layer turns what the HTTP framework answers on its own (plain text or nothing) into the same
//! format, so no client ever has to parse anything else.

use axum::{
    extract::Request,
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::{ErrCode, Error};

/// Longest request URI served (path and query), in bytes; longer answers 414 `M_TOO_LARGE`.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest framework error text carried into the Matrix error.
const MAX_MESSAGE: usize = 512;

pub async fn matrix_errors(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Error::new(
            StatusCode::URI_TOO_LONG,
            ErrCode::TooLarge,
            format!("The request URI is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let message: String = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text.chars().take(MAX_MESSAGE).collect()
    };
    Error::new(status, errcode(status, &message), message).into_response()
}

/// The errcode for a framework error of `status` saying `message`.
fn errcode(status: StatusCode, message: &str) -> ErrCode {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::URI_TOO_LONG => ErrCode::TooLarge,
        StatusCode::NOT_FOUND => ErrCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrCode::Unrecognized,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrCode::NotJson,
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            if message.contains("missing field") =>
        {
            ErrCode::MissingParam
        }
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrCode::InvalidParam,
        _ => ErrCode::Unknown,
    }
}

/// Query parameters, refused in Matrix's error format when malformed: `M_MISSING_PARAM` for a
/// required one left out, else `M_INVALID_PARAM`.
pub struct Params<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(t)| Params(t))
            .map_err(|e| {
                let text = e.body_text();
                let code = errcode(StatusCode::BAD_REQUEST, &text);
                Error::new(StatusCode::BAD_REQUEST, code, text)
            })
    }
}

/// A handler that panicked (a bug): logged, and answered 500 `M_UNKNOWN` in Matrix's format
/// instead of a dropped connection.
pub fn panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "request handler panicked");
    Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrCode::Unknown,
        "Internal server error",
    )
    .into_response()
}
