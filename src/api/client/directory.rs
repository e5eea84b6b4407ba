//! Room and user directories, room tags, third-party protocols and content reports.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::client::{
        directory::{
            get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
        },
        room::{report_content, report_room, Visibility},
        tag::{create_tag, delete_tag, get_tags},
        thirdparty::get_protocols,
        user_directory::search_users,
    },
    events::tag::Tags,
    OwnedServerName, RoomId, UInt, UserId,
};
use serde_json::{json, Value};

use crate::{
    api::{
        client::events::visible_event,
        extract::{ApiResult, Ruma, RumaResponse},
    },
    error::Error,
    rooms::{
        directory::DirectoryPage, hierarchy::Viewer, rules_for, state::power_levels, CurrentState,
    },
    users::account_data,
    Haven,
};

/// One page of a server's directory: this server's, or another's over federation.
async fn directory_page(
    h: &Haven,
    server: Option<&OwnedServerName>,
    since: Option<&str>,
    limit: Option<UInt>,
    term: Option<&str>,
    types: &[Option<String>],
) -> Result<DirectoryPage, Error> {
    match server.filter(|s| **s != h.config.server_name) {
        Some(other) => {
            crate::federation::query::public_rooms(h, other, since, limit, term, types).await
        }
        None => h.rooms.directory_page(since, limit, term, types),
    }
}

pub async fn public(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_public_rooms::v3::Request>,
) -> ApiResult<get_public_rooms::v3::Response> {
    let b = &r.body;
    let page = directory_page(
        &h,
        b.server.as_ref(),
        b.since.as_deref(),
        b.limit,
        None,
        &[],
    )
    .await?;
    let mut resp = get_public_rooms::v3::Response::new(page.chunk);
    resp.next_batch = page.next;
    resp.prev_batch = page.prev;
    resp.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(resp))
}

pub async fn public_filtered(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_public_rooms_filtered::v3::Request>,
) -> ApiResult<get_public_rooms_filtered::v3::Response> {
    let b = &r.body;
    let types = crate::rooms::directory::room_type_names(&b.filter.room_types);
    let page = directory_page(
        &h,
        b.server.as_ref(),
        b.since.as_deref(),
        b.limit,
        b.filter.generic_search_term.as_deref(),
        &types,
    )
    .await?;
    let mut resp = get_public_rooms_filtered::v3::Response::new();
    resp.chunk = page.chunk;
    resp.next_batch = page.next;
    resp.prev_batch = page.prev;
    resp.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(resp))
}

pub async fn visibility(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_room_visibility::v3::Request>,
) -> ApiResult<get_room_visibility::v3::Response> {
    h.rooms.meta_or_404(&r.body.room_id)?;
    let v = if h.rooms.is_published(&r.body.room_id)? {
        Visibility::Public
    } else {
        Visibility::Private
    };
    Ok(RumaResponse(get_room_visibility::v3::Response::new(v)))
}

/// Publishing takes the power to change the room's published aliases.
fn may_publish(h: &Haven, room: &RoomId, user: &UserId) -> Result<bool, Error> {
    let meta = h.rooms.meta_or_404(room)?;
    let rules = rules_for(&meta.version)?;
    let view = CurrentState {
        rooms: &h.rooms,
        room_id: room,
    };
    let pl = power_levels(&view, &rules)?;
    Ok(h.rooms.is_joined(room, user)?
        && pl.user_level(user) >= pl.event_level("m.room.canonical_alias", true))
}

pub async fn set_visibility(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_room_visibility::v3::Request>,
) -> ApiResult<set_room_visibility::v3::Response> {
    let user = r.user()?;
    if !may_publish(&h, &r.body.room_id, user)? {
        return Err(Error::forbidden(
            "Only members who may change the room's aliases may list it in the directory",
        ));
    }
    h.rooms
        .set_published(&r.body.room_id, r.body.visibility == Visibility::Public)?;
    h.db.durable().await?;
    Ok(RumaResponse(set_room_visibility::v3::Response::new()))
}

pub async fn search_users(
    State(h): State<Arc<Haven>>,
    r: Ruma<search_users::v3::Request>,
) -> ApiResult<search_users::v3::Response> {
    let me = r.user()?;
    let term = r.body.search_term.to_lowercase();
    let limit = u64::from(r.body.limit).clamp(1, 100) as usize;
    let mut found = Vec::new();
    for u in h.rooms.searchable_users(me)? {
        let profile = h.users.member_profile(&u)?;
        let name = profile
            .get("displayname")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let hit = u.as_str().to_lowercase().contains(&term)
            || name
                .as_ref()
                .is_some_and(|n| n.to_lowercase().contains(&term));
        if hit {
            let mut user = search_users::v3::User::new(u.clone());
            user.display_name = name;
            user.avatar_url = profile
                .get("avatar_url")
                .and_then(Value::as_str)
                .map(Into::into);
            found.push(user);
        }
    }
    let limited = found.len() > limit;
    found.truncate(limit);
    Ok(RumaResponse(search_users::v3::Response::new(
        found, limited,
    )))
}

fn own(r_user: &UserId, path_user: &UserId) -> Result<(), Error> {
    if r_user == path_user {
        Ok(())
    } else {
        Err(Error::forbidden(
            "You may only see and change your own tags",
        ))
    }
}

fn tags_of(h: &Haven, user: &UserId, room: &RoomId) -> Result<Value, Error> {
    Ok(account_data::get(&h.db, user, Some(room), "m.tag")?
        .unwrap_or_else(|| json!({ "tags": {} })))
}

pub async fn tags(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_tags::v3::Request>,
) -> ApiResult<get_tags::v3::Response> {
    own(r.user()?, &r.body.user_id)?;
    let v = tags_of(&h, &r.body.user_id, &r.body.room_id)?;
    let tags: Tags = serde_json::from_value(v["tags"].clone()).unwrap_or_default();
    Ok(RumaResponse(get_tags::v3::Response::new(tags)))
}

pub async fn set_tag(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_tag::v3::Request>,
) -> ApiResult<create_tag::v3::Response> {
    let b = &r.body;
    own(r.user()?, &b.user_id)?;
    let mut v = tags_of(&h, &b.user_id, &b.room_id)?;
    v["tags"][b.tag.as_str()] = serde_json::to_value(&b.tag_info).map_err(Error::internal)?;
    account_data::set(&h.db, &h.stream, &b.user_id, Some(&b.room_id), "m.tag", v).await?;
    Ok(RumaResponse(create_tag::v3::Response::new()))
}

pub async fn delete_tag(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_tag::v3::Request>,
) -> ApiResult<delete_tag::v3::Response> {
    let b = &r.body;
    own(r.user()?, &b.user_id)?;
    let mut v = tags_of(&h, &b.user_id, &b.room_id)?;
    if let Some(t) = v["tags"].as_object_mut() {
        t.remove(&b.tag);
    }
    account_data::set(&h.db, &h.stream, &b.user_id, Some(&b.room_id), "m.tag", v).await?;
    Ok(RumaResponse(delete_tag::v3::Response::new()))
}

/// No appservice here declares third-party protocols.
pub async fn protocols(
    _: State<Arc<Haven>>,
    r: Ruma<get_protocols::v3::Request>,
) -> ApiResult<get_protocols::v3::Response> {
    r.user()?;
    Ok(RumaResponse(get_protocols::v3::Response::new(
        BTreeMap::new(),
    )))
}

async fn store_report(h: &Haven, room: &RoomId, report: Value) -> Result<(), Error> {
    let n = h.db.next_number("report_seq")?;
    h.db.t
        .reports
        .put(&(room.to_string(), n), &crate::storage::Json(report))?;
    h.db.durable().await?;
    Ok(())
}

/// `POST /rooms/{roomId}/report/{eventId}`: kept for the server's admins.
pub async fn report_event(
    State(h): State<Arc<Haven>>,
    r: Ruma<report_content::v3::Request>,
) -> ApiResult<report_content::v3::Response> {
    let s = r.session()?;
    let b = &r.body;
    visible_event(&h, &b.room_id, &s.user_id, &b.event_id)?;
    store_report(
        &h,
        &b.room_id,
        json!({"by": s.user_id, "event_id": b.event_id, "reason": b.reason, "ts": crate::util::now_ms()}),
    )
    .await?;
    Ok(RumaResponse(report_content::v3::Response::new()))
}

/// `POST /rooms/{roomId}/report`: kept for the server's admins.
pub async fn report_room(
    State(h): State<Arc<Haven>>,
    r: Ruma<report_room::v3::Request>,
) -> ApiResult<report_room::v3::Response> {
    let s = r.session()?;
    h.rooms.meta_or_404(&r.body.room_id)?;
    store_report(
        &h,
        &r.body.room_id,
        json!({"by": s.user_id, "reason": r.body.reason, "ts": crate::util::now_ms()}),
    )
    .await?;
    Ok(RumaResponse(report_room::v3::Response::new()))
}

/// `GET /v1/room_summary/{roomIdOrAlias}` (and MSC3266's unstable path): what a room is,
/// for those who may see it — members and invitees, or anyone when the room is public,
/// knockable or world-readable.
pub async fn summary(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::room::get_summary::v1::Request>,
) -> ApiResult<ruma::api::client::room::get_summary::v1::Response> {
    let not_found = || Error::not_found("Room not found, or not visible to you");
    let room = match ruma::OwnedRoomId::try_from(r.body.room_id_or_alias.as_str()) {
        Ok(id) => id,
        Err(_) => {
            let alias = ruma::RoomAliasId::parse(r.body.room_id_or_alias.as_str())
                .map_err(|_| not_found())?;
            h.rooms.resolve_alias(&alias)?.ok_or_else(not_found)?
        }
    };
    h.rooms.meta(&room)?.ok_or_else(not_found)?;
    let viewer = r.session().ok().map(|s| s.user_id.clone());
    let membership = match &viewer {
        Some(u) => h.rooms.membership(&room, u)?.map(|m| m.membership),
        None => None,
    };
    let visible = match &viewer {
        Some(u) => h.rooms.may_view(&room, Viewer::User(u))?,
        None => h.rooms.may_view(&room, Viewer::Anyone)?,
    };
    if !visible {
        return Err(not_found());
    }
    let entry = h.rooms.summary_entry(&room)?;
    let summary = serde_json::from_value(entry).map_err(Error::internal)?;
    let mut resp = ruma::api::client::room::get_summary::v1::Response::new(summary);
    resp.membership = membership.map(|m| m.as_str().into());
    Ok(RumaResponse(resp))
}

/// `GET /v1/rooms/{roomId}/hierarchy`: the rooms of a space, and of its subspaces, that the
/// user may see.
pub async fn hierarchy(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::space::get_hierarchy::v1::Request>,
) -> Result<axum::Json<Value>, Error> {
    let b = &r.body;
    let skip: usize = match &b.from {
        Some(t) => t
            .parse()
            .map_err(|_| Error::invalid_param("Unknown pagination token"))?,
        None => 0,
    };
    let limit = b.limit.map_or(50, |l| u64::from(l).clamp(1, 100) as usize);
    let max_depth = b.max_depth.map_or(10, |d| u64::from(d).min(10) as usize);
    let (rooms, more) = crate::federation::hierarchy::walk(
        &h,
        r.user()?,
        &b.room_id,
        b.suggested_only,
        max_depth,
        skip,
        limit,
    )
    .await?;
    let mut out = json!({ "rooms": rooms });
    if more {
        out["next_batch"] = json!((skip + limit).to_string());
    }
    Ok(axum::Json(out))
}
