//! Discovery, profile, aliases, account data, typing, receipts, filters, push rules and sync.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{extract::State, Json};
use ruma::{
    api::client::{
        alias::{create_alias, delete_alias, get_alias},
        config::{
            get_global_account_data, get_room_account_data, set_global_account_data,
            set_room_account_data,
        },
        discovery::{get_capabilities, get_supported_versions},
        filter::{create_filter, get_filter},
        profile::{
            get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
        },
        read_marker::set_read_marker,
        receipt::create_receipt::{self, v3::ReceiptType},
        room::aliases,
        sync::sync_events,
        typing::create_typing_event,
    },
    events::receipt::ReceiptThread,
    serde::Raw,
    RoomVersionId, UserId,
};
use serde_json::{json, Value};

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::{ErrCode, Error},
    events::EventTemplate,
    sync::{filter, parse_token, SyncParams},
    users::account_data,
    Haven,
};

/// Spec versions whose endpoints Haven implements.
const VERSIONS: &[&str] = &[
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
    "v1.11", "v1.12",
];

/// Unstable (or since-stabilised) features Haven implements, which clients look for here
/// before using them — as Synapse lists them. Only what is implemented is claimed.
const UNSTABLE_FEATURES: &[&str] = &[
    // Simplified sliding sync (MSC4186): Element X needs it.
    "org.matrix.simplified_msc3575",
    // Cross-signing (MSC1756, now in the spec): without it Element Web does not set it up after
    // sign-up and warns about every device.
    "org.matrix.e2e_cross_signing",
    // Aliases in m.room.canonical_alias are checked (M_BAD_ALIAS).
    "org.matrix.msc2432",
    // Private read receipts (m.read.private).
    "org.matrix.msc2285.stable",
    // Threads: m.thread relations, bundled summaries, /threads.
    "org.matrix.msc3440.stable",
    // Receipts per thread (thread_id).
    "org.matrix.msc3771",
    // The room_types filter of /publicRooms.
    "org.matrix.msc3827.stable",
    // /relations with recurse.
    "org.matrix.msc3981",
    // Appservice ping (POST /_matrix/client/v1/appservice/{id}/ping).
    "fi.mau.msc2659.stable",
];

pub async fn versions(
    _: State<Arc<Haven>>,
    _r: Ruma<get_supported_versions::Request>,
) -> ApiResult<get_supported_versions::Response> {
    let mut resp =
        get_supported_versions::Response::new(VERSIONS.iter().map(|v| v.to_string()).collect());
    resp.unstable_features = UNSTABLE_FEATURES
        .iter()
        .map(|f| ((*f).to_owned(), true))
        .collect();
    Ok(RumaResponse(resp))
}

pub async fn capabilities(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_capabilities::v3::Request>,
) -> ApiResult<get_capabilities::v3::Response> {
    let mut caps = get_capabilities::v3::Capabilities::new();
    // Admins may lock and suspend accounts (Matrix 1.18).
    if crate::api::admin::is_admin(&h, r.session()?)? {
        caps.account_moderation =
            get_capabilities::v3::AccountModerationCapability::new(true, true);
    }
    let available: BTreeMap<RoomVersionId, _> = crate::rooms::SUPPORTED_VERSIONS
        .iter()
        .map(|v| {
            (
                v.clone(),
                get_capabilities::v3::RoomVersionStability::Stable,
            )
        })
        .collect();
    caps.room_versions = get_capabilities::v3::RoomVersionsCapability::new(
        h.config.rooms.default_version.clone(),
        available,
    );
    Ok(RumaResponse(get_capabilities::v3::Response::new(caps)))
}

/// `/.well-known/matrix/client`
pub async fn well_known_client(State(h): State<Arc<Haven>>) -> Result<Json<Value>, Error> {
    let base = h
        .config
        .well_known
        .client_base_url
        .clone()
        .ok_or_else(|| Error::not_found("No client discovery information configured"))?;
    Ok(Json(json!({ "m.homeserver": { "base_url": base } })))
}

/// `/.well-known/matrix/server`
pub async fn well_known_server(State(h): State<Arc<Haven>>) -> Result<Json<Value>, Error> {
    let server = h
        .config
        .well_known
        .server
        .clone()
        .ok_or_else(|| Error::not_found("No server discovery information configured"))?;
    Ok(Json(json!({ "m.server": server })))
}

/// `/voip/turnServer`: no TURN server is configured, which the spec answers with `{}`.
pub async fn turn_server(
    State(h): State<Arc<Haven>>,
    r: axum::extract::Request,
) -> Result<Json<Value>, Error> {
    let (parts, _) = r.into_parts();
    let token = crate::api::extract::access_token(&parts)?.ok_or_else(|| {
        Error::new(
            axum::http::StatusCode::UNAUTHORIZED,
            ErrCode::MissingToken,
            "Missing access token",
        )
    })?;
    h.users
        .authenticate(&token)?
        .ok_or_else(|| Error::unknown_token(false))?;
    Ok(Json(json!({})))
}

/// A user's display name and avatar: a local account's, or asked of the user's server.
async fn profile_target(
    h: &Haven,
    user: &UserId,
) -> Result<(Option<String>, Option<String>), Error> {
    if user.server_name() != h.key.server_name {
        return crate::federation::query::profile(h, user).await;
    }
    crate::appservice::user_exists(h, user).await?;
    let u = h
        .users
        .get(user)?
        .filter(|u| !u.deactivated)
        .ok_or_else(|| Error::not_found("Profile not found"))?;
    Ok((u.displayname, u.avatar_url))
}

pub async fn profile(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_profile::v3::Request>,
) -> ApiResult<get_profile::v3::Response> {
    let (displayname, avatar_url) = profile_target(&h, &r.body.user_id).await?;
    let mut p = ruma::profile::UserProfile::new();
    if let Some(d) = displayname {
        p.set("displayname".into(), json!(d));
    }
    if let Some(a) = avatar_url {
        p.set("avatar_url".into(), json!(a));
    }
    Ok(RumaResponse(get_profile::v3::Response::from(p)))
}

pub async fn get_displayname(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_display_name::v3::Request>,
) -> ApiResult<get_display_name::v3::Response> {
    let (displayname, _) = profile_target(&h, &r.body.user_id).await?;
    Ok(RumaResponse(get_display_name::v3::Response::new(
        displayname,
    )))
}

pub async fn get_avatar(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_avatar_url::v3::Request>,
) -> ApiResult<get_avatar_url::v3::Response> {
    let (_, avatar_url) = profile_target(&h, &r.body.user_id).await?;
    let resp = get_avatar_url::v3::Response::new(avatar_url.map(Into::into));
    Ok(RumaResponse(resp))
}

/// Copies a profile change into the user's member event in every joined room.
async fn propagate_profile(h: &Haven, user: &ruma::OwnedUserId) -> Result<(), Error> {
    let profile = h.users.member_profile(user)?;
    for room in h.rooms.joined_rooms(user)? {
        let mut content = profile.clone();
        content.insert("membership".into(), json!("join"));
        let t = EventTemplate::state("m.room.member", user.as_str(), Value::Object(content));
        if let Err(e) = h.rooms.append(&room, user, t, None).await {
            tracing::warn!(room = %room, error = %e, "profile not propagated");
        }
    }
    Ok(())
}

pub async fn set_displayname(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_display_name::v3::Request>,
) -> ApiResult<set_display_name::v3::Response> {
    let user = r.user()?;
    h.users.require_not_suspended(user)?;
    if *user != r.body.user_id {
        return Err(Error::forbidden("You may only change your own profile"));
    }
    if r.body.displayname.as_ref().is_some_and(|d| d.len() > 256) {
        return Err(Error::bad_request(
            ErrCode::TooLarge,
            "Display name is too long",
        ));
    }
    h.users
        .set_profile(user, Some(r.body.displayname.clone()), None)?;
    h.db.durable().await?;
    propagate_profile(&h, user).await?;
    Ok(RumaResponse(set_display_name::v3::Response::new()))
}

pub async fn set_avatar(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_avatar_url::v3::Request>,
) -> ApiResult<set_avatar_url::v3::Response> {
    let user = r.user()?;
    h.users.require_not_suspended(user)?;
    if *user != r.body.user_id {
        return Err(Error::forbidden("You may only change your own profile"));
    }
    h.users.set_profile(
        user,
        None,
        Some(r.body.avatar_url.as_ref().map(|u| u.to_string())),
    )?;
    h.db.durable().await?;
    propagate_profile(&h, user).await?;
    Ok(RumaResponse(set_avatar_url::v3::Response::new()))
}

pub async fn alias_create(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_alias::v3::Request>,
) -> ApiResult<create_alias::v3::Response> {
    let user = r.user()?;
    h.rooms.meta_or_404(&r.body.room_id)?;
    h.rooms.require_joined(&r.body.room_id, user)?;
    crate::appservice::check_alias_allowed(&h, &r.body.room_alias, r.session()?)?;
    h.rooms
        .claim_alias(&r.body.room_alias, &r.body.room_id, user)?;
    h.db.durable().await?;
    Ok(RumaResponse(create_alias::v3::Response::new()))
}

pub async fn alias_get(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_alias::v3::Request>,
) -> ApiResult<get_alias::v3::Response> {
    let (room, servers) = crate::appservice::resolve_alias_servers(&h, &r.body.room_alias)
        .await?
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    Ok(RumaResponse(get_alias::v3::Response::new(room, servers)))
}

pub async fn alias_delete(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_alias::v3::Request>,
) -> ApiResult<delete_alias::v3::Response> {
    let user = r.user()?;
    let admin = h.users.is_admin(user)?;
    h.rooms
        .delete_alias(&r.body.room_alias, user, admin)
        .await?;
    h.db.durable().await?;
    Ok(RumaResponse(delete_alias::v3::Response::new()))
}

pub async fn room_aliases(
    State(h): State<Arc<Haven>>,
    r: Ruma<aliases::v3::Request>,
) -> ApiResult<aliases::v3::Response> {
    h.rooms
        .visible_range(&r.body.room_id, r.user()?)?
        .ok_or_else(|| Error::forbidden("You are not in this room"))?;
    let list = h
        .rooms
        .room_aliases(&r.body.room_id)?
        .into_iter()
        .filter_map(|a| ruma::RoomAliasId::parse(a).ok())
        .collect();
    Ok(RumaResponse(aliases::v3::Response::new(list)))
}

fn own(user: &UserId, target: &UserId) -> Result<(), Error> {
    if user != target {
        return Err(Error::forbidden(
            "You may only access your own account data",
        ));
    }
    Ok(())
}

fn object_of<T>(raw: &Raw<T>) -> Result<Value, Error> {
    let v: Value =
        serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    if !v.is_object() {
        return Err(Error::bad_json("Account data must be a JSON object"));
    }
    Ok(v)
}

/// Types the server manages itself and clients may not set through account data.
const SERVER_MANAGED: &[&str] = &["m.fully_read", "m.push_rules"];

/// Sets account data of the requesting user (global when `room` is `None`).
async fn put_account_data<T>(
    h: &Haven,
    target: &UserId,
    room: Option<&ruma::RoomId>,
    kind: String,
    data: &Raw<T>,
    user: &UserId,
) -> Result<(), Error> {
    own(user, target)?;
    if SERVER_MANAGED.contains(&kind.as_str()) {
        return Err(Error::bad_request(
            ErrCode::BadJson,
            format!("{kind} cannot be set this way"),
        ));
    }
    account_data::set(&h.db, &h.stream, user, room, &kind, object_of(data)?).await
}

/// Reads account data of the requesting user as a raw JSON object.
fn read_account_data<T>(
    h: &Haven,
    target: &UserId,
    room: Option<&ruma::RoomId>,
    kind: String,
    user: &UserId,
) -> Result<Raw<T>, Error> {
    own(user, target)?;
    let v = account_data::get(&h.db, user, room, &kind)?
        .ok_or_else(|| Error::not_found("Account data not found"))?;
    crate::events::client::raw(&v)
}

pub async fn set_global_ad(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_global_account_data::v3::Request>,
) -> ApiResult<set_global_account_data::v3::Response> {
    let b = &r.body;
    put_account_data(
        &h,
        &b.user_id,
        None,
        b.event_type.to_string(),
        &b.data,
        r.user()?,
    )
    .await?;
    Ok(RumaResponse(set_global_account_data::v3::Response::new()))
}

pub async fn get_global_ad(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_global_account_data::v3::Request>,
) -> ApiResult<get_global_account_data::v3::Response> {
    let b = &r.body;
    let data = read_account_data(&h, &b.user_id, None, b.event_type.to_string(), r.user()?)?;
    Ok(RumaResponse(get_global_account_data::v3::Response::new(
        data,
    )))
}

pub async fn set_room_ad(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_room_account_data::v3::Request>,
) -> ApiResult<set_room_account_data::v3::Response> {
    let b = &r.body;
    put_account_data(
        &h,
        &b.user_id,
        Some(&b.room_id),
        b.event_type.to_string(),
        &b.data,
        r.user()?,
    )
    .await?;
    Ok(RumaResponse(set_room_account_data::v3::Response::new()))
}

pub async fn get_room_ad(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_room_account_data::v3::Request>,
) -> ApiResult<get_room_account_data::v3::Response> {
    let b = &r.body;
    let data = read_account_data(
        &h,
        &b.user_id,
        Some(&b.room_id),
        b.event_type.to_string(),
        r.user()?,
    )?;
    Ok(RumaResponse(get_room_account_data::v3::Response::new(data)))
}

pub async fn typing(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_typing_event::v3::Request>,
) -> ApiResult<create_typing_event::v3::Response> {
    let user = r.user()?;
    if *user != r.body.user_id {
        return Err(Error::forbidden("You may only set your own typing state"));
    }
    h.rooms.require_joined(&r.body.room_id, user)?;
    let t = match &r.body.state {
        create_typing_event::v3::Typing::Yes(info) => Some(info.timeout),
        _ => None,
    };
    h.rooms.set_typing(&r.body.room_id, user, t).await?;
    Ok(RumaResponse(create_typing_event::v3::Response::new()))
}

fn thread_id(t: &ReceiptThread) -> Option<String> {
    match t {
        ReceiptThread::Unthreaded => None,
        ReceiptThread::Main => Some("main".into()),
        other => other.as_str().map(str::to_owned),
    }
}

pub async fn receipt(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_receipt::v3::Request>,
) -> ApiResult<create_receipt::v3::Response> {
    let user = r.user()?;
    let b = &r.body;
    match b.receipt_type {
        ReceiptType::Read | ReceiptType::ReadPrivate => {
            h.rooms
                .set_receipt(
                    &b.room_id,
                    user,
                    b.receipt_type.as_ref(),
                    &b.event_id,
                    thread_id(&b.thread),
                )
                .await?;
        }
        ReceiptType::FullyRead => set_fully_read(&h, user, &b.room_id, &b.event_id).await?,
        _ => return Err(Error::bad_json("Unknown receipt type")),
    }
    Ok(RumaResponse(create_receipt::v3::Response::new()))
}

async fn set_fully_read(
    h: &Haven,
    user: &UserId,
    room: &ruma::RoomId,
    event: &ruma::EventId,
) -> Result<(), Error> {
    h.rooms.require_joined(room, user)?;
    if h.rooms
        .get_pdu(event)?
        .filter(|p| p.room_id == room)
        .is_none()
    {
        return Err(Error::not_found("Event not found in this room"));
    }
    account_data::set(
        &h.db,
        &h.stream,
        user,
        Some(room),
        "m.fully_read",
        json!({ "event_id": event }),
    )
    .await?;
    Ok(())
}

pub async fn read_markers(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_read_marker::v3::Request>,
) -> ApiResult<set_read_marker::v3::Response> {
    let user = r.user()?;
    let b = &r.body;
    h.rooms.require_joined(&b.room_id, user)?;
    if let Some(e) = &b.fully_read {
        set_fully_read(&h, user, &b.room_id, e).await?;
    }
    if let Some(e) = &b.read_receipt {
        h.rooms
            .set_receipt(&b.room_id, user, "m.read", e, None)
            .await?;
    }
    if let Some(e) = &b.private_read_receipt {
        h.rooms
            .set_receipt(&b.room_id, user, "m.read.private", e, None)
            .await?;
    }
    Ok(RumaResponse(set_read_marker::v3::Response::new()))
}

pub async fn filter_create(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_filter::v3::Request>,
) -> ApiResult<create_filter::v3::Response> {
    let user = r.user()?;
    if *user != r.body.user_id {
        return Err(Error::forbidden("You may only create filters for yourself"));
    }
    let json = r.json.clone().unwrap_or_else(|| json!({}));
    let id = filter::store(&h.db, user, json)?;
    h.db.durable().await?;
    Ok(RumaResponse(create_filter::v3::Response::new(id)))
}

pub async fn filter_get(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_filter::v3::Request>,
) -> ApiResult<get_filter::v3::Response> {
    let user = r.user()?;
    if *user != r.body.user_id {
        return Err(Error::forbidden("You may only read your own filters"));
    }
    let v = filter::load(&h.db, user, &r.body.filter_id)?
        .ok_or_else(|| Error::not_found("Unknown filter"))?;
    let def = serde_json::from_value(v).map_err(Error::internal)?;
    Ok(RumaResponse(get_filter::v3::Response::new(def)))
}

/// `/sync`. The response always carries the to-device and device-list sections (empty until
/// end-to-end encryption support lands), which ruma's serialisation would leave out.
pub async fn sync(
    State(h): State<Arc<Haven>>,
    r: Ruma<sync_events::v3::Request>,
) -> Result<Json<Value>, Error> {
    let s = r.session()?;
    let filter = match &r.body.filter {
        None => Default::default(),
        Some(sync_events::v3::Filter::FilterDefinition(d)) => d.clone(),
        Some(sync_events::v3::Filter::FilterId(id)) => {
            filter::resolve(&h.db, &s.user_id, Some(id))?
        }
        Some(_) => Default::default(),
    };
    // Syncing marks the user active (online unless the client says otherwise).
    let state = r.body.set_presence.to_string();
    if state != "offline" {
        crate::users::presence::set(&h.db, &h.stream, &s.user_id, &state, None).await?;
    }
    let mut filter = filter;
    // Ignored users' events stay out of the timeline (their state still counts).
    filter
        .room
        .timeline
        .not_senders
        .extend(crate::users::account_data::ignored_users(
            &h.db, &s.user_id,
        )?);
    let params = SyncParams {
        since: r.body.since.as_deref().map(parse_token).transpose()?,
        full_state: r.body.full_state,
        timeout: r.body.timeout.unwrap_or(Duration::ZERO),
        filter,
    };
    let resp = crate::sync::sync(&h, s, params).await?;
    let http = ruma::api::OutgoingResponseExt::try_into_http_response::<Vec<u8>>(resp)
        .map_err(Error::internal)?;
    let mut body: Value = serde_json::from_slice(http.body()).map_err(Error::internal)?;
    if let Some(obj) = body.as_object_mut() {
        obj.entry("to_device")
            .or_insert_with(|| json!({ "events": [] }));
        obj.entry("device_lists")
            .or_insert_with(|| json!({ "changed": [], "left": [] }));
        obj.entry("device_one_time_keys_count")
            .or_insert_with(|| json!({}));
        obj.entry("account_data")
            .or_insert_with(|| json!({ "events": [] }));
        obj.entry("presence")
            .or_insert_with(|| json!({ "events": [] }));
        obj.entry("rooms")
            .or_insert_with(|| json!({ "join": {}, "invite": {}, "leave": {}, "knock": {} }));
    }
    Ok(Json(body))
}

/// `PUT /sendToDevice/{eventType}/{txnId}`
pub async fn send_to_device(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::to_device::send_event_to_device::v3::Request>,
) -> ApiResult<ruma::api::client::to_device::send_event_to_device::v3::Response> {
    use ruma::to_device::DeviceIdOrAllDevices;
    let s = r.session()?;
    let txn_key = (
        s.user_id.to_string(),
        s.device_id.to_string(),
        format!("to_device:{}", r.body.txn_id),
    );
    h.users
        .once(txn_key, || async {
            let mut targets = Vec::new();
            let mut remote = BTreeMap::new();
            for (user, devices) in &r.body.messages {
                if user.server_name() != h.config.server_name {
                    let mut per_device = serde_json::Map::new();
                    for (target, content) in devices {
                        let content: Value = serde_json::from_str(content.json().get())
                            .map_err(|e| Error::bad_json(e.to_string()))?;
                        per_device.insert(target.to_string(), content);
                    }
                    remote.insert(user.clone(), per_device);
                    continue;
                }
                for (target, content) in devices {
                    let content: Value = serde_json::from_str(content.json().get())
                        .map_err(|e| Error::bad_json(e.to_string()))?;
                    match target {
                        DeviceIdOrAllDevices::DeviceId(d) => {
                            targets.push((user.clone(), d.clone(), content))
                        }
                        DeviceIdOrAllDevices::AllDevices => {
                            for (d, _) in h.users.devices(user)? {
                                targets.push((user.clone(), d, content.clone()));
                            }
                        }
                    }
                }
            }
            crate::users::to_device::send(
                &h.db,
                &h.stream,
                &h.users.to_device_feed,
                &s.user_id,
                &r.body.event_type.to_string(),
                targets,
            )
            .await?;
            crate::federation::devices::send_to_device(
                &h,
                &s.user_id,
                &r.body.event_type.to_string(),
                remote,
            )?;
            Ok(())
        })
        .await?;
    Ok(RumaResponse(
        ruma::api::client::to_device::send_event_to_device::v3::Response::new(),
    ))
}

/// Simplified sliding sync (MSC4186).
pub async fn sliding_sync(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::sync::sync_events::v5::Request>,
) -> ApiResult<ruma::api::client::sync::sync_events::v5::Response> {
    let s = r.session()?;
    let state = r.body.set_presence.to_string();
    if state != "offline" {
        crate::users::presence::set(&h.db, &h.stream, &s.user_id, &state, None).await?;
    }
    Ok(RumaResponse(
        crate::sync::sliding::sync(&h, s, &r.body).await?,
    ))
}
