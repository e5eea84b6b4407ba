//! Rooms as an admin sees them: all of them with their sizes, one in detail, and blocking (no
//! local user may join a blocked room again).

use ruma::{OwnedRoomId, RoomId};
use serde_json::{json, Value};

use crate::{
    error::{Error, Result},
    Haven,
};

/// One room: its names, version, creator, sizes, publication and block.
pub fn room_view(h: &Haven, room: &RoomId) -> Result<Value> {
    let meta = h.rooms.meta_or_404(room)?;
    let entry = h.rooms.directory_entry(room)?;
    let members = h.rooms.members(room)?;
    let joined = members
        .iter()
        .filter(|(_, m)| m.membership == "join")
        .count();
    let local = members
        .iter()
        .filter(|(u, m)| m.membership == "join" && u.server_name() == h.config.server_name)
        .count();
    let creator = h
        .rooms
        .get_pdu(&meta.create_event_id)?
        .map(|p| p.sender.to_string());
    Ok(json!({
        "room_id": room,
        "name": entry.get("name"),
        "canonical_alias": entry.get("canonical_alias"),
        "topic": entry.get("topic"),
        "room_type": entry.get("room_type"),
        "join_rule": entry.get("join_rule"),
        "version": meta.version,
        "creator": creator,
        "joined_members": joined,
        "joined_local_members": local,
        "members": members.len(),
        "events": meta.event_count,
        "public": h.rooms.is_published(room)?,
        "blocked": is_blocked(h, room)?,
    }))
}

/// Every room this server is in, after `from` (a room ID), at most `limit`.
pub fn list(h: &Haven, from: Option<&str>, limit: usize) -> Result<(Vec<Value>, Option<String>)> {
    let mut out = Vec::new();
    let mut last = None;
    for item in h.db.t.rooms.scan_prefix(&[]) {
        let (id, _) = item?;
        if from.is_some_and(|f| id.as_str() <= f) {
            continue;
        }
        let Ok(room) = OwnedRoomId::try_from(id.clone()) else {
            continue;
        };
        out.push(room_view(h, &room)?);
        last = Some(id);
        if out.len() >= limit {
            break;
        }
    }
    let next = (out.len() == limit).then_some(last).flatten();
    Ok((out, next))
}

pub fn is_blocked(h: &Haven, room: &RoomId) -> Result<bool> {
    Ok(h.db.t.blocked_rooms.contains(&room.to_string())?)
}

/// Blocks (or unblocks) a room: local users cannot join it or be invited to it.
pub fn set_blocked(h: &Haven, room: &RoomId, blocked: bool) -> Result<()> {
    if blocked {
        h.db.t.blocked_rooms.put(&room.to_string(), &())?;
    } else {
        h.db.t.blocked_rooms.remove(&room.to_string())?;
    }
    Ok(())
}

/// Refuses an action on a blocked room.
pub fn require_not_blocked(h: &Haven, room: &RoomId) -> Result<()> {
    if is_blocked(h, room)? {
        Err(Error::forbidden(
            "This room has been blocked by the server's administrators",
        ))
    } else {
        Ok(())
    }
}

/// The room's current state events, in the client format.
pub fn state(h: &Haven, room: &RoomId) -> Result<Vec<Value>> {
    h.rooms.meta_or_404(room)?;
    h.rooms
        .current_state_all(room)?
        .iter()
        .map(|p| h.rooms.format_event(p, None))
        .collect()
}

/// Everyone with a membership in the room, and which.
pub fn members(h: &Haven, room: &RoomId) -> Result<Vec<Value>> {
    h.rooms.meta_or_404(room)?;
    Ok(h.rooms
        .members(room)?
        .into_iter()
        .map(|(u, m)| json!({ "user_id": u, "membership": m.membership }))
        .collect())
}

/// Deletes a room with its history (the admin API's room deletion, retention's purge), and
/// makes it gone from disk: its search postings go too, then the database is rewritten (writers
/// wait meanwhile), since removed records otherwise stay in old pages until overwritten.
pub async fn delete(h: &Haven, room: &RoomId) -> Result<crate::rooms::purge::Purged> {
    // Members leave first; appservices (a bridge forgetting the conversation) must get those
    // leave events before the events are gone, so their delivery is waited for (a while).
    let left = h.rooms.make_all_leave(room).await?;
    let pos = h.stream.current();
    if !crate::appservice::sender::wait_taken_up(h, pos, APPSERVICE_WAIT).await? {
        tracing::warn!(%room, "an appservice did not take up the leave events before the purge");
    }
    let mut purged = h.rooms.purge(room).await?;
    purged.kicked_users.extend(left);
    erase(h, room).await?;
    Ok(purged)
}

/// How long a room deletion waits for appservices to take up its leave events.
const APPSERVICE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes a room's history before `before_ms`, gone from disk as [`delete`] does it.
pub async fn purge_history(h: &Haven, room: &RoomId, before_ms: u64) -> Result<u64> {
    let removed = h.rooms.purge_history(room, before_ms).await?;
    if removed > 0 {
        erase(h, room).await?;
    }
    Ok(removed)
}

async fn erase(h: &Haven, room: &RoomId) -> Result<()> {
    let postings = crate::search::forget_gone(h, room)?;
    h.db.durable().await?;
    let db = h.db.clone();
    let started = std::time::Instant::now();
    let kept = tokio::task::spawn_blocking(move || db.compact())
        .await
        .map_err(crate::error::Error::internal)??;
    tracing::info!(
        %room,
        postings,
        kept,
        ms = started.elapsed().as_millis() as u64,
        "purged data erased from disk (database rewritten)"
    );
    Ok(())
}
