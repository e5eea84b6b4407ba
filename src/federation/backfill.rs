//! Backfill: history older than this server's part of a room, fetched from the room's other
//! servers when a client pages back past it, and served to servers doing the same.

use std::sync::Arc;

use ruma::{OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    events::PduRef,
    rooms::rules_for,
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
    let _guard = h.rooms.backfill_lock(room).await;
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
    let mut view = super::visibility::ServerView::new(h, origin);
    h.rooms
        .history_before(room, from, limit.min(MAX_BATCH))?
        .iter()
        .map(|pdu| view.json(pdu))
        .collect()
}
