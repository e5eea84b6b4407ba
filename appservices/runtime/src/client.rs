//! The client-server API as the appservice: as its bot (the sender) or, masquerading with
//! `?user_id=`, as any user in its namespaces.

use std::borrow::Cow;

use ruma::{
    api::Direction,
    api::{
        client::{
            account::register,
            membership::{invite_user, join_room_by_id, joined_members},
            message::{get_message_events, send_message_event},
            receipt::create_receipt,
            room::get_room_event,
            state::{get_state_event_for_key, send_state_event},
            typing::create_typing_event::{self, v3::Typing, v3::TypingInfo},
        },
        path_builder::VersionHistory,
        IncomingResponseExt, OutgoingRequest, SupportedVersions,
    },
    events::room::message::RoomMessageEventContent,
    EventId, OwnedUserId, RoomId, TransactionId, UserId,
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

    /// Sends a message event with raw JSON content. `txn` makes a retried send idempotent
    /// (derive it from the event being answered); a random one is used otherwise.
    pub async fn send_message(
        &self,
        room: &RoomId,
        content: &Value,
        txn: Option<&str>,
    ) -> Result<ruma::OwnedEventId, ClientError> {
        let txn = txn.map_or_else(TransactionId::new, |t| {
            // Transaction IDs are path segments: keep them to a safe alphabet.
            let safe: String = t
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            safe.into()
        });
        let req = send_message_event::v3::Request::new_raw(
            room.to_owned(),
            txn,
            "m.room.message".into(),
            raw(content)?,
        );
        Ok(self.send(req).await?.event_id)
    }

    /// Sets a state event (raw JSON content).
    pub async fn send_state(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<ruma::OwnedEventId, ClientError> {
        let req = send_state_event::v3::Request::new_raw(
            room.to_owned(),
            event_type.into(),
            state_key.to_owned(),
            raw(content)?,
        );
        Ok(self.send(req).await?.event_id)
    }

    /// Gives `user` power level `level` in `room` (read, change, write back the power levels).
    pub async fn set_power_level(
        &self,
        room: &RoomId,
        user: &UserId,
        level: i64,
    ) -> Result<(), ClientError> {
        self.set_power_levels(room, &[(user, level)]).await
    }

    /// Sets several users' power levels in one power-levels event.
    pub async fn set_power_levels(
        &self,
        room: &RoomId,
        levels: &[(&UserId, i64)],
    ) -> Result<(), ClientError> {
        let mut pl = self
            .state(room, "m.room.power_levels", "")
            .await?
            .unwrap_or_else(|| serde_json::json!({}));
        if !pl["users"].is_object() {
            pl["users"] = serde_json::json!({});
        }
        for (user, level) in levels {
            pl["users"][user.as_str()] = (*level).into();
        }
        self.send_state(room, "m.room.power_levels", "", &pl)
            .await
            .map(|_| ())
    }

    /// A state event's content, `None` when the room has none.
    pub async fn state(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, ClientError> {
        let req = get_state_event_for_key::v3::Request::new(
            room.to_owned(),
            event_type.into(),
            state_key.to_owned(),
        );
        match self.send(req).await {
            Ok(r) => serde_json::from_str(r.event_or_content.get())
                .map(Some)
                .map_err(|e| ClientError::Http(e.to_string())),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Invites `user` into `room`, unless they are already in it (or invited).
    pub async fn invite(&self, room: &RoomId, user: &UserId) -> Result<(), ClientError> {
        if self
            .joined_members(room)
            .await?
            .iter()
            .any(|(m, _)| m == user)
        {
            return Ok(());
        }
        let req = invite_user::v3::Request::new(
            room.to_owned(),
            invite_user::v3::InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(
                user.to_owned(),
            )),
        );
        match self.send(req).await {
            Ok(_) => Ok(()),
            // Already invited: what was wanted.
            Err(e) if e.errcode() == Some("M_FORBIDDEN") && e.to_string().contains("invite") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes a room and its history from the homeserver (Synapse's admin API, which Haven
    /// serves too); the appservice must be allowed to (an admin grant in its registration).
    pub async fn purge_room(&self, room: &str) -> Result<(), ClientError> {
        let url = format!(
            "{}/_synapse/admin/v1/rooms/{}",
            self.base,
            room.replace('!', "%21").replace(':', "%3A")
        );
        let r = self
            .http
            .delete(url)
            .bearer_auth(&self.as_token)
            .json(&serde_json::json!({ "purge": true }))
            .send()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = r.status();
        if status.is_success() {
            return Ok(());
        }
        let v: Value = r.json().await.unwrap_or(Value::Null);
        Err(ClientError::Api {
            status: status.as_u16(),
            errcode: v["errcode"].as_str().unwrap_or_default().to_owned(),
            message: v["error"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// One event of `room`, as JSON.
    pub async fn event(&self, room: &RoomId, event: &EventId) -> Result<Value, ClientError> {
        let r = self
            .send(get_room_event::v3::Request::new(
                room.to_owned(),
                event.to_owned(),
            ))
            .await?;
        serde_json::from_str(r.event.json().get()).map_err(|e| ClientError::Http(e.to_string()))
    }

    /// Shows (or stops showing) `user` (the acting user) as typing in `room`.
    pub async fn typing(&self, user: &UserId, room: &RoomId, on: bool) -> Result<(), ClientError> {
        let state = if on {
            Typing::Yes(TypingInfo::new(std::time::Duration::from_secs(30)))
        } else {
            Typing::No
        };
        self.send(create_typing_event::v3::Request::new(
            user.to_owned(),
            room.to_owned(),
            state,
        ))
        .await
        .map(|_| ())
    }

    /// Marks `event` as read by the acting user.
    pub async fn read(&self, room: &RoomId, event: &EventId) -> Result<(), ClientError> {
        self.send(create_receipt::v3::Request::new(
            room.to_owned(),
            create_receipt::v3::ReceiptType::Read,
            event.to_owned(),
        ))
        .await
        .map(|_| ())
    }

    /// Joined members with their display names (the localpart when they have none).
    pub async fn joined_members(
        &self,
        room: &RoomId,
    ) -> Result<Vec<(OwnedUserId, String)>, ClientError> {
        let r = self
            .send(joined_members::v3::Request::new(room.to_owned()))
            .await?;
        Ok(r.joined
            .into_iter()
            .map(|(id, m)| {
                let name = m.display_name.unwrap_or_else(|| id.localpart().to_owned());
                (id, name)
            })
            .collect())
    }

    /// The newest `limit` timeline events of `room`, oldest first.
    pub async fn recent_events(
        &self,
        room: &RoomId,
        limit: u32,
    ) -> Result<Vec<Value>, ClientError> {
        let mut req = get_message_events::v3::Request::new(room.to_owned(), Direction::Backward);
        req.limit = limit.into();
        let r = self.send(req).await?;
        let mut events: Vec<Value> = r
            .chunk
            .iter()
            .filter_map(|e| serde_json::from_str(e.json().get()).ok())
            .collect();
        events.reverse();
        Ok(events)
    }
}

fn raw<T>(v: &Value) -> Result<ruma::serde::Raw<T>, ClientError> {
    serde_json::value::to_raw_value(v)
        .map(ruma::serde::Raw::from_json)
        .map_err(|e| ClientError::Http(e.to_string()))
}
