//! Turning HTTP requests into ruma request types (with authentication, body limits and rate
//! limiting) and ruma responses back into HTTP.

use std::{any::TypeId, net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::BytesMut;
use ruma::{
    api::{
        auth_scheme::{AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional},
        IncomingRequest, IncomingRequestExt, Metadata, OutgoingResponse, OutgoingResponseExt,
    },
    OwnedDeviceId, OwnedUserId,
};

use crate::{
    error::{ErrCode, Error},
    users::Session,
    Haven,
};

/// A parsed request and who sent it.
pub struct Ruma<T> {
    pub body: T,
    pub session: Option<Session>,
    /// The raw JSON body, for fields ruma does not model (the UIA `auth` dict).
    pub json: Option<serde_json::Value>,
    /// The server that signed a federation request.
    pub origin: Option<ruma::OwnedServerName>,
    /// The client's address (through a trusted reverse proxy's `X-Forwarded-For`).
    pub client_ip: Option<std::net::IpAddr>,
}

impl<T> Ruma<T> {
    /// The authenticated user; endpoints that require a token always have one.
    pub fn user(&self) -> Result<&OwnedUserId, Error> {
        self.session
            .as_ref()
            .map(|s| &s.user_id)
            .ok_or_else(|| Error::unknown_token(false))
    }

    pub fn device(&self) -> Result<&OwnedDeviceId, Error> {
        self.session
            .as_ref()
            .map(|s| &s.device_id)
            .ok_or_else(|| Error::unknown_token(false))
    }

    pub fn session(&self) -> Result<&Session, Error> {
        self.session
            .as_ref()
            .ok_or_else(|| Error::unknown_token(false))
    }
}

#[derive(PartialEq)]
enum Auth {
    Required,
    Optional,
    /// Another server's `X-Matrix` signature.
    Server,
    None,
}

fn auth_kind<T: Metadata>() -> Auth
where
    T::Authentication: 'static,
{
    let t = TypeId::of::<T::Authentication>();
    if t == TypeId::of::<AccessToken>() || t == TypeId::of::<AppserviceToken>() {
        Auth::Required
    } else if t == TypeId::of::<ruma::api::federation::authentication::ServerSignatures>() {
        Auth::Server
    } else if t == TypeId::of::<AccessTokenOptional>()
        || t == TypeId::of::<AppserviceTokenOptional>()
    {
        Auth::Optional
    } else {
        Auth::None
    }
}

/// The access token from `Authorization: Bearer` or the deprecated `access_token` query.
pub fn access_token(parts: &axum::http::request::Parts) -> Result<Option<String>, Error> {
    let query = parts.uri.query().and_then(|q| {
        form_urlencoded_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    });
    let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(query);
    };
    let s = h.to_str().map_err(|_| Error::unknown_token(false))?;
    let token = s
        .strip_prefix("Bearer ")
        .or_else(|| s.strip_prefix("bearer "))
        .ok_or_else(|| {
            Error::new(
                StatusCode::UNAUTHORIZED,
                ErrCode::MissingToken,
                "Authorization must be a Bearer token",
            )
        })?
        .trim()
        .to_owned();
    // Two different tokens: which one the client meant is anyone's guess, so neither is used.
    if query.as_ref().is_some_and(|q| *q != token) {
        return Err(Error::invalid_param(
            "The Authorization header and the access_token query parameter name different tokens",
        ));
    }
    Ok(Some(token))
}

/// Resolves an access token: an appservice's as_token (acting as its sender, or as
/// `?user_id=` within its namespaces, on `?device_id=` if given) or a user's token.
/// `must_exist`: the acting user must already be registered (false for registration itself).
fn authenticate(
    h: &Haven,
    parts: &axum::http::request::Parts,
    token: &str,
    must_exist: bool,
) -> Result<Session, Error> {
    let Some(asv) = h.appservices.by_token(token) else {
        let session = h
            .users
            .authenticate(token)?
            .ok_or_else(|| Error::unknown_token(false))?;
        match h.users.get(&session.user_id)? {
            // A deactivated account's tokens are deleted; should one survive, it is still dead.
            Some(u) if u.deactivated => return Err(Error::unknown_token(false)),
            Some(u) if u.locked => return Err(Error::user_locked()),
            _ => {}
        }
        return Ok(session);
    };
    let query = parts
        .uri
        .query()
        .map(form_urlencoded_pairs)
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let user_id = match param("user_id") {
        Some(u) => ruma::UserId::parse(u).map_err(|_| Error::invalid_param("Invalid user_id"))?,
        None => asv.sender.clone(),
    };
    if !asv.owns_user(&user_id) {
        return Err(Error::new(
            StatusCode::FORBIDDEN,
            ErrCode::Exclusive,
            "The appservice cannot act as this user",
        ));
    }
    match h.users.get(&user_id)? {
        None if must_exist => {
            return Err(Error::forbidden(
                "The appservice has not registered this user",
            ))
        }
        Some(u) if u.deactivated => {
            return Err(Error::new(
                StatusCode::FORBIDDEN,
                ErrCode::UserDeactivated,
                "This user has been deactivated",
            ))
        }
        _ => {}
    }
    let device_id = match param("device_id").or_else(|| param("org.matrix.msc4326.device_id")) {
        Some(d) => {
            let d = OwnedDeviceId::from(d);
            if must_exist && h.users.device(&user_id, &d)?.is_none() {
                return Err(Error::forbidden("Unknown device for this user"));
            }
            d
        }
        None => OwnedDeviceId::from(format!("AS_{}", asv.id())),
    };
    Ok(Session {
        user_id,
        device_id,
        appservice: Some(asv),
    })
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

impl<T> FromRequest<Arc<Haven>> for Ruma<T>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: 'static,
{
    type Rejection = Error;

    async fn from_request(req: Request, h: &Arc<Haven>) -> Result<Self, Error> {
        let (mut parts, body) = req.into_parts();
        let path_args: Vec<String> =
            match Path::<Vec<String>>::from_request_parts(&mut parts, h).await {
                Ok(Path(args)) => args,
                Err(_) => Vec::new(),
            };
        let bytes = axum::body::to_bytes(body, h.config.limits.max_request_bytes)
            .await
            .map_err(|_| Error::too_large("Request body is too large"))?;

        let auth = auth_kind::<T>();
        // Federation requests: the signature covers the body exactly as sent.
        let origin = if auth == Auth::Server {
            let signed = axum::http::Request::from_parts(parts.clone(), bytes.as_ref());
            Some(crate::federation::auth::verify_request(h, &signed).await?)
        } else {
            None
        };
        // Endpoints without user authentication ignore the header (other servers sign even
        // their key requests).
        let token = match auth {
            Auth::Server | Auth::None => None,
            _ => access_token(&parts)?,
        };
        let session = match (token, &auth) {
            (Some(token), Auth::Required | Auth::Optional) => {
                Some(authenticate(h, &parts, &token, auth == Auth::Required)?)
            }
            (None, Auth::Required) => {
                return Err(Error::new(
                    StatusCode::UNAUTHORIZED,
                    ErrCode::MissingToken,
                    "Missing access token",
                ))
            }
            _ => None,
        };

        let exempt = session
            .as_ref()
            .and_then(|s| s.appservice.as_ref())
            .is_some_and(|a| !a.rate_limited());
        let client_ip = crate::ratelimit::client_address(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            &h.config.rate_limits.trusted_proxies,
        );
        if T::RATE_LIMITED && !exempt {
            let key = match &session {
                Some(s) => s.user_id.to_string(),
                None => client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            };
            h.ratelimit.check(&key)?;
        }

        let json = if bytes.is_empty() {
            None
        } else {
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => Some(v),
                Err(_) => {
                    return Err(Error::bad_request(
                        ErrCode::NotJson,
                        "Request body is not valid JSON",
                    ))
                }
            }
        };
        if let Some(j) = &json {
            if !j.is_object() {
                return Err(Error::bad_request(
                    ErrCode::BadJson,
                    "Request body must be a JSON object",
                ));
            }
        }

        // An empty body on POST/PUT is read as `{}`, as Synapse does: some clients and bot
        // frameworks send nothing to endpoints whose fields are all optional (join, leave).
        let bytes = if bytes.is_empty() && matches!(parts.method, Method::POST | Method::PUT) {
            bytes::Bytes::from_static(b"{}")
        } else {
            bytes
        };
        let http_req = axum::http::Request::from_parts(parts, bytes.as_ref());
        let args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        // Some of ruma's deserializers panic on input they did not expect (a login body
        // without `type` indexes a map that lacks it): such a request is malformed, not a
        // reason to drop the connection.
        let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            T::try_from_http_request(http_req, &args)
        }))
        .map_err(|_| Error::bad_json("The request body does not have the expected shape"))?
        .map_err(map_parse_error)?;
        Ok(Ruma {
            body,
            session,
            json,
            origin,
            client_ip,
        })
    }
}

fn map_parse_error(e: ruma::api::error::FromHttpRequestError) -> Error {
    use ruma::api::error::{DeserializationError, FromHttpRequestError};
    match e {
        FromHttpRequestError::Deserialization(d) => match d {
            DeserializationError::Json(e) => Error::bad_json(format!("Invalid request: {e}")),
            DeserializationError::Query(e) => {
                Error::invalid_param(format!("Invalid query parameter: {e}"))
            }
            DeserializationError::Ident(e) => {
                Error::invalid_param(format!("Invalid identifier: {e}"))
            }
            other => Error::bad_json(format!("Invalid request: {other}")),
        },
        FromHttpRequestError::MethodMismatch { .. } => Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrCode::Unrecognized,
            "Method not allowed",
        ),
        other => Error::bad_json(format!("Invalid request: {other}")),
    }
}

/// A ruma response as an axum response.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(res) => res.map(|b| Body::from(b.freeze())).into_response(),
            Err(e) => Error::internal(format!("serialising response: {e}")).into_response(),
        }
    }
}

pub type ApiResult<T> = Result<RumaResponse<T>, Error>;

/// The authenticated session of a request handled outside ruma's request types (streamed
/// media): the same token rules as [`Ruma`].
pub struct Authed(pub Session);

impl FromRequestParts<Arc<Haven>> for Authed {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        h: &Arc<Haven>,
    ) -> Result<Self, Error> {
        match access_token(parts)? {
            Some(token) => Ok(Authed(authenticate(h, parts, &token, true)?)),
            None => Err(Error::new(
                StatusCode::UNAUTHORIZED,
                ErrCode::MissingToken,
                "Missing access token",
            )),
        }
    }
}
