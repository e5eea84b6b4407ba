//! Sending and reading room events: send, state, members, messages, context, event, redact.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    api::{
        client::{
            context::get_context,
            membership::{get_member_events, joined_members},
            message::{get_message_events, send_message_event},
            redact::redact_event,
            room::get_room_event,
            state::{get_state_event_for_key, get_state_events, send_state_event},
        },
        Direction,
    },
    events::StateEventType,
    serde::Raw,
    EventId, RoomId, UserId,
};
use serde_json::{json, Value};

use crate::events::client::raw;
use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    events::{EventTemplate, PduRef},
    rooms::{timeline::Dir, visibility::Visible, Transaction},
    sync::{
        history::{self, Point},
        parse_token,
    },
    Haven,
};

fn content_of<T>(raw: &Raw<T>) -> Result<Value, Error> {
    let v: Value =
        serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    if !v.is_object() {
        return Err(Error::bad_json("Event content must be a JSON object"));
    }
    Ok(v)
}

/// What of the room `user` may read; `M_FORBIDDEN` if nothing.
fn visible(h: &Haven, room: &RoomId, user: &UserId) -> Result<Visible, Error> {
    h.rooms
        .visible_range(room, user)?
        .ok_or_else(|| Error::forbidden("You are not allowed to view this room"))
}

pub async fn send_message(
    State(h): State<Arc<Haven>>,
    r: Ruma<send_message_event::v3::Request>,
) -> ApiResult<send_message_event::v3::Response> {
    let s = r.session()?;
    h.users.require_not_suspended(&s.user_id)?;
    h.limit(crate::ratelimit::Action::Message, s)?;
    h.rooms.require_joined(&r.body.room_id, &s.user_id)?;
    let content = content_of(&r.body.body)?;
    let t = EventTemplate::new(r.body.event_type.to_string(), content);
    // A transaction is the device's request to this path: the same ID in another room or
    // with another event type is another transaction.
    let txn = Some(Transaction {
        device: s.device_id.clone(),
        scope: format!("send/{}/{}", r.body.room_id, r.body.event_type),
        id: r.body.txn_id.to_string(),
    });
    let pdu = h.rooms.append(&r.body.room_id, &s.user_id, t, txn).await?;
    Ok(RumaResponse(send_message_event::v3::Response::new(
        pdu.event_id.clone(),
    )))
}

pub async fn send_state(
    State(h): State<Arc<Haven>>,
    r: Ruma<send_state_event::v3::Request>,
) -> ApiResult<send_state_event::v3::Response> {
    let user = r.user()?;
    h.users.require_not_suspended(user)?;
    let content = content_of(&r.body.body)?;
    let kind = r.body.event_type.to_string();
    if kind == "m.room.member" {
        // Membership goes through the dedicated endpoints' checks, but clients may also set
        // their own profile in the room this way; the auth rules decide.
    }
    if kind == "m.room.canonical_alias" {
        for a in content.get("alias").into_iter().chain(
            content
                .get("alt_aliases")
                .into_iter()
                .flat_map(|v| v.as_array().into_iter().flatten()),
        ) {
            let alias = a
                .as_str()
                .and_then(|s| ruma::RoomAliasId::parse(s).ok())
                .ok_or_else(|| {
                    Error::bad_request(crate::error::ErrCode::BadAlias, "Invalid alias")
                })?;
            if alias.server_name() == h.config.server_name
                && h.rooms.resolve_alias(&alias)?.as_deref() != Some(&*r.body.room_id)
            {
                return Err(Error::bad_request(
                    crate::error::ErrCode::BadAlias,
                    "Alias does not point to this room",
                ));
            }
        }
    }
    let t = EventTemplate::state(kind, r.body.state_key.clone(), content);
    let pdu = h.rooms.append(&r.body.room_id, user, t, None).await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(
        pdu.event_id.clone(),
    )))
}

pub async fn get_state_for_key(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_state_event_for_key::v3::Request>,
) -> ApiResult<get_state_event_for_key::v3::Response> {
    let user = r.user()?;
    let vis = visible(&h, &r.body.room_id, user)?;
    let pdu = state_at(
        &h,
        &r.body.room_id,
        &r.body.event_type,
        &r.body.state_key,
        vis,
    )?
    .ok_or_else(|| Error::not_found("State event not found"))?;
    let want_event = r.body.format == get_state_event_for_key::v3::StateEventFormat::Event;
    let value = if want_event {
        h.rooms.format_event(&pdu, None)?
    } else {
        pdu.content_value()
    };
    let raw = serde_json::value::to_raw_value(&value).map_err(Error::internal)?;
    Ok(RumaResponse(get_state_event_for_key::v3::Response::new(
        raw,
    )))
}

/// A state event as of the end of what the viewer may see.
fn state_at(
    h: &Haven,
    room: &RoomId,
    kind: &StateEventType,
    sk: &str,
    vis: Visible,
) -> Result<Option<PduRef>, Error> {
    if vis.to == u64::MAX {
        return h.rooms.current_state(room, kind, sk);
    }
    let state = h.rooms.state_after_pos(room, vis.to)?;
    match state.get(&(kind.to_string(), sk.to_owned())) {
        Some(id) => Ok(h.rooms.get_pdu(id)?),
        None => Ok(None),
    }
}

fn visible_state(h: &Haven, room: &RoomId, vis: Visible) -> Result<Vec<PduRef>, Error> {
    if vis.to == u64::MAX {
        return h.rooms.current_state_all(room);
    }
    let mut out = Vec::new();
    for id in h.rooms.state_after_pos(room, vis.to)?.values() {
        if let Some(p) = h.rooms.get_pdu(id)? {
            out.push(p);
        }
    }
    Ok(out)
}

pub async fn get_state(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_state_events::v3::Request>,
) -> ApiResult<get_state_events::v3::Response> {
    let vis = visible(&h, &r.body.room_id, r.user()?)?;
    let mut out = Vec::new();
    for pdu in visible_state(&h, &r.body.room_id, vis)? {
        out.push(raw(&h.rooms.format_event(&pdu, None)?)?);
    }
    Ok(RumaResponse(get_state_events::v3::Response::new(out)))
}

pub async fn members(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_member_events::v3::Request>,
) -> ApiResult<get_member_events::v3::Response> {
    let mut vis = visible(&h, &r.body.room_id, r.user()?)?;
    if let Some(at) = &r.body.at {
        // Members as of a pagination or sync token, never beyond what the user may see.
        vis.to = vis.to.min(parse_token(at)?);
    }
    let want = r.body.membership.as_ref().map(|m| m.to_string());
    let not = r.body.not_membership.as_ref().map(|m| m.to_string());
    let mut out = Vec::new();
    for pdu in visible_state(&h, &r.body.room_id, vis)? {
        if pdu.kind.to_string() != "m.room.member" {
            continue;
        }
        let m = pdu.content_str("membership").unwrap_or_default();
        if want.as_ref().is_some_and(|w| *w != m) || not.as_ref().is_some_and(|n| *n == m) {
            continue;
        }
        out.push(raw(&h.rooms.format_event(&pdu, None)?)?);
    }
    Ok(RumaResponse(get_member_events::v3::Response::new(out)))
}

pub async fn joined_members(
    State(h): State<Arc<Haven>>,
    r: Ruma<joined_members::v3::Request>,
) -> ApiResult<joined_members::v3::Response> {
    // Current members: for members, and for anyone when the room is world-readable (as
    // `/state` and `/members` are).
    if h.rooms.history_visibility(&r.body.room_id)? != "world_readable" {
        h.rooms.require_joined(&r.body.room_id, r.user()?)?;
    }
    let mut joined = std::collections::BTreeMap::new();
    for user in h.rooms.joined_members(&r.body.room_id)? {
        let mut m = joined_members::v3::RoomMember::new();
        if let Some(pdu) =
            h.rooms
                .current_state(&r.body.room_id, &StateEventType::RoomMember, user.as_str())?
        {
            m.display_name = pdu.content_str("displayname");
            m.avatar_url = pdu.content_str("avatar_url").map(Into::into);
        }
        joined.insert(user, m);
    }
    Ok(RumaResponse(joined_members::v3::Response::new(joined)))
}

/// Member events for the senders of `events`, as of now (for lazy-loading clients).
fn lazy_members<'a>(
    h: &Haven,
    room: &RoomId,
    events: impl IntoIterator<Item = &'a PduRef>,
) -> Result<Vec<Raw<ruma::events::AnyStateEvent>>, Error> {
    let senders: std::collections::BTreeSet<_> =
        events.into_iter().map(|e| e.sender.clone()).collect();
    let mut out = Vec::new();
    for s in senders {
        if let Some(p) = h
            .rooms
            .current_state(room, &StateEventType::RoomMember, s.as_str())?
        {
            out.push(raw(&h.rooms.format_event(&p, None)?)?);
        }
    }
    Ok(out)
}

pub async fn messages(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_message_events::v3::Request>,
) -> ApiResult<get_message_events::v3::Response> {
    let s = r.session()?;
    let mut body = r.body.clone();
    body.filter
        .not_senders
        .extend(crate::users::account_data::ignored_users(
            &h.db, &s.user_id,
        )?);
    let b = &body;
    let vis = visible(&h, &b.room_id, &s.user_id)?;
    let dir = if b.dir == Direction::Backward {
        Dir::Backward
    } else {
        Dir::Forward
    };
    let from = match &b.from {
        Some(t) => Point::parse(t)?,
        None if dir == Dir::Backward => Point::Live(h.stream.current()),
        None => Point::Back(u64::MAX),
    };
    let to = b.to.as_deref().map(Point::parse).transpose()?;
    let limit = (u64::from(b.limit) as usize).clamp(1, 1000);
    let page = history::page(&h, &b.room_id, &vis, from, to, dir, limit, &b.filter).await?;
    let mut resp = get_message_events::v3::Response::new();
    resp.start = from.token();
    resp.end = page.end.map(|p| p.token());
    for pdu in &page.events {
        resp.chunk.push(raw(&h
            .rooms
            .format_event(pdu, Some((&s.user_id, &s.device_id)))?)?);
    }
    if !b.filter.lazy_load_options.is_disabled() {
        resp.state = lazy_members(&h, &b.room_id, &page.events)?;
    }
    Ok(RumaResponse(resp))
}

/// The event if `user` may see it, with where it is in the room's history; `M_NOT_FOUND`
/// otherwise (existence is not revealed). Backfilled history counts as before position 1.
pub(crate) fn visible_event(
    h: &Haven,
    room: &RoomId,
    user: &UserId,
    event_id: &EventId,
) -> Result<(Point, PduRef, Visible), Error> {
    let not_found = || Error::not_found("Event not found");
    let vis = h.rooms.visible_range(room, user)?.ok_or_else(not_found)?;
    let pdu = h.rooms.get_pdu(event_id)?.ok_or_else(not_found)?;
    let at = match h.rooms.event_pos(event_id)? {
        Some(pos) if vis.contains(pos) => Point::Live(pos),
        None if vis.from == 0 => {
            Point::Back(h.rooms.backfill_index(event_id)?.ok_or_else(not_found)?)
        }
        _ => return Err(not_found()),
    };
    if pdu.room_id != room {
        return Err(not_found());
    }
    Ok((at, pdu, vis))
}

pub async fn get_event(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_room_event::v3::Request>,
) -> ApiResult<get_room_event::v3::Response> {
    let s = r.session()?;
    let (_, pdu, _) = visible_event(&h, &r.body.room_id, &s.user_id, &r.body.event_id)?;
    Ok(RumaResponse(get_room_event::v3::Response::new(raw(&h
        .rooms
        .format_event(&pdu, Some((&s.user_id, &s.device_id)))?)?)))
}

pub async fn context(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_context::v3::Request>,
) -> ApiResult<get_context::v3::Response> {
    let s = r.session()?;
    let b = &r.body;
    let (at, pdu, vis) = visible_event(&h, &b.room_id, &s.user_id, &b.event_id)?;
    let limit = (u64::from(b.limit) as usize).min(100);
    let before_n = limit / 2;
    let after_n = limit - before_n;
    // The points on either side of the event.
    let (older, newer) = match at {
        Point::Live(pos) => (Point::Live(pos - 1), Point::Live(pos)),
        Point::Back(n) => (Point::Back(n), Point::Back(n - 1)),
    };
    let page = |from, dir, n| history::page(&h, &b.room_id, &vis, from, None, dir, n, &b.filter);
    let before = if before_n > 0 {
        page(older, Dir::Backward, before_n).await?
    } else {
        history::Page {
            events: Vec::new(),
            end: Some(older),
        }
    };
    let after = if after_n > 0 {
        page(newer, Dir::Forward, after_n).await?
    } else {
        history::Page {
            events: Vec::new(),
            end: Some(newer),
        }
    };
    let viewer = Some((&*s.user_id, &*s.device_id));
    let mut resp = get_context::v3::Response::new();
    resp.start = Some(before.end.unwrap_or(older).token());
    resp.end = Some(after.end.unwrap_or(newer).token());
    resp.event = Some(raw(&h.rooms.format_event(&pdu, viewer)?)?);
    for e in &before.events {
        resp.events_before
            .push(raw(&h.rooms.format_event(e, viewer)?)?);
    }
    for e in &after.events {
        resp.events_after
            .push(raw(&h.rooms.format_event(e, viewer)?)?);
    }
    resp.state = if b.filter.lazy_load_options.is_disabled() {
        visible_state(&h, &b.room_id, vis)?
            .iter()
            .map(|p| raw(&h.rooms.format_event(p, None)?))
            .collect::<Result<_, _>>()?
    } else {
        lazy_members(
            &h,
            &b.room_id,
            before
                .events
                .iter()
                .chain(&after.events)
                .chain(std::iter::once(&pdu)),
        )?
    };
    Ok(RumaResponse(resp))
}

pub async fn redact(
    State(h): State<Arc<Haven>>,
    r: Ruma<redact_event::v3::Request>,
) -> ApiResult<redact_event::v3::Response> {
    let s = r.session()?;
    let b = &r.body;
    h.rooms.require_joined(&b.room_id, &s.user_id)?;
    let target = h
        .rooms
        .get_pdu(&b.event_id)?
        .filter(|p| p.room_id == b.room_id)
        .ok_or_else(|| Error::not_found("Event not found"))?;
    if target.sender != s.user_id {
        // A suspended account may still take back its own words.
        h.users.require_not_suspended(&s.user_id)?;
    }
    let meta = h.rooms.meta_or_404(&b.room_id)?;
    let rules = crate::rooms::rules_for(&meta.version)?;
    let mut content = json!({});
    if let Some(reason) = &b.reason {
        content["reason"] = json!(reason);
    }
    let mut t = EventTemplate::new("m.room.redaction", content);
    if rules.redaction.content_field_redacts {
        t.content["redacts"] = json!(target.event_id);
    }
    // Room versions before 11 carry it at the top level; later ones also accept both.
    if !rules.redaction.content_field_redacts {
        t.redacts = Some(target.event_id.clone());
    }
    let txn = Some(Transaction {
        device: s.device_id.clone(),
        scope: format!("redact/{}/{}", b.room_id, target.event_id),
        id: b.txn_id.to_string(),
    });
    let pdu = h.rooms.append(&b.room_id, &s.user_id, t, txn).await?;
    Ok(RumaResponse(redact_event::v3::Response::new(
        pdu.event_id.clone(),
    )))
}
