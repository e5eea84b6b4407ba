//! The server-server API's handlers (logic in `crate::federation`).

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::federation::{
        discovery::{
            get_remote_server_keys, get_remote_server_keys_batch, get_server_keys,
            get_server_version,
        },
        query::get_profile_information,
    },
    serde::Raw,
    OwnedServerName,
};
use serde_json::json;

use super::extract::{ApiResult, Ruma, RumaResponse};
use crate::{
    error::{Error, Result},
    federation::keys,
    util::now_ms,
    Haven,
};

fn raw_keys<T>(docs: Vec<serde_json::Value>) -> Result<Vec<Raw<T>>> {
    docs.iter().map(crate::events::client::raw).collect()
}

pub async fn server_keys(
    State(h): State<Arc<Haven>>,
    _r: Ruma<get_server_keys::v2::Request>,
) -> ApiResult<get_server_keys::v2::Response> {
    let doc = keys::own_document(&h)?;
    Ok(RumaResponse(get_server_keys::v2::Response::new(
        crate::events::client::raw(&doc)?,
    )))
}

pub async fn query_keys_batch(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_remote_server_keys_batch::v2::Request>,
) -> ApiResult<get_remote_server_keys_batch::v2::Response> {
    let asked: BTreeMap<OwnedServerName, u64> = r
        .body
        .server_keys
        .iter()
        .map(|(server, ids)| {
            let min = ids
                .values()
                .filter_map(|c| c.minimum_valid_until_ts)
                .map(|t| u64::from(t.get()))
                .max()
                .unwrap_or(0);
            (server.clone(), min)
        })
        .collect();
    let docs = keys::notary(&h, &asked).await?;
    Ok(RumaResponse(
        get_remote_server_keys_batch::v2::Response::new(raw_keys(docs)?),
    ))
}

pub async fn query_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_remote_server_keys::v2::Request>,
) -> ApiResult<get_remote_server_keys::v2::Response> {
    let min = u64::from(r.body.minimum_valid_until_ts.get()).max(now_ms());
    let asked = BTreeMap::from([(r.body.server_name.clone(), min)]);
    let docs = keys::notary(&h, &asked).await?;
    Ok(RumaResponse(get_remote_server_keys::v2::Response::new(
        raw_keys(docs)?,
    )))
}

pub async fn version(
    _: State<Arc<Haven>>,
    _r: Ruma<get_server_version::v1::Request>,
) -> ApiResult<get_server_version::v1::Response> {
    let mut server = get_server_version::v1::Server::new();
    server.name = Some("Haven".into());
    server.version = Some(env!("CARGO_PKG_VERSION").into());
    let mut resp = get_server_version::v1::Response::new();
    resp.server = Some(server);
    Ok(RumaResponse(resp))
}

/// A local user's profile, for another server.
pub async fn profile(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_profile_information::v1::Request>,
) -> ApiResult<get_profile_information::v1::Response> {
    let user = &r.body.user_id;
    if user.server_name() != h.key.server_name {
        return Err(Error::invalid_param("The user is not on this server"));
    }
    let u = h
        .users
        .get(user)?
        .filter(|u| !u.deactivated)
        .ok_or_else(|| Error::not_found("Profile not found"))?;
    let field = r.body.field.as_ref().map(|f| f.as_str().to_owned());
    let wants = |name: &str| field.as_deref().is_none_or(|f| f == name);
    let mut p = ruma::profile::UserProfile::new();
    if let Some(d) = u.displayname.filter(|_| wants("displayname")) {
        p.set("displayname".into(), json!(d));
    }
    if let Some(a) = u.avatar_url.filter(|_| wants("avatar_url")) {
        p.set("avatar_url".into(), json!(a));
    }
    let mut resp = get_profile_information::v1::Response::new();
    resp.data = p;
    Ok(RumaResponse(resp))
}

use ruma::api::federation::{
    event::{get_event, get_missing_events, get_room_state_ids},
    membership::{create_invite, create_join_event, prepare_join_event},
    transactions::send_transaction_message,
};

use crate::federation::{membership as fm, receive, visibility::ServerView};

/// The authenticated origin of a federation request.
fn origin<T>(r: &Ruma<T>) -> Result<&ruma::OwnedServerName> {
    r.origin
        .as_ref()
        .ok_or_else(|| Error::forbidden("Not a signed federation request"))
}

fn raw_json(v: &serde_json::Value) -> Result<Box<serde_json::value::RawValue>> {
    serde_json::value::to_raw_value(v).map_err(Error::internal)
}

pub async fn send_transaction(
    State(h): State<Arc<Haven>>,
    r: Ruma<send_transaction_message::v1::Request>,
) -> ApiResult<send_transaction_message::v1::Response> {
    let origin = origin(&r)?;
    if r.body.origin != *origin {
        return Err(Error::forbidden(
            "The transaction's origin is not the signing server",
        ));
    }
    let edus: Vec<serde_json::Value> = r
        .body
        .edus
        .iter()
        .filter_map(|e| serde_json::from_str(e.json().get()).ok())
        .collect();
    let results = receive::transaction(
        &h,
        origin,
        r.body.transaction_id.as_str(),
        &r.body.pdus,
        &edus,
    )
    .await?;
    Ok(RumaResponse(send_transaction_message::v1::Response::new(
        results,
    )))
}

pub async fn make_join(
    State(h): State<Arc<Haven>>,
    r: Ruma<prepare_join_event::v1::Request>,
) -> ApiResult<prepare_join_event::v1::Response> {
    let (version, event) = fm::make_join(
        &h,
        origin(&r)?,
        &r.body.room_id,
        &r.body.user_id,
        &r.body.ver,
    )?;
    let mut resp = prepare_join_event::v1::Response::new(
        serde_json::value::to_raw_value(&event).map_err(Error::internal)?,
    );
    resp.room_version = Some(version);
    Ok(RumaResponse(resp))
}

pub async fn send_join(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_join_event::v2::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    let v = fm::send_join(
        &h,
        origin(&r)?,
        &r.body.room_id,
        &r.body.event_id,
        &r.body.pdu,
    )
    .await?;
    Ok(axum::Json(v))
}

pub async fn invite(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_invite::v2::Request>,
) -> ApiResult<create_invite::v2::Response> {
    let state = r
        .json
        .as_ref()
        .and_then(|j| j["invite_room_state"].as_array().cloned())
        .unwrap_or_default();
    let signed = fm::receive_invite(
        &h,
        origin(&r)?,
        &r.body.room_id,
        &r.body.event_id,
        &r.body.room_version,
        &r.body.event,
        state,
    )
    .await?;
    Ok(RumaResponse(create_invite::v2::Response::new(raw_json(
        &signed,
    )?)))
}

/// Whether `origin` may read this room's events (it has a member there).
fn may_read(h: &Haven, room: &ruma::RoomId, origin: &ruma::ServerName) -> Result<()> {
    if fm::server_in_room(h, room, origin, true)? && receive::acl_allows(h, room, origin)? {
        Ok(())
    } else {
        Err(Error::forbidden("Your server is not in this room"))
    }
}

pub async fn event(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_event::v1::Request>,
) -> ApiResult<get_event::v1::Response> {
    let pdu = h
        .rooms
        .get_pdu(&r.body.event_id)?
        .ok_or_else(|| Error::not_found("Event not found"))?;
    let origin = origin(&r)?;
    may_read(&h, &pdu.room_id, origin)?;
    let json = ServerView::new(&h, origin).json(&pdu)?;
    Ok(RumaResponse(get_event::v1::Response::new(
        h.key.server_name.clone(),
        ruma::MilliSecondsSinceUnixEpoch::now(),
        raw_json(&json)?,
    )))
}

/// The state before an event of `room` and its auth chain, for a server that may read the
/// room (an event of another room is not found).
fn state_at(
    h: &Haven,
    room: &ruma::RoomId,
    event: &ruma::EventId,
    origin: &ruma::ServerName,
) -> Result<(
    crate::rooms::state::StateMap,
    std::collections::HashSet<ruma::OwnedEventId>,
)> {
    may_read(h, room, origin)?;
    let in_room = h.rooms.get_pdu(event)?.is_some_and(|p| p.room_id == room);
    let state = in_room
        .then(|| h.rooms.state_before_event(event))
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::not_found("No state known at that event in this room"))?;
    let chain = h.rooms.auth_chain(state.values())?;
    Ok((state, chain))
}

pub async fn state_ids(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_room_state_ids::v1::Request>,
) -> ApiResult<get_room_state_ids::v1::Response> {
    let (state, chain) = state_at(&h, &r.body.room_id, &r.body.event_id, origin(&r)?)?;
    Ok(RumaResponse(get_room_state_ids::v1::Response::new(
        chain.into_iter().collect(),
        state.into_values().collect(),
    )))
}

pub async fn missing_events(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_missing_events::v1::Request>,
) -> ApiResult<get_missing_events::v1::Response> {
    let b = &r.body;
    let origin = origin(&r)?;
    may_read(&h, &b.room_id, origin)?;
    let limit = u64::from(b.limit).min(100) as usize;
    let events = h.rooms.events_between(
        &b.room_id,
        &b.earliest_events,
        &b.latest_events,
        limit,
        u64::from(b.min_depth),
    )?;
    let mut view = ServerView::new(&h, origin);
    let mut out = Vec::new();
    for p in events {
        out.push(raw_json(&view.json(&p)?)?);
    }
    Ok(RumaResponse(get_missing_events::v1::Response::new(out)))
}

/// `/backfill`: history before the given events, for a server in the room.
pub async fn backfill(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::federation::backfill::get_backfill::v1::Request>,
) -> ApiResult<ruma::api::federation::backfill::get_backfill::v1::Response> {
    let b = &r.body;
    let origin = origin(&r)?;
    may_read(&h, &b.room_id, origin)?;
    let limit = usize::try_from(u64::from(b.limit)).unwrap_or(usize::MAX);
    let pdus = crate::federation::backfill::serve(&h, origin, &b.room_id, &b.v, limit)?;
    Ok(RumaResponse(
        ruma::api::federation::backfill::get_backfill::v1::Response::new(
            h.key.server_name.clone(),
            ruma::MilliSecondsSinceUnixEpoch::now(),
            pdus.iter().map(raw_json).collect::<Result<_>>()?,
        ),
    ))
}

use ruma::api::federation::{
    device::get_devices,
    keys::{claim_keys, get_keys},
};

/// Device and cross-signing keys of local users, for another server.
pub async fn user_keys_query(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_keys::v1::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    origin(&r)?;
    let mut v = crate::federation::devices::local_keys(&h, &r.body.device_keys, None)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("user_signing_keys");
    }
    Ok(axum::Json(v))
}

/// One-time keys of local devices, claimed by another server.
pub async fn user_keys_claim(
    State(h): State<Arc<Haven>>,
    r: Ruma<claim_keys::v1::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    origin(&r)?;
    let mut out = serde_json::Map::new();
    for (user, devices) in &r.body.one_time_keys {
        if user.server_name() != h.key.server_name {
            continue;
        }
        let mut per_device = serde_json::Map::new();
        for (device, alg) in devices {
            if let Some((id, key)) = crate::users::keys::claim(&h.db, user, device, alg.as_str())? {
                per_device.insert(device.to_string(), json!({ id: key }));
            }
        }
        out.insert(user.to_string(), serde_json::Value::Object(per_device));
    }
    h.db.durable().await?;
    Ok(axum::Json(json!({ "one_time_keys": out })))
}

/// A local user's devices, for another server.
pub async fn user_devices(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_devices::v1::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    origin(&r)?;
    if r.body.user_id.server_name() != h.key.server_name {
        return Err(Error::invalid_param("The user is not on this server"));
    }
    Ok(axum::Json(crate::federation::devices::local_devices(
        &h,
        &r.body.user_id,
    )?))
}

use ruma::api::federation::membership::{
    create_knock_event, create_leave_event, prepare_knock_event, prepare_leave_event,
};

pub async fn make_knock(
    State(h): State<Arc<Haven>>,
    r: Ruma<prepare_knock_event::v1::Request>,
) -> ApiResult<prepare_knock_event::v1::Response> {
    let (version, event) = fm::make_knock(
        &h,
        origin(&r)?,
        &r.body.room_id,
        &r.body.user_id,
        &r.body.ver,
    )?;
    Ok(RumaResponse(prepare_knock_event::v1::Response::new(
        version,
        serde_json::value::to_raw_value(&event).map_err(Error::internal)?,
    )))
}

pub async fn send_knock(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_knock_event::v1::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    let state = fm::send_knock(
        &h,
        origin(&r)?,
        &r.body.room_id,
        &r.body.event_id,
        &r.body.pdu,
    )
    .await?;
    Ok(axum::Json(serde_json::json!({ "knock_room_state": state })))
}

pub async fn make_leave(
    State(h): State<Arc<Haven>>,
    r: Ruma<prepare_leave_event::v1::Request>,
) -> ApiResult<prepare_leave_event::v1::Response> {
    let (version, event) = fm::make_leave(&h, origin(&r)?, &r.body.room_id, &r.body.user_id)?;
    Ok(RumaResponse(prepare_leave_event::v1::Response::new(
        Some(version),
        serde_json::value::to_raw_value(&event).map_err(Error::internal)?,
    )))
}

pub async fn send_leave(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_leave_event::v2::Request>,
) -> ApiResult<create_leave_event::v2::Response> {
    fm::send_leave(
        &h,
        origin(&r)?,
        &r.body.room_id,
        &r.body.event_id,
        &r.body.pdu,
    )
    .await?;
    Ok(RumaResponse(create_leave_event::v2::Response::new()))
}

use ruma::api::federation::{
    authorization::get_event_authorization, event::get_room_state, query::get_room_information,
};

/// A local alias, for another server.
pub async fn query_directory(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_room_information::v1::Request>,
) -> ApiResult<get_room_information::v1::Response> {
    origin(&r)?;
    let alias = &r.body.room_alias;
    if alias.server_name() != h.key.server_name {
        return Err(Error::not_found("The alias is not on this server"));
    }
    let room = h
        .rooms
        .resolve_alias(alias)?
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    let servers = crate::federation::query::local_room_servers(&h, &room)?;
    Ok(RumaResponse(get_room_information::v1::Response::new(
        room, servers,
    )))
}

/// The state before an event and its auth chain, as full events.
pub async fn state(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_room_state::v1::Request>,
) -> ApiResult<get_room_state::v1::Response> {
    let origin = origin(&r)?;
    let (state, chain) = state_at(&h, &r.body.room_id, &r.body.event_id, origin)?;
    let mut view = ServerView::new(&h, origin);
    let mut full = |ids: &mut dyn Iterator<Item = &ruma::OwnedEventId>| -> Result<Vec<_>> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = h.rooms.get_pdu(id)? {
                out.push(raw_json(&view.json(&p)?)?);
            }
        }
        Ok(out)
    };
    let pdus = full(&mut state.values())?;
    let auth = full(&mut chain.iter())?;
    Ok(RumaResponse(get_room_state::v1::Response::new(auth, pdus)))
}

/// An event's auth chain.
pub async fn event_auth(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_event_authorization::v1::Request>,
) -> ApiResult<get_event_authorization::v1::Response> {
    let origin = origin(&r)?;
    may_read(&h, &r.body.room_id, origin)?;
    let pdu = h
        .rooms
        .get_pdu(&r.body.event_id)?
        .filter(|p| p.room_id == r.body.room_id)
        .ok_or_else(|| Error::not_found("Event not found"))?;
    let mut view = ServerView::new(&h, origin);
    let mut out = Vec::new();
    for id in h.rooms.auth_chain(pdu.auth_events.iter())? {
        if let Some(p) = h.rooms.get_pdu(&id)? {
            out.push(raw_json(&view.json(&p)?)?);
        }
    }
    Ok(RumaResponse(get_event_authorization::v1::Response::new(
        out,
    )))
}

use ruma::api::federation::directory::{get_public_rooms, get_public_rooms_filtered};

/// This server's public room directory, for another server's users.
pub async fn public_rooms(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_public_rooms::v1::Request>,
) -> ApiResult<get_public_rooms::v1::Response> {
    let page = h
        .rooms
        .directory_page(r.body.since.as_deref(), r.body.limit, None, &[])?;
    let mut resp = get_public_rooms::v1::Response::new();
    resp.chunk = page.chunk;
    resp.next_batch = page.next;
    resp.prev_batch = page.prev;
    resp.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(resp))
}

pub async fn public_rooms_filtered(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_public_rooms_filtered::v1::Request>,
) -> ApiResult<get_public_rooms_filtered::v1::Response> {
    let b = &r.body;
    let types = crate::rooms::directory::room_type_names(&b.filter.room_types);
    let page = h.rooms.directory_page(
        b.since.as_deref(),
        b.limit,
        b.filter.generic_search_term.as_deref(),
        &types,
    )?;
    let mut resp = get_public_rooms_filtered::v1::Response::new();
    resp.chunk = page.chunk;
    resp.next_batch = page.next;
    resp.prev_batch = page.prev;
    resp.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(resp))
}

/// A space's summary and children, for a server walking it.
pub async fn hierarchy(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::federation::space::get_hierarchy::v1::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    Ok(axum::Json(crate::federation::hierarchy::serve(
        &h,
        origin(&r)?,
        &r.body.room_id,
        r.body.suggested_only,
    )?))
}
