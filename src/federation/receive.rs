//! Receiving from other servers: each PDU of a transaction verified, its missing auth events
//! and predecessors fetched from the sending server, then handed to the room
//! ([`crate::rooms::Rooms::accept_remote`]); EDUs applied for the users of the server that
//! sent them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ruma::{EventId, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::{json, value::RawValue, Value};

use crate::{
    error::{Error, Result},
    events::PduRef,
    rooms::{remote::Accepted, state::StateMap},
    Haven,
};

/// Events fetched at most to fill one gap in a room's graph.
const MAX_MISSING: u64 = 20;
/// Auth events fetched at most for one event.
const MAX_AUTH_FETCH: usize = 200;

/// The room a raw PDU names.
fn room_of(raw: &RawValue) -> Result<OwnedRoomId> {
    #[derive(serde::Deserialize)]
    struct R {
        room_id: OwnedRoomId,
    }
    serde_json::from_str::<R>(raw.get())
        .map(|r| r.room_id)
        .map_err(|_| Error::bad_json("PDU without a valid room_id"))
}

/// Processes the PDUs and EDUs of a transaction from `origin`; per-PDU results.
pub async fn transaction(
    h: &Haven,
    origin: &ServerName,
    txn_id: &str,
    pdus: &[Box<RawValue>],
    edus: &[Value],
) -> Result<BTreeMap<OwnedEventId, Result<(), String>>> {
    let key = (origin.to_string(), txn_id.to_owned());
    let _one_at_a_time = h.federation.inbound_txns.lock(&key).await;
    if h.db.t.federation_txns.contains(&key)? {
        return Ok(BTreeMap::new());
    }
    tracing::debug!(%origin, txn_id, pdus = pdus.len(), edus = edus.len(), "transaction received");
    let mut results = BTreeMap::new();
    for raw in pdus {
        let outcome = async {
            let room = room_of(raw)?;
            let Some(meta) = h.rooms.meta(&room)? else {
                return outside_room(h, origin, &room, raw).await;
            };
            let pdu = Arc::new(super::pdu::check(h, &meta.version, raw).await?);
            let id = pdu.event_id.clone();
            if !acl_allows(h, &room, origin)? {
                return Ok((
                    id,
                    Err("the room's server ACL denies this server".to_owned()),
                ));
            }
            Ok::<_, Error>((id, handle(h, origin, &meta.version, pdu).await.map(|_| ())))
        }
        .await;
        tracing::debug!(%origin, ?outcome, "PDU handled");
        match outcome {
            Ok((id, Ok(()))) => {
                results.insert(id, Ok(()));
            }
            Ok((id, Err(e))) => {
                results.insert(id, Err(e));
            }
            Err(e) => {
                // Without a valid event ID there is nothing to answer about.
                let id = super::pdu::parse(raw).ok().and_then(|o| {
                    let room = room_of(raw).ok()?;
                    let v = h.rooms.meta(&room).ok().flatten()?.version;
                    super::pdu::event_id(&o, &v).ok()
                });
                if let Some(id) = id {
                    results.insert(id, Err(e.to_string()));
                }
            }
        }
    }
    for edu in edus {
        if let Err(e) = apply_edu(h, origin, edu).await {
            tracing::debug!(%origin, error = %e, "EDU ignored");
        }
    }
    h.db.t.federation_txns.put(&key, &())?;
    Ok(results)
}

/// An event of a room this server is not in: only a refusal, by a user of `origin`, of a
/// local user's pending invite or knock (a rescinded invite, a denied knock) is taken.
async fn outside_room(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    raw: &RawValue,
) -> Result<(OwnedEventId, Result<(), String>)> {
    #[derive(serde::Deserialize)]
    struct Member {
        #[serde(rename = "type")]
        kind: String,
        state_key: Option<String>,
    }
    let not_here = || Error::not_found(format!("this server is not in room {room}"));
    let m: Member = serde_json::from_str(raw.get()).map_err(|_| Error::bad_json("not an event"))?;
    let user = m
        .state_key
        .filter(|_| m.kind == "m.room.member")
        .and_then(|s| UserId::parse(s).ok())
        .filter(|u| u.server_name() == h.key.server_name)
        .ok_or_else(not_here)?;
    let pending = h.rooms.remote_invite(&user, room)?.ok_or_else(not_here)?;
    let version: RoomVersionId =
        serde_json::from_value(pending["room_version"].clone()).map_err(|_| not_here())?;
    let pdu = super::pdu::check(h, &version, raw).await?;
    if h.rooms.has_event(&pdu.event_id)? {
        // The invite itself, which came by `/invite` first.
        return Ok((pdu.event_id, Ok(())));
    }
    let refusal = matches!(
        pdu.content_str("membership").as_deref(),
        Some("leave" | "ban")
    );
    if !refusal || pdu.sender.server_name() != origin {
        return Ok((
            pdu.event_id,
            Err("this server is only told of refused invites and knocks".to_owned()),
        ));
    }
    h.rooms.forget_remote_invite(&pdu, &user).await?;
    Ok((pdu.event_id.clone(), Ok(())))
}

/// A verified PDU into its room: auth events and predecessors fetched first when missing.
pub async fn handle(
    h: &Haven,
    origin: &ServerName,
    version: &RoomVersionId,
    pdu: PduRef,
) -> Result<Accepted, String> {
    let run = async {
        if h.db.t.event_pos.contains(&pdu.event_id.to_string())? {
            return Ok(Accepted::Known);
        }
        fetch_auth_events(h, origin, version, &pdu).await?;
        let mut state_before = None;
        if !prevs_known(h, &pdu)? {
            fill_gap(h, origin, version, &pdu).await?;
            if !prevs_known(h, &pdu)? {
                state_before = Some(state_at_prevs(h, origin, version, &pdu).await?);
            }
        }
        h.rooms.accept_remote(pdu, state_before).await
    };
    run.await.map_err(|e: Error| e.to_string())
}

fn prevs_known(h: &Haven, pdu: &PduRef) -> Result<bool> {
    for p in &pdu.prev_events {
        if h.db.t.event_state_before.get(&p.to_string())?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Fetches one event from `origin` and verifies it.
pub async fn fetch_event(
    h: &Haven,
    origin: &ServerName,
    version: &RoomVersionId,
    id: &EventId,
) -> Result<PduRef> {
    let v = h
        .federation
        .get(
            h,
            origin,
            &format!(
                "/_matrix/federation/v1/event/{}",
                crate::util::encode(id.as_str())
            ),
        )
        .await?;
    let raw = v["pdus"]
        .get(0)
        .ok_or_else(|| Error::not_found(format!("{origin} did not send event {id}")))?;
    let raw = serde_json::value::to_raw_value(raw).map_err(Error::internal)?;
    let pdu = super::pdu::check(h, version, &raw).await?;
    if pdu.event_id != id {
        return Err(Error::forbidden(format!(
            "{origin} sent another event for {id}"
        )));
    }
    Ok(Arc::new(pdu))
}

/// Makes sure the event's auth events (and theirs) are stored, fetching them from `origin`.
pub(super) async fn fetch_auth_events(
    h: &Haven,
    origin: &ServerName,
    version: &RoomVersionId,
    pdu: &PduRef,
) -> Result<()> {
    let mut todo: Vec<OwnedEventId> = pdu.auth_events.clone();
    let mut fetched = 0;
    while let Some(id) = todo.pop() {
        if h.rooms.has_event(&id)? {
            continue;
        }
        fetched += 1;
        if fetched > MAX_AUTH_FETCH {
            return Err(Error::forbidden("too many missing auth events"));
        }
        let ev = fetch_event(h, origin, version, &id).await?;
        todo.extend(ev.auth_events.iter().cloned());
        h.rooms.store_outlier(&ev)?;
    }
    Ok(())
}

/// Asks `origin` for the events between what this server has and `pdu`, and adds them oldest
/// first.
async fn fill_gap(
    h: &Haven,
    origin: &ServerName,
    version: &RoomVersionId,
    pdu: &PduRef,
) -> Result<()> {
    let meta = h.rooms.meta_or_404(&pdu.room_id)?;
    // Only what is newer than this server's part of the room, not the history before it.
    let mut min_depth = u64::MAX;
    for e in &meta.forward_extremities {
        if let Some(p) = h.rooms.get_pdu(e)? {
            min_depth = min_depth.min(u64::from(p.depth));
        }
    }
    let min_depth = if min_depth == u64::MAX { 0 } else { min_depth };
    let body = json!({
        "limit": MAX_MISSING,
        "min_depth": min_depth,
        "earliest_events": meta.forward_extremities,
        "latest_events": [pdu.event_id],
    });
    let path = format!(
        "/_matrix/federation/v1/get_missing_events/{}",
        crate::util::encode(pdu.room_id.as_str())
    );
    let Ok(v) = h.federation.post(h, origin, &path, &body).await else {
        return Ok(());
    };
    let mut events = Vec::new();
    for raw in v["events"].as_array().into_iter().flatten() {
        let raw = serde_json::value::to_raw_value(raw).map_err(Error::internal)?;
        if let Ok(p) = super::pdu::check(h, version, &raw).await {
            events.push(Arc::new(p));
        }
    }
    events.sort_by_key(|p| u64::from(p.depth));
    events.retain(|p| u64::from(p.depth) >= min_depth);
    for ev in events {
        if h.db.t.event_pos.contains(&ev.event_id.to_string())? {
            continue;
        }
        fetch_auth_events(h, origin, version, &ev).await?;
        if prevs_known(h, &ev)? {
            if let Err(e) = h.rooms.accept_remote(ev.clone(), None).await {
                tracing::info!(event = %ev.event_id, error = %e, "missing event refused");
            }
        }
    }
    Ok(())
}

/// The state before `pdu` when its predecessors are unknown here: the state after each one,
/// asked of `origin` (`/state_ids` plus the events this server lacks), resolved.
async fn state_at_prevs(
    h: &Haven,
    origin: &ServerName,
    version: &RoomVersionId,
    pdu: &PduRef,
) -> Result<StateMap> {
    let mut maps = Vec::new();
    for prev in &pdu.prev_events {
        if let Some(m) = h.rooms.state_after_event(prev)? {
            maps.push(m);
            continue;
        }
        let path = format!(
            "/_matrix/federation/v1/state_ids/{}?event_id={}",
            crate::util::encode(pdu.room_id.as_str()),
            crate::util::encode(prev.as_str())
        );
        let v = h.federation.get(h, origin, &path).await?;
        let mut ids: Vec<OwnedEventId> = Vec::new();
        for key in ["pdu_ids", "auth_chain_ids"] {
            for id in v[key].as_array().into_iter().flatten() {
                if let Some(id) = id.as_str().and_then(|s| EventId::parse(s).ok()) {
                    ids.push(id);
                }
            }
        }
        for id in &ids {
            if !h.rooms.has_event(id)? {
                let ev = fetch_event(h, origin, version, id).await?;
                h.rooms.store_outlier(&ev)?;
            }
        }
        let prev_ev = match h.rooms.get_pdu(prev)? {
            Some(p) => p,
            None => {
                let p = fetch_event(h, origin, version, prev).await?;
                h.rooms.store_outlier(&p)?;
                p
            }
        };
        let mut map = StateMap::new();
        for id in v["pdu_ids"].as_array().into_iter().flatten() {
            let Some(id) = id.as_str().and_then(|s| EventId::parse(s).ok()) else {
                continue;
            };
            if let Some(ev) = h.rooms.get_pdu(&id)? {
                if let Some(sk) = &ev.state_key {
                    map.insert((ev.kind.to_string(), sk.clone()), id);
                }
            }
        }
        if let Some(sk) = &prev_ev.state_key {
            map.insert(
                (prev_ev.kind.to_string(), sk.clone()),
                prev_ev.event_id.clone(),
            );
        }
        maps.push(map);
    }
    let rules = crate::rooms::rules_for(version)?;
    h.rooms.resolve_states(&rules, &maps, None)
}

/// Whether the room's `m.room.server_acl` lets `server` take part.
pub fn acl_allows(h: &Haven, room: &RoomId, server: &ServerName) -> Result<bool> {
    h.rooms.server_allowed(room, server)
}

/// Applies an EDU from `origin`, only for users of that server.
async fn apply_edu(h: &Haven, origin: &ServerName, edu: &Value) -> Result<()> {
    let own = |u: &str| -> Option<ruma::OwnedUserId> {
        UserId::parse(u).ok().filter(|u| u.server_name() == origin)
    };
    let content = &edu["content"];
    match edu["edu_type"].as_str().unwrap_or_default() {
        "m.typing" => {
            let (Some(room), Some(user)) = (
                content["room_id"]
                    .as_str()
                    .and_then(|r| RoomId::parse(r).ok()),
                content["user_id"].as_str().and_then(own),
            ) else {
                return Ok(());
            };
            if !h.rooms.is_joined(&room, &user)? || !acl_allows(h, &room, origin)? {
                return Ok(());
            }
            let typing = content["typing"].as_bool().unwrap_or(false);
            h.rooms
                .typing
                .set(&room, &user, typing.then_some(Duration::from_secs(30)))
                .await?;
        }
        "m.receipt" => {
            for (room, kinds) in content.as_object().into_iter().flatten() {
                let Ok(room) = RoomId::parse(room) else {
                    continue;
                };
                if !acl_allows(h, &room, origin)? {
                    continue;
                }
                for (user, r) in kinds["m.read"].as_object().into_iter().flatten() {
                    let Some(user) = own(user) else { continue };
                    let thread = r["data"]["thread_id"].as_str().map(str::to_owned);
                    for id in r["event_ids"].as_array().into_iter().flatten() {
                        if let Some(id) = id.as_str().and_then(|s| EventId::parse(s).ok()) {
                            if h.rooms.is_joined(&room, &user)? && h.rooms.has_event(&id)? {
                                h.rooms
                                    .set_receipt(&room, &user, "m.read", &id, thread.clone())
                                    .await?;
                            }
                        }
                    }
                }
            }
        }
        "m.device_list_update" => {
            super::devices::receive_device_list_update(h, origin, content).await?;
        }
        "m.direct_to_device" => super::devices::receive_to_device(h, origin, content).await?,
        "m.presence" => super::announce::receive_presence(h, origin, content).await?,
        _ => {}
    }
    Ok(())
}
