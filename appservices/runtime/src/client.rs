//! The client-server API as the appservice: as its bot (the sender) or, masquerading with
//! `?user_id=`, as any user in its namespaces.

use std::borrow::Cow;

use ruma::{
    api::{
        client::{account::register, membership::join_room_by_id, message::send_message_event},
        path_builder::VersionHistory,
        IncomingResponseExt, OutgoingRequest, SupportedVersions,
    },
    events::room::message::RoomMessageEventContent,
    OwnedUserId, RoomId, TransactionId, UserId,
};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("homeserver answered {status} {errcode}: {message}")]
    Api {
        status: u16,
        errcode: String,
        message: String,
    },
    #[error("request failed: {0}")]
    Http(String),
}

impl ClientError {
    pub fn errcode(&self) -> Option<&str> {
        match self {
            ClientError::Api { errcode, .. } => Some(errcode),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct AsClient {
    base: String,
    as_token: String,
    http: reqwest::Client,
    /// The user to act as (`None`: the appservice's sender).
    user: Option<OwnedUserId>,
}

impl AsClient {
    pub fn new(homeserver_url: &str, as_token: &str) -> Self {
        Self {
            base: homeserver_url.trim_end_matches('/').to_owned(),
            as_token: as_token.to_owned(),
            http: reqwest::Client::new(),
            user: None,
        }
    }

    /// A client acting as `user` (must be in the appservice's namespaces).
    pub fn as_user(&self, user: &UserId) -> Self {
        Self {
            user: Some(user.to_owned()),
            ..self.clone()
        }
    }

    /// Sends a ruma request with the as_token (and `user_id` when masquerading).
    pub async fn send<R>(&self, req: R) -> Result<R::IncomingResponse, ClientError>
    where
        R: OutgoingRequest<PathBuilder = VersionHistory>,
    {
        let versions = SupportedVersions::from_parts(&["v1.12".to_owned()], &Default::default());
        let http_req = req
            .try_into_http_request_inner(&self.base, Cow::Owned(versions))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, body) = http_req.into_parts();
        let body: Vec<u8> = ruma::api::OutgoingBody::try_into_buf(body)
            .map_err(|_| ClientError::Http("body".into()))?;
        let mut url = parts.uri.to_string();
        if let Some(u) = &self.user {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("user_id=");
            url.push_str(&u.as_str().replace('@', "%40").replace(':', "%3A"));
        }
        let mut rb = self
            .http
            .request(parts.method, url)
            .bearer_auth(&self.as_token);
        for (k, v) in parts.headers.iter() {
            rb = rb.header(k, v);
        }
        if !parts.headers.contains_key("content-type") {
            rb = rb.header("content-type", "application/json");
        }
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(ClientError::Api {
                status: status.as_u16(),
                errcode: v["errcode"].as_str().unwrap_or_default().to_owned(),
                message: v["error"].as_str().unwrap_or_default().to_owned(),
            });
        }
        let http_resp = http::Response::builder()
            .status(status)
            .body(bytes.as_ref())
            .map_err(|e| ClientError::Http(e.to_string()))?;
        R::IncomingResponse::try_from_http_response(http_resp)
            .map_err(|e| ClientError::Http(e.to_string()))
    }

    /// Registers a namespace user (`m.login.application_service`); an existing one is fine.
    pub async fn ensure_registered(&self, localpart: &str) -> Result<(), ClientError> {
        let mut req = register::v3::Request::new();
        req.username = Some(localpart.to_owned());
        req.login_type = Some(register::LoginType::ApplicationService);
        req.inhibit_login = true;
        match self.send(req).await {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Downloads `mxc://server/id` through the authenticated media API: (bytes, content type).
    pub async fn download_media(&self, mxc: &str) -> Result<(Vec<u8>, String), ClientError> {
        let path = mxc
            .strip_prefix("mxc://")
            .ok_or_else(|| ClientError::Http(format!("not an mxc URI: {mxc}")))?;
        let resp = self
            .http
            .get(format!(
                "{}/_matrix/client/v1/media/download/{path}",
                self.base
            ))
            .bearer_auth(&self.as_token)
            .send()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                errcode: String::new(),
                message: "media download".into(),
            });
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok((bytes.to_vec(), ct))
    }

    /// Asks the homeserver to ping this appservice (proving both directions work; the
    /// homeserver also retries pending transactions at once).
    pub async fn ping(&self, appservice_id: &str) -> Result<std::time::Duration, ClientError> {
        let req =
            ruma::api::client::appservice::request_ping::v1::Request::new(appservice_id.to_owned());
        Ok(self.send(req).await?.duration)
    }

    /// Pings the homeserver in the background until it answers (for up to 5 s): call it as the
    /// appservice starts listening, so pending transactions are retried at once.
    pub fn ping_when_ready(&self, appservice_id: &str) {
        let (client, id) = (self.clone(), appservice_id.to_owned());
        tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if client.ping(&id).await.is_ok() {
                    break;
                }
            }
        });
    }

    pub async fn join(&self, room: &RoomId) -> Result<(), ClientError> {
        self.send(join_room_by_id::v3::Request::new(room.to_owned()))
            .await
            .map(|_| ())
    }

    /// Sends an `m.text` (or `m.notice` when `notice`) message.
    pub async fn send_text(
        &self,
        room: &RoomId,
        body: &str,
        notice: bool,
    ) -> Result<ruma::OwnedEventId, ClientError> {
        let content = if notice {
            RoomMessageEventContent::notice_plain(body)
        } else {
            RoomMessageEventContent::text_plain(body)
        };
        let req =
            send_message_event::v3::Request::new(room.to_owned(), TransactionId::new(), &content)
                .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(self.send(req).await?.event_id)
    }
}
