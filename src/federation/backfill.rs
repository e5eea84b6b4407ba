//! Backfill: history older than this server's part of a room, fetched from the room's other
//! servers when a client pages back past it, and served to servers doing the same.

use std::sync::Arc;

use ruma::{events::StateEventType, OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    events::PduRef,
    rooms::{rules_for, state::StateMap},
    Haven,
};

/// Most events asked of a server at once.
const MAX_BATCH: usize = 100;
/// Most missing events named in one request.
const MAX_FROM: usize = 20;

/// Fetches up to about `want` events older than what the room has, from the first of its
/// servers that sends any; answers how many were new. Nothing new when the room's creation
/// was reached or no server answered.
pub async fn fetch_older(h: &Haven, room: &RoomId, want: usize) -> Result<usize> {
    let lock = h.rooms.backfill_lock(room);
    let _guard = lock.lock().await;
    let edge = h.rooms.backfill_edge(room)?;
    if edge.complete() {
        return Ok(0);
    }
    let meta = h.rooms.meta_or_404(room)?;
    let servers = h.rooms.outbox.room_servers(&h.rooms, room, None)?;
    let limit = want.clamp(10, MAX_BATCH);
    let from: Vec<String> = edge
        .missing
        .iter()
        .take(MAX_FROM)
        .map(|id| format!("v={}", crate::util::encode(id.as_str())))
        .collect();
    let path = format!(
        "/_matrix/federation/v1/backfill/{}?limit={limit}&{}",
        crate::util::encode(room.as_str()),
        from.join("&")
    );
    for server in servers.iter().filter(|s| !h.federation.backing_off(s)) {
        let answer = match h.federation.get(h, server, &path).await {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(%room, %server, error = %e, "backfill request failed");
                continue;
            }
        };
        let checked = check_batch(h, server, room, &meta, &answer).await?;
        let added = crate::storage::blocking(|| h.rooms.add_backfilled(room, checked))?;
        h.db.durable().await?;
        tracing::debug!(%room, %server, added, "backfilled");
        if added > 0 {
            return Ok(added);
        }
    }
    Ok(0)
}

/// The events of a `/backfill` answer that are of the room, correctly signed and hashed, and
/// authorised by their auth events (fetched from `server` when missing); oldest checked first
/// so that later ones find their auth events among them.
async fn check_batch(
    h: &Haven,
    server: &ServerName,
    room: &RoomId,
    meta: &crate::rooms::RoomMeta,
    answer: &Value,
) -> Result<Vec<PduRef>> {
    let rules = rules_for(&meta.version)?;
    let mut events = Vec::new();
    for raw in answer["pdus"].as_array().into_iter().flatten() {
        let raw = serde_json::value::to_raw_value(raw).map_err(Error::internal)?;
        match super::pdu::check(h, &meta.version, &raw).await {
            Ok(p) if p.room_id == room => events.push(Arc::new(p)),
            Ok(_) => tracing::info!(%server, "backfill sent an event of another room"),
            Err(e) => tracing::info!(%server, error = %e, "backfilled event refused"),
        }
    }
    events.sort_by_key(|p| p.depth);
    let mut ok = Vec::new();
    for pdu in events {
        let checked = async {
            super::receive::fetch_auth_events(h, server, &meta.version, &pdu).await?;
            h.rooms.check_auth_events(&pdu, meta, &rules)?;
            h.rooms.store_outlier(&pdu)
        }
        .await;
        match checked {
            Ok(()) => ok.push(pdu),
            Err(e) => {
                tracing::info!(%server, event = %pdu.event_id, error = %e, "backfilled event refused")
            }
        }
    }
    Ok(ok)
}

/// `/backfill` for `origin`: the events `from` and their predecessors, newest first. Events
/// the room's history visibility hides from that server are sent redacted.
pub fn serve(
    h: &Haven,
    origin: &ServerName,
    room: &RoomId,
    from: &[OwnedEventId],
    limit: usize,
) -> Result<Vec<Value>> {
    let meta = h.rooms.meta_or_404(room)?;
    let rules = rules_for(&meta.version)?;
    let mut out = Vec::new();
    // Events share the state they follow: one decision per state group.
    let mut by_group: std::collections::HashMap<Option<u64>, bool> = Default::default();
    for pdu in h.rooms.history_before(room, from, limit.min(MAX_BATCH))? {
        let group = h.db.t.event_state_before.get(&pdu.event_id.to_string())?;
        let visible = match by_group.get(&group) {
            Some(v) => *v,
            None => {
                let v = visible_to_server(h, &pdu, origin)?;
                by_group.insert(group, v);
                v
            }
        };
        if visible {
            out.push(super::membership::pdu_json(&pdu)?);
        } else {
            let redacted = ruma::canonical_json::redact(pdu.canonical()?, &rules.redaction, None)
                .map_err(Error::internal)?;
            out.push(serde_json::to_value(redacted).map_err(Error::internal)?);
        }
    }
    Ok(out)
}

/// Whether the room's history visibility at `pdu` lets `server` see it: always for `shared`
/// and `world_readable`, else only if one of its users was a member then (joined, or invited
/// for `invited`). Without the state at the event (history this server backfilled itself),
/// the room's current state decides.
fn visible_to_server(h: &Haven, pdu: &PduRef, server: &ServerName) -> Result<bool> {
    let state: StateMap = match h.rooms.state_before_event(&pdu.event_id)? {
        Some(s) => s,
        None => {
            crate::rooms::state::load_group(&h.db, h.rooms.meta_or_404(&pdu.room_id)?.state_group)?
        }
    };
    let get = |kind: &StateEventType, sk: &str| -> Result<Option<PduRef>> {
        match state.get(&(kind.to_string(), sk.to_owned())) {
            Some(id) => h.rooms.get_pdu(id),
            None => Ok(None),
        }
    };
    let visibility = get(&StateEventType::RoomHistoryVisibility, "")?
        .and_then(|p| p.content_str("history_visibility"))
        .unwrap_or_else(|| "shared".to_owned());
    if matches!(visibility.as_str(), "shared" | "world_readable") {
        return Ok(true);
    }
    let suffix = format!(":{server}");
    for ((kind, sk), id) in &state {
        if kind != "m.room.member" || !sk.ends_with(&suffix) {
            continue;
        }
        let membership = h
            .rooms
            .get_pdu(id)?
            .and_then(|p| p.content_str("membership"))
            .unwrap_or_default();
        if membership == "join" || (membership == "invite" && visibility == "invited") {
            return Ok(true);
        }
    }
    Ok(false)
}
