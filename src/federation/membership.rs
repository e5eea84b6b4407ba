//! Joins and invites across servers: serving `make_join`/`send_join` and `invite` to other
//! servers, and doing the same of them for local users (joining a room this server is not in,
//! inviting someone from another server).

use std::sync::Arc;

use axum::http::StatusCode;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId,
    RoomVersionId, ServerName, UserId,
};
use serde_json::{json, value::RawValue, Map, Value};

use crate::{
    error::{ErrCode, Error, Result},
    events::{
        auth,
        builder::{self, EventTemplate, GraphFields},
        Pdu, PduRef,
    },
    rooms::{rules_for, SUPPORTED_VERSIONS},
    Haven,
};

/// Whether `server` has a member in the room (joined, or invited when `invited_ok`).
pub fn server_in_room(
    h: &Haven,
    room: &RoomId,
    server: &ServerName,
    invited_ok: bool,
) -> Result<bool> {
    Ok(h.rooms.members(room)?.iter().any(|(u, m)| {
        u.server_name() == server
            && (m.membership == "join" || (invited_ok && m.membership == "invite"))
    }))
}

/// The room and its rules, refusing servers the room's ACL denies.
fn room_for(h: &Haven, room: &RoomId, origin: &ServerName) -> Result<crate::rooms::RoomMeta> {
    let meta = h
        .rooms
        .meta(room)?
        .ok_or_else(|| Error::not_found("This server is not in that room"))?;
    if !super::receive::acl_allows(h, room, origin)? {
        return Err(Error::forbidden("The room's server ACL denies your server"));
    }
    Ok(meta)
}

/// `make_join`: an unsigned join event for `user` of `origin`, on top of the room's newest
/// events, if the room would let them join.
pub fn make_join(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    user: &UserId,
    versions: &[RoomVersionId],
) -> Result<(RoomVersionId, CanonicalJsonObject)> {
    make_membership(h, origin, room, user, versions, "join")
}

/// `make_knock`: an unsigned knock for `user` of `origin`, if the room takes knocks.
pub fn make_knock(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    user: &UserId,
    versions: &[RoomVersionId],
) -> Result<(RoomVersionId, CanonicalJsonObject)> {
    make_membership(h, origin, room, user, versions, "knock")
}

fn make_membership(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    user: &UserId,
    versions: &[RoomVersionId],
    membership: &str,
) -> Result<(RoomVersionId, CanonicalJsonObject)> {
    if user.server_name() != origin {
        return Err(Error::forbidden("The user is not on the requesting server"));
    }
    let meta = room_for(h, room, origin)?;
    let supported = if versions.is_empty() {
        vec![RoomVersionId::V1]
    } else {
        versions.to_vec()
    };
    if !supported.contains(&meta.version) {
        return Err(Error::Matrix {
            status: StatusCode::BAD_REQUEST,
            code: ErrCode::IncompatibleRoomVersion,
            message: format!("The room is version {}", meta.version),
            extra: Some(json!({ "room_version": meta.version })),
        });
    }
    let mut content = Map::new();
    content.insert("membership".into(), json!(membership));
    if membership == "join" {
        if let Some(voucher) = h.rooms.restricted_join_voucher(room, user)? {
            content.insert("join_authorised_via_users_server".into(), json!(voucher));
        }
    }
    let t = EventTemplate::state("m.room.member", user.as_str(), Value::Object(content));
    let obj = template_for(h, room, &meta, user, &t)?;
    Ok((meta.version, obj))
}

/// An unsigned event of `sender` on top of the room's current state and newest events, which
/// the room's rules would allow (checked with a throwaway signature).
fn template_for(
    h: &Haven,
    room: &RoomId,
    meta: &crate::rooms::RoomMeta,
    sender: &UserId,
    t: &EventTemplate,
) -> Result<CanonicalJsonObject> {
    let rules = rules_for(&meta.version)?;
    let kind = ruma::events::TimelineEventType::from(t.kind.as_str());
    let content_raw = serde_json::value::to_raw_value(&t.content).map_err(Error::internal)?;
    let mut auth_events = Vec::new();
    for (k, sk) in auth::auth_types(&kind, sender, t.state_key.as_deref(), &content_raw, &rules)? {
        if let Some(p) = h.rooms.current_state(room, &k, &sk)? {
            auth_events.push(p.event_id.clone());
        }
    }
    let room_id = room.to_owned();
    let sender = sender.to_owned();
    let graph = || GraphFields {
        room_id: Some(&room_id),
        sender: &sender,
        prev_events: meta.forward_extremities.clone(),
        auth_events: auth_events.clone(),
        depth: meta.max_depth + 1,
    };
    let trial = builder::build_pdu(t, graph(), &rules, &h.key)?;
    auth::check(
        &trial,
        &rules,
        |id| h.rooms.get_pdu(id).ok().flatten(),
        |k, sk| h.rooms.current_state(room, k, sk).ok().flatten(),
    )?;
    builder::unsigned_pdu(t, graph())
}

/// `send_join`: the signed join of a user of `origin` enters the room; answers the state
/// before it and its auth chain.
pub async fn send_join(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    event_id: &ruma::EventId,
    raw: &RawValue,
) -> Result<Value> {
    let meta = room_for(h, room, origin)?;
    let rules = rules_for(&meta.version)?;
    let mut obj = super::pdu::parse(raw)?;
    // A restricted join vouched for by a user of this server carries our signature too.
    let voucher = match obj.get("content") {
        Some(CanonicalJsonValue::Object(c)) => match c.get("join_authorised_via_users_server") {
            Some(CanonicalJsonValue::String(v)) => UserId::parse(v.as_str()).ok(),
            _ => None,
        },
        _ => None,
    };
    if voucher
        .as_ref()
        .is_some_and(|v| v.server_name() == h.key.server_name)
    {
        ruma::signatures::sign_event(
            h.key.server_name.as_str(),
            &h.key.pair,
            &mut obj,
            &rules.redaction,
        )
        .map_err(Error::internal)?;
    }
    let pdu = Arc::new(super::pdu::check_object(h, &meta.version, obj).await?);
    accept_own_membership(h, origin, room, event_id, &meta.version, &pdu, "join").await?;

    let before = h
        .rooms
        .state_before_event(&pdu.event_id)?
        .ok_or_else(|| Error::internal("joined event without state"))?;
    let mut state = Vec::new();
    for id in before.values() {
        if let Some(p) = h.rooms.get_pdu(id)? {
            state.push(pdu_json(&p)?);
        }
    }
    let mut chain_ids = h
        .rooms
        .auth_chain(before.values().chain(pdu.auth_events.iter()))?;
    for id in before.values() {
        chain_ids.remove(id);
    }
    let mut auth_chain = Vec::new();
    for id in chain_ids {
        if let Some(p) = h.rooms.get_pdu(&id)? {
            auth_chain.push(pdu_json(&p)?);
        }
    }
    let servers: std::collections::BTreeSet<String> = h
        .rooms
        .joined_members(room)?
        .iter()
        .map(|u| u.server_name().to_string())
        .collect();
    Ok(json!({
        "origin": h.key.server_name,
        "state": state,
        "auth_chain": auth_chain,
        "event": pdu_json(&pdu)?,
        "members_omitted": false,
        "servers_in_room": servers,
    }))
}

/// `send_knock`: the signed knock of a user of `origin` enters the room; answers the room's
/// identifying state for the knocker.
pub async fn send_knock(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    event_id: &ruma::EventId,
    raw: &RawValue,
) -> Result<Vec<Value>> {
    let meta = room_for(h, room, origin)?;
    let pdu = Arc::new(super::pdu::check(h, &meta.version, raw).await?);
    accept_own_membership(h, origin, room, event_id, &meta.version, &pdu, "knock").await?;
    invite_state_pdus(h, room)
}

/// Knocks on a room this server is not in, through the first of `via` that takes it; the
/// knock is kept, with the state the room's server sent, until an invite or a refusal.
pub async fn knock_remote(
    h: &Haven,
    room: &RoomId,
    user: &OwnedUserId,
    via: &[OwnedServerName],
    profile: Map<String, Value>,
    reason: Option<String>,
) -> Result<()> {
    let mut extra = profile;
    if let Some(r) = reason {
        extra.insert("reason".into(), json!(r));
    }
    let mut last = Error::not_found("No known room with this ID, and no server to ask for it");
    for server in via.iter().filter(|s| **s != h.key.server_name) {
        match handshake(h, room, user, server, "knock", extra.clone()).await {
            Ok((version, knock, resp)) => {
                let sent: Vec<Value> = resp["knock_room_state"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let state = strip_received_state(h, room, &version, &sent).await;
                return h
                    .rooms
                    .record_remote_pending(&knock, user, server, &version, state)
                    .await;
            }
            Err(e) => {
                tracing::info!(%room, %server, error = %e, "remote knock failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// The room's identifying state as full PDUs, as invites and knocks carry it between servers.
fn invite_state_pdus(h: &Haven, room: &RoomId) -> Result<Vec<Value>> {
    h.rooms
        .invite_state_events(room)?
        .iter()
        .map(|p| pdu_json(p))
        .collect()
}

/// The room state another server sent with an invite or a knock answer, as clients get it:
/// PDUs that are not correctly signed or not of the room are dropped; stripped events from
/// servers older than Matrix 1.16 are kept as they are.
async fn strip_received_state(
    h: &Haven,
    room: &RoomId,
    version: &RoomVersionId,
    sent: &[Value],
) -> Vec<Value> {
    let mut out = Vec::new();
    for e in sent {
        let is_pdu = ["auth_events", "prev_events", "signatures", "hashes"]
            .iter()
            .any(|k| e.get(k).is_some());
        if !is_pdu {
            if e["type"].is_string() && e["sender"].is_string() && e["content"].is_object() {
                out.push(e.clone());
            }
            continue;
        }
        let Ok(raw) = serde_json::value::to_raw_value(e) else {
            continue;
        };
        match super::pdu::check(h, version, &raw).await {
            Ok(p) if p.room_id == room && p.state_key.is_some() => {
                out.push(crate::events::client::stripped_state(&p));
            }
            Ok(_) => {}
            Err(err) => tracing::info!(%room, error = %err, "invite/knock state event dropped"),
        }
    }
    out
}

/// A stored PDU as the JSON other servers get.
pub fn pdu_json(p: &Pdu) -> Result<Value> {
    serde_json::from_str(p.json.get()).map_err(Error::internal)
}

/// `invite` (v2): a user of this server is invited by `origin` to a room; we sign the invite
/// and keep it (with the room's stripped state) until the user answers.
pub async fn receive_invite(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    event_id: &ruma::EventId,
    version: &RoomVersionId,
    raw: &RawValue,
    invite_state: Vec<Value>,
) -> Result<Value> {
    if !SUPPORTED_VERSIONS.contains(version) {
        return Err(Error::Matrix {
            status: StatusCode::BAD_REQUEST,
            code: ErrCode::IncompatibleRoomVersion,
            message: format!("This server does not support room version {version}"),
            extra: Some(json!({ "room_version": version })),
        });
    }
    let rules = rules_for(version)?;
    let obj = super::pdu::parse(raw)?;
    let pdu = super::pdu::check_object(h, version, obj.clone()).await?;
    let target = pdu
        .state_key
        .as_deref()
        .and_then(|s| UserId::parse(s).ok())
        .ok_or_else(|| Error::bad_json("An invite needs a state key"))?;
    let valid = pdu.event_id == event_id
        && pdu.room_id == room
        && pdu.kind.to_string() == "m.room.member"
        && pdu.content_str("membership").as_deref() == Some("invite")
        && pdu.sender.server_name() == origin
        && target.server_name() == h.key.server_name;
    if !valid {
        return Err(Error::bad_json("Not an invite of a user of this server"));
    }
    if !h.users.exists(&target)? {
        return Err(Error::not_found("No such user here"));
    }
    let mut signed = obj;
    ruma::signatures::sign_event(
        h.key.server_name.as_str(),
        &h.key.pair,
        &mut signed,
        &rules.redaction,
    )
    .map_err(Error::internal)?;
    let signed_pdu = Pdu::from_json(pdu.event_id.clone(), signed.clone())?;
    if h.rooms.meta(room)?.is_none() {
        let invite_state = strip_received_state(h, room, version, &invite_state).await;
        h.rooms
            .record_remote_pending(&signed_pdu, &target, origin, version, invite_state)
            .await?;
    }
    serde_json::to_value(&signed).map_err(Error::internal)
}

/// Joins a local user to a room this server is not in, through the first of `via` that
/// answers: `make_join`, sign, `send_join`, then the room is built from the state it sends.
pub async fn join_remote(
    h: &Haven,
    room: &RoomId,
    user: &OwnedUserId,
    via: &[OwnedServerName],
    profile: Map<String, Value>,
    reason: Option<String>,
) -> Result<()> {
    if via.is_empty() {
        return Err(Error::not_found(
            "No known room with this ID, and no server to ask for it",
        ));
    }
    // A server's refusal (403, 404...) is passed on; if none could be reached, the room is
    // unknown as far as this server can tell.
    let mut refused = None;
    let mut unreachable = Vec::new();
    for server in via.iter().filter(|s| **s != h.key.server_name) {
        match join_through(h, room, user, server, profile.clone(), reason.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::info!(%room, %server, error = %e, "remote join failed");
                match &e {
                    Error::Matrix { status, .. } if *status == StatusCode::BAD_GATEWAY => {
                        unreachable.push(server.to_string());
                    }
                    _ => refused = Some(e),
                }
            }
        }
    }
    Err(refused.unwrap_or_else(|| {
        Error::not_found(format!(
            "No known room with this ID; no server that could have it answered ({})",
            unreachable.join(", ")
        ))
    }))
}

/// The two-step membership handshake with a resident server: `make_<kind>` for a template,
/// our fields and signature, then `send_<kind>` (v2). Answers the room version, the signed
/// event and the server's answer.
async fn handshake(
    h: &Haven,
    room: &RoomId,
    user: &OwnedUserId,
    server: &ServerName,
    kind: &str,
    extra: Map<String, Value>,
) -> Result<(RoomVersionId, Pdu, Value)> {
    let vers: String = SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("&ver={v}"))
        .collect();
    let path = format!(
        "/_matrix/federation/v1/make_{kind}/{}/{}?{}",
        crate::util::encode(room.as_str()),
        crate::util::encode(user.as_str()),
        vers.trim_start_matches('&')
    );
    let made = h.federation.get(h, server, &path).await?;
    let version: RoomVersionId = serde_json::from_value(made["room_version"].clone())
        .map_err(|_| Error::bad_json(format!("make_{kind} answer without room_version")))?;
    let rules = rules_for(&version)?;
    let mut obj: CanonicalJsonObject = serde_json::from_value(made["event"].clone())
        .map_err(|_| Error::bad_json(format!("make_{kind} answer without an event")))?;
    // Our fields: sender and state key must be the user; the content gets ours.
    let ok = matches!(obj.get("sender"), Some(CanonicalJsonValue::String(s)) if s == user.as_str())
        && matches!(obj.get("state_key"), Some(CanonicalJsonValue::String(s)) if s == user.as_str());
    if !ok {
        return Err(Error::bad_json(format!(
            "make_{kind} answered an event for someone else"
        )));
    }
    if let Some(CanonicalJsonValue::Object(c)) = obj.get_mut("content") {
        for (k, v) in extra {
            c.insert(k, builder::to_canonical(v)?);
        }
        c.insert("membership".into(), CanonicalJsonValue::String(kind.into()));
    }
    obj.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(
            ruma::Int::try_from(crate::util::now_ms()).map_err(Error::internal)?,
        ),
    );
    obj.remove("hashes");
    obj.remove("signatures");
    let event = builder::sign_pdu(obj, &rules, &h.key)?;
    // send_knock never had a v2.
    let api = if kind == "knock" { "v1" } else { "v2" };
    let path = format!(
        "/_matrix/federation/{api}/send_{kind}/{}/{}",
        crate::util::encode(room.as_str()),
        crate::util::encode(event.event_id.as_str())
    );
    let body: Value = serde_json::from_str(event.json.get()).map_err(Error::internal)?;
    let resp = h.federation.put(h, server, &path, &body).await?;
    Ok((version, event, resp))
}

async fn join_through(
    h: &Haven,
    room: &RoomId,
    user: &OwnedUserId,
    server: &ServerName,
    profile: Map<String, Value>,
    reason: Option<String>,
) -> Result<()> {
    let mut extra = profile;
    if let Some(r) = reason {
        extra.insert("reason".into(), json!(r));
    }
    let (version, join, resp) = handshake(h, room, user, server, "join", extra).await?;
    // The joined event as the resident server countersigned it (restricted joins).
    let join = match resp.get("event") {
        Some(e) if !e.is_null() => {
            let raw = serde_json::value::to_raw_value(e).map_err(Error::internal)?;
            let p = super::pdu::check(h, &version, &raw).await?;
            if p.event_id != join.event_id {
                return Err(Error::bad_json("send_join answered another event"));
            }
            p
        }
        _ => join,
    };
    let mut state = Vec::new();
    for key in ["auth_chain", "state"] {
        for e in resp[key].as_array().into_iter().flatten() {
            let raw = serde_json::value::to_raw_value(e).map_err(Error::internal)?;
            let p = Arc::new(super::pdu::check(h, &version, &raw).await?);
            h.rooms.store_outlier(&p)?;
            if key == "state" {
                state.push(p);
            }
        }
    }
    h.rooms
        .join_from_state(version, state, Arc::new(join))
        .await?;
    Ok(())
}

/// Refuses an invite to a room this server is not in, through the inviting server
/// (`make_leave` / `send_leave`), and forgets the invite.
pub async fn reject_remote_invite(
    h: &Haven,
    room: &RoomId,
    user: &OwnedUserId,
    reason: Option<String>,
) -> Result<()> {
    let via = join_candidates(h, room, user, &[])?;
    let mut extra = Map::new();
    if let Some(r) = reason {
        extra.insert("reason".into(), json!(r));
    }
    let mut last = Error::not_found("No invite to this room");
    for server in via.iter().filter(|s| **s != h.key.server_name) {
        match handshake(h, room, user, server, "leave", extra.clone()).await {
            Ok((_, leave, _)) => {
                return h.rooms.forget_remote_invite(&leave, user).await;
            }
            Err(e) => last = e,
        }
    }
    // The inviting server cannot be reached: the invite is still refused here.
    if h.rooms.remote_invite(user, room)?.is_some() {
        tracing::info!(%room, error = %last, "invite refused locally only");
        return h.rooms.drop_remote_invite(room, user).await;
    }
    Err(last)
}

/// `make_leave`: an unsigned leave event for a user of `origin` (to refuse an invite or leave).
pub fn make_leave(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    user: &UserId,
) -> Result<(RoomVersionId, CanonicalJsonObject)> {
    if user.server_name() != origin {
        return Err(Error::forbidden("The user is not on the requesting server"));
    }
    let meta = room_for(h, room, origin)?;
    let t = EventTemplate::state(
        "m.room.member",
        user.as_str(),
        json!({ "membership": "leave" }),
    );
    let obj = template_for(h, room, &meta, user, &t)?;
    Ok((meta.version, obj))
}

/// `send_leave`: the signed leave of a user of `origin` enters the room.
pub async fn send_leave(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    event_id: &ruma::EventId,
    raw: &RawValue,
) -> Result<()> {
    let meta = room_for(h, room, origin)?;
    let pdu = Arc::new(super::pdu::check(h, &meta.version, raw).await?);
    accept_own_membership(h, origin, room, event_id, &meta.version, &pdu, "leave").await
}

/// A user of `origin` joining or leaving through `send_*`: the event must be theirs, of that
/// membership, for this room; it enters the room and goes to the room's other servers.
async fn accept_own_membership(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    event_id: &ruma::EventId,
    version: &RoomVersionId,
    pdu: &PduRef,
    membership: &str,
) -> Result<()> {
    let own = pdu.event_id == event_id
        && pdu.room_id == room
        && pdu.kind.to_string() == "m.room.member"
        && pdu.content_str("membership").as_deref() == Some(membership)
        && pdu.state_key.as_deref() == Some(pdu.sender.as_str())
        && pdu.sender.server_name() == origin;
    if !own {
        return Err(Error::bad_json(format!(
            "Not a {membership} event of a user of your server for this room"
        )));
    }
    super::receive::handle(h, origin, version, pdu.clone())
        .await
        .map_err(Error::forbidden)?;
    // The other servers in the room learn of it; the sending one has it.
    let mut dests = h.rooms.outbox.room_servers(&h.rooms, room, None)?;
    dests.remove(origin);
    let woken = h.rooms.outbox.enqueue(
        &dests,
        &super::sender::Queued::Pdu(pdu.event_id.to_string()),
    )?;
    h.db.durable().await?;
    h.rooms.outbox.wake(woken);
    Ok(())
}

/// Invites a user of another server: the invite is built here, signed by their server
/// through `invite` (v2), and only then added to the room.
pub async fn invite_remote(
    h: &Haven,
    room: &RoomId,
    sender: &OwnedUserId,
    target: &UserId,
    reason: Option<String>,
) -> Result<PduRef> {
    let mut content = Map::new();
    content.insert("membership".into(), json!("invite"));
    if let Some(r) = reason {
        content.insert("reason".into(), json!(r));
    }
    let t = EventTemplate::state("m.room.member", target.as_str(), Value::Object(content));
    let room_id: OwnedRoomId = room.to_owned();
    h.rooms
        .append_countersigned(
            room,
            sender,
            t,
            |pdu: PduRef, version: RoomVersionId| async move {
                let body = json!({
                    "room_version": version,
                    "event": pdu_json(&pdu)?,
                    "invite_room_state": invite_state_pdus(h, &room_id)?,
                });
                let path = format!(
                    "/_matrix/federation/v2/invite/{}/{}",
                    crate::util::encode(room_id.as_str()),
                    crate::util::encode(pdu.event_id.as_str())
                );
                let resp = h
                    .federation
                    .put(h, target.server_name(), &path, &body)
                    .await?;
                let raw =
                    serde_json::value::to_raw_value(&resp["event"]).map_err(Error::internal)?;
                let signed = super::pdu::check(h, &version, &raw).await?;
                if signed.event_id != pdu.event_id {
                    return Err(Error::bad_json("The invited server answered another event"));
                }
                Ok(Arc::new(signed))
            },
        )
        .await
}

/// Servers worth asking to join a room: those named by the client, the server of whoever
/// invited the user, and the one in the room ID (before version 12).
pub fn join_candidates(
    h: &Haven,
    room: &RoomId,
    user: &UserId,
    named: &[OwnedServerName],
) -> Result<Vec<OwnedServerName>> {
    let mut out: Vec<OwnedServerName> = named.to_vec();
    if let Some(inv) = h.rooms.remote_invite(user, room)? {
        if let Some(s) = inv["via"].as_str().and_then(|s| ServerName::parse(s).ok()) {
            out.push(s);
        }
    }
    if let Some(s) = room.server_name() {
        out.push(s.to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    Ok(out)
}
