//! Server administration, at the paths Synapse's admin API uses so tools written for it (and
//! Haven's own appservices) work with either server. Allowed to server admins and to
//! appservices whose registration grants it (`org.haven.admin: true`).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, State},
    Json,
};
use ruma::OwnedRoomId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{error::Error, users::Session, Haven};

/// Whether the session may use the admin API.
pub fn is_admin(h: &Haven, s: &Session) -> Result<bool, Error> {
    if let Some(asv) = &s.appservice {
        if asv.r.admin {
            return Ok(true);
        }
    }
    h.users.is_admin(&s.user_id)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteRoom {
    /// Synapse's flag; Haven always removes the room's data once its members are out.
    purge: Option<bool>,
}

/// `DELETE /_synapse/admin/v1/rooms/{roomId}` (behind [`gate`] like every admin route): local
/// members leave, then the room and its history are removed.
async fn synapse_delete_room(
    State(h): State<Arc<Haven>>,
    Extension(AdminSession(s)): Extension<AdminSession>,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let req: DeleteRoom = if body.is_empty() {
        DeleteRoom::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::bad_json(e.to_string()))?
    };
    if req.purge == Some(false) {
        return Err(Error::invalid_param(
            "Haven deletes rooms only with their history (purge: true)",
        ));
    }
    let room = OwnedRoomId::try_from(room).map_err(|e| Error::invalid_param(e.to_string()))?;
    let purged = crate::admin::rooms::delete(&h, &room).await?;
    tracing::info!(by = %s.user_id, %room, "room deleted through the admin API");
    Ok(Json(json!({
        "kicked_users": purged.kicked_users,
        "failed_to_kick_users": [],
        "local_aliases": purged.local_aliases,
        "new_room_id": null,
    })))
}

// ---------------------------------------------------------------------------------------------
// The Haven admin API: `/_haven/admin/v1/...`, and the spec's account moderation endpoints.
// Every call goes through `gate`: admins only, and audited whatever its outcome.

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
    Extension, Router,
};
use ruma::{OwnedEventId, OwnedUserId, UserId};

/// The admin behind an admin API call.
#[derive(Clone)]
pub struct AdminSession(pub Session);

/// Longest request path kept in an audit entry; longer ones are cut (and marked so).
const MAX_AUDITED_PATH: usize = 256;

/// The path as the audit log keeps it.
fn audited_path(path: &str) -> String {
    if path.len() <= MAX_AUDITED_PATH {
        return path.to_owned();
    }
    let mut end = MAX_AUDITED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &path[..end], path.len())
}

/// Authenticates the caller, refuses non-admins, runs the call and audits it. An admin's call
/// is on record durably before it acts (a call that cannot be audited is not made), with its
/// status added after. A refusal is recorded too, but at most [`crate::admin::REFUSALS_PER_MINUTE`] per caller
/// a minute; past that the caller is answered 429 without a record.
pub async fn gate(State(h): State<Arc<Haven>>, req: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let path = audited_path(parts.uri.path());
    let session = match crate::api::extract::Authed::from_request_parts(&mut parts, &h).await {
        Ok(crate::api::extract::Authed(s)) => s,
        Err(e) => return e.into_response(),
    };
    let entry = json!({ "actor": session.user_id, "method": method, "path": path });
    match is_admin(&h, &session) {
        Ok(true) => {}
        Ok(false) => {
            if let Err(e) = h.admin_refusals.take(&session.user_id) {
                return e.into_response();
            }
            let resp = Error::forbidden("You are not a server admin").into_response();
            let mut entry = entry;
            entry["status"] = json!(resp.status().as_u16());
            if let Err(e) = crate::admin::audit_refusal(&h, entry) {
                tracing::error!(error = %e, "refused admin call not audited");
            }
            return resp;
        }
        Err(e) => return e.into_response(),
    }
    // On record before anything happens: a call that cannot be audited is not made.
    let seq = match crate::admin::audit(&h, entry).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "admin call not audited; refused");
            return Error::internal("the audit log could not be written").into_response();
        }
    };
    parts.extensions.insert(AdminSession(session));
    let resp = next.run(Request::from_parts(parts, body)).await;
    if let Err(e) = crate::admin::audit_outcome(&h, seq, resp.status().as_u16()).await {
        // The call happened and is on record; only its status is missing.
        tracing::error!(seq, error = %e, "admin call outcome not audited");
    }
    resp
}

use super::errors::Params;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Page {
    from: Option<String>,
    limit: Option<usize>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

fn local_user(h: &Haven, user: &str) -> Result<OwnedUserId, Error> {
    let user = UserId::parse(user).map_err(|_| Error::invalid_param("Invalid user ID"))?;
    if user.server_name() != h.config.server_name {
        return Err(Error::invalid_param("The user is not on this server"));
    }
    Ok(user)
}

/// The user must exist (deactivated accounts too).
fn existing_user(h: &Haven, user: &str) -> Result<OwnedUserId, Error> {
    let user = local_user(h, user)?;
    if !h.users.exists(&user)? {
        return Err(Error::not_found("No such user"));
    }
    Ok(user)
}

fn room_id(room: &str) -> Result<OwnedRoomId, Error> {
    OwnedRoomId::try_from(room).map_err(|_| Error::invalid_param("Invalid room ID"))
}

fn body_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::bad_json(e.to_string()))
}

async fn users_list(
    State(h): State<Arc<Haven>>,
    Params(p): Params<Page>,
) -> Result<Json<Value>, Error> {
    let (users, next) = crate::admin::list_users(&h, p.from.as_deref(), p.limit())?;
    Ok(Json(json!({ "users": users, "next_token": next })))
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: Option<String>,
    #[serde(default)]
    admin: bool,
}

async fn users_create(State(h): State<Arc<Haven>>, body: Bytes) -> Result<Json<Value>, Error> {
    let req: NewUser = body_json(&body)?;
    let user = h.users.user_id_for(&req.username)?;
    if h.users.exists(&user)? {
        return Err(Error::bad_request(
            crate::error::ErrCode::UserInUse,
            "This user exists already",
        ));
    }
    h.users
        .create(&user, req.password.as_deref(), req.admin)
        .await?;
    h.db.durable().await?;
    Ok(Json(
        crate::admin::user_view(&h, &user)?.unwrap_or_default(),
    ))
}

async fn user_get(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    let user = local_user(&h, &user)?;
    crate::admin::user_view(&h, &user)?
        .map(Json)
        .ok_or_else(|| Error::not_found("No such user"))
}

async fn user_deactivate(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    let user = existing_user(&h, &user)?;
    crate::admin::deactivate_account(&h, &user).await?;
    Ok(Json(json!({ "deactivated": true })))
}

#[derive(Deserialize)]
struct NewPassword {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

fn yes() -> bool {
    true
}

async fn user_password(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let user = existing_user(&h, &user)?;
    let req: NewPassword = body_json(&body)?;
    if h.users.get(&user)?.is_some_and(|u| u.deactivated) {
        return Err(Error::forbidden("The account is deactivated"));
    }
    h.users.set_password(&user, &req.new_password).await?;
    if req.logout_devices {
        h.users.delete_devices_except(&user, None)?;
    }
    h.db.durable().await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct AdminFlag {
    admin: bool,
}

async fn user_admin(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let user = existing_user(&h, &user)?;
    let req: AdminFlag = body_json(&body)?;
    h.users.update(&user, |u| u.admin = req.admin)?;
    h.db.durable().await?;
    Ok(Json(json!({ "admin": req.admin })))
}

/// The user's devices: when and from where each was last seen.
fn device_rows(h: &Haven, user: &str) -> Result<(OwnedUserId, Vec<Value>), Error> {
    let user = existing_user(h, user)?;
    let rows = h
        .users
        .devices(&user)?
        .into_iter()
        .map(|(id, d)| {
            json!({
                "device_id": id,
                "display_name": d.display_name,
                "last_seen_ts": d.last_seen_ts,
                "last_seen_ip": d.last_seen_ip,
            })
        })
        .collect();
    Ok((user, rows))
}

async fn user_devices(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    let (_, devices) = device_rows(&h, &user)?;
    Ok(Json(json!({ "total": devices.len(), "devices": devices })))
}

/// The user's sessions: one per device, with its last connection.
async fn user_sessions(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    let (user, devices) = device_rows(&h, &user)?;
    let sessions: Vec<Value> = devices
        .into_iter()
        .map(|d| {
            json!({
                "device_id": d["device_id"],
                "connections": [{ "ip": d["last_seen_ip"], "last_seen": d["last_seen_ts"] }],
            })
        })
        .collect();
    Ok(Json(json!({ "user_id": user, "sessions": sessions })))
}

async fn user_device_delete(
    State(h): State<Arc<Haven>>,
    Path((user, device)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let user = existing_user(&h, &user)?;
    let device = ruma::OwnedDeviceId::from(device);
    if h.users.device(&user, &device)?.is_none() {
        return Err(Error::not_found("No such device"));
    }
    h.users.delete_device(&user, &device)?;
    h.db.durable().await?;
    Ok(Json(json!({})))
}

async fn user_media(
    State(h): State<Arc<Haven>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    let user = existing_user(&h, &user)?;
    Ok(Json(
        json!({ "media": crate::admin::content::media_of(&h, &user)? }),
    ))
}

async fn rooms_list(
    State(h): State<Arc<Haven>>,
    Params(p): Params<Page>,
) -> Result<Json<Value>, Error> {
    let (rooms, next) = crate::admin::rooms::list(&h, p.from.as_deref(), p.limit())?;
    Ok(Json(json!({ "rooms": rooms, "next_token": next })))
}

async fn room_get(
    State(h): State<Arc<Haven>>,
    Path(room): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(crate::admin::rooms::room_view(&h, &room_id(&room)?)?))
}

async fn room_state(
    State(h): State<Arc<Haven>>,
    Path(room): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({ "state": crate::admin::rooms::state(&h, &room_id(&room)?)? }),
    ))
}

async fn room_members(
    State(h): State<Arc<Haven>>,
    Path(room): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({ "members": crate::admin::rooms::members(&h, &room_id(&room)?)? }),
    ))
}

#[derive(Deserialize)]
struct Block {
    block: bool,
}

async fn room_block(
    State(h): State<Arc<Haven>>,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let room = room_id(&room)?;
    let req: Block = body_json(&body)?;
    crate::admin::rooms::set_blocked(&h, &room, req.block)?;
    h.db.durable().await?;
    Ok(Json(json!({ "block": req.block })))
}

async fn room_delete(
    State(h): State<Arc<Haven>>,
    Path(room): Path<String>,
) -> Result<Json<Value>, Error> {
    let purged = crate::admin::rooms::delete(&h, &room_id(&room)?).await?;
    Ok(Json(json!({
        "kicked_users": purged.kicked_users,
        "local_aliases": purged.local_aliases,
    })))
}

#[derive(Deserialize)]
struct PurgeHistory {
    /// Events sent before this time (ms since the epoch) are removed.
    before_ts: u64,
}

async fn room_purge_history(
    State(h): State<Arc<Haven>>,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let req: PurgeHistory = body_json(&body)?;
    let purged = crate::admin::rooms::purge_history(&h, &room_id(&room)?, req.before_ts).await?;
    Ok(Json(json!({ "purged_events": purged })))
}

async fn tokens_list(State(h): State<Arc<Haven>>) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({ "registration_tokens": crate::admin::registration_tokens(&h)? }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewToken {
    token: Option<String>,
    uses_allowed: Option<u64>,
    expiry_time: Option<u64>,
}

async fn tokens_create(State(h): State<Arc<Haven>>, body: Bytes) -> Result<Json<Value>, Error> {
    let req: NewToken = if body.is_empty() {
        NewToken::default()
    } else {
        body_json(&body)?
    };
    let t =
        crate::admin::create_registration_token(&h, req.token, req.uses_allowed, req.expiry_time)?;
    h.db.durable().await?;
    Ok(Json(t))
}

async fn tokens_delete(
    State(h): State<Arc<Haven>>,
    Path(token): Path<String>,
) -> Result<Json<Value>, Error> {
    if !crate::admin::revoke_registration_token(&h, &token)? {
        return Err(Error::not_found("No such registration token"));
    }
    h.db.durable().await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Notice {
    user_id: String,
    content: Value,
}

async fn notices_send(State(h): State<Arc<Haven>>, body: Bytes) -> Result<Json<Value>, Error> {
    let req: Notice = body_json(&body)?;
    let user = local_user(&h, &req.user_id)?;
    Ok(Json(
        crate::admin::content::send_notice(&h, &user, req.content).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReportsQuery {
    all: bool,
}

async fn reports_list(
    State(h): State<Arc<Haven>>,
    Params(q): Params<ReportsQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({ "reports": crate::admin::content::reports(&h, q.all)? }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resolve {
    note: Option<String>,
}

async fn report_resolve(
    State(h): State<Arc<Haven>>,
    Extension(AdminSession(s)): Extension<AdminSession>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let id: u64 = id
        .parse()
        .map_err(|_| Error::invalid_param("A report ID is a number"))?;
    let req: Resolve = if body.is_empty() {
        Resolve::default()
    } else {
        body_json(&body)?
    };
    let r = crate::admin::content::resolve_report(&h, id, &s.user_id, req.note)?;
    h.db.durable().await?;
    Ok(Json(r))
}

#[derive(Deserialize)]
struct Quarantine {
    quarantined: bool,
}

async fn media_quarantine(
    State(h): State<Arc<Haven>>,
    Path(media): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let req: Quarantine = body_json(&body)?;
    crate::admin::content::set_quarantined(&h, &media, req.quarantined)?;
    h.db.durable().await?;
    Ok(Json(json!({ "quarantined": req.quarantined })))
}

async fn media_delete(
    State(h): State<Arc<Haven>>,
    Path(media): Path<String>,
) -> Result<Json<Value>, Error> {
    crate::admin::content::delete_media(&h, &media)?;
    h.db.durable().await?;
    Ok(Json(json!({})))
}

async fn event_original(
    State(h): State<Arc<Haven>>,
    Path(event): Path<String>,
) -> Result<Json<Value>, Error> {
    let event =
        OwnedEventId::try_from(event).map_err(|_| Error::invalid_param("Invalid event ID"))?;
    Ok(Json(crate::admin::content::original_event(&h, &event)?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    from: u64,
    limit: Option<usize>,
}

async fn audit_list(
    State(h): State<Arc<Haven>>,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Value>, Error> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = crate::admin::audit_entries(&h, q.from, limit)?;
    let next = (entries.len() == limit)
        .then(|| entries.last().and_then(|e| e["seq"].as_u64()))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next_from": next })))
}

/// The spec's account moderation (Matrix 1.18): lock (every request refused) and suspend
/// (reading only). Not on other admins.
async fn moderation(
    h: &Haven,
    user: &str,
    body: Option<&Bytes>,
    field: &'static str,
) -> Result<Json<Value>, Error> {
    let user = local_user(h, user)?;
    let rec = h
        .users
        .get(&user)?
        .filter(|u| !u.deactivated)
        .ok_or_else(|| Error::not_found("User not found"))?;
    let Some(body) = body else {
        let v = if field == "locked" {
            rec.locked
        } else {
            rec.suspended
        };
        return Ok(Json(json!({ field: v })));
    };
    if rec.admin {
        return Err(Error::forbidden(
            "Another administrator cannot be moderated",
        ));
    }
    let req: Value = body_json(body)?;
    let v = req[field]
        .as_bool()
        .ok_or_else(|| Error::bad_json(format!("`{field}` must be a boolean")))?;
    h.users.update(&user, |u| {
        if field == "locked" {
            u.locked = v;
        } else {
            u.suspended = v;
        }
    })?;
    h.db.durable().await?;
    Ok(Json(json!({ field: v })))
}

/// `lock` or `suspend`: the moderation an account-moderation path names.
fn moderation_field(action: &str) -> Result<&'static str, Error> {
    match action {
        "lock" => Ok("locked"),
        "suspend" => Ok("suspended"),
        _ => Err(Error::unrecognized()),
    }
}

async fn moderation_get(
    State(h): State<Arc<Haven>>,
    Path((action, u)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    moderation(&h, &u, None, moderation_field(&action)?).await
}

async fn moderation_put(
    State(h): State<Arc<Haven>>,
    Path((action, u)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    moderation(&h, &u, Some(&body), moderation_field(&action)?).await
}

/// Every admin route, behind [`gate`].
pub fn routes(h: Arc<Haven>) -> Router<Arc<Haven>> {
    const V1: &str = "/_haven/admin/v1";
    let p = |s: &str| format!("{V1}{s}");
    Router::new()
        .route(&p("/users"), get(users_list).post(users_create))
        .route(&p("/users/{user_id}"), get(user_get))
        .route(&p("/users/{user_id}/deactivate"), post(user_deactivate))
        .route(&p("/users/{user_id}/password"), post(user_password))
        .route(&p("/users/{user_id}/admin"), put(user_admin))
        .route(&p("/users/{user_id}/devices"), get(user_devices))
        .route(
            &p("/users/{user_id}/devices/{device_id}"),
            delete(user_device_delete),
        )
        .route(&p("/users/{user_id}/sessions"), get(user_sessions))
        .route(&p("/users/{user_id}/media"), get(user_media))
        .route(&p("/rooms"), get(rooms_list))
        .route(&p("/rooms/{room_id}"), get(room_get).delete(room_delete))
        .route(&p("/rooms/{room_id}/state"), get(room_state))
        .route(&p("/rooms/{room_id}/members"), get(room_members))
        .route(&p("/rooms/{room_id}/block"), put(room_block))
        .route(
            &p("/rooms/{room_id}/purge_history"),
            post(room_purge_history),
        )
        .route(
            &p("/registration_tokens"),
            get(tokens_list).post(tokens_create),
        )
        .route(&p("/registration_tokens/{token}"), delete(tokens_delete))
        .route(&p("/server_notices"), post(notices_send))
        .route(&p("/reports"), get(reports_list))
        .route(&p("/reports/{id}/resolve"), post(report_resolve))
        .route(&p("/media/{media_id}/quarantine"), post(media_quarantine))
        .route(&p("/media/{media_id}"), delete(media_delete))
        .route(&p("/events/{event_id}/original"), get(event_original))
        .route(&p("/audit"), get(audit_list))
        .route(
            "/_matrix/client/v1/admin/{action}/{user_id}",
            get(moderation_get).put(moderation_put),
        )
        .route(
            "/_synapse/admin/v1/rooms/{room_id}",
            delete(synapse_delete_room),
        )
        .route_layer(axum::middleware::from_fn_with_state(h, gate))
}
