//! Content an admin looks after: reported events and rooms, uploaded media (listed by user,
//! quarantined, deleted), redacted originals for support and legal review, and server notices.

use ruma::{EventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{json, Map, Value};

use crate::{
    error::{Error, Result},
    rooms::create::{CreateRoom, Preset},
    storage::Json,
    Haven,
};

/// Reports, oldest first; only the unresolved ones unless `all`.
pub fn reports(h: &Haven, all: bool) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for item in h.db.t.reports.scan_prefix(&[]) {
        let ((room, id), Json(mut r)) = item?;
        if !all && r.get("resolved").is_some_and(|v| !v.is_null()) {
            continue;
        }
        r["id"] = json!(id);
        r["room_id"] = json!(room);
        out.push(r);
    }
    out.sort_by_key(|r| r["id"].as_u64());
    Ok(out)
}

/// Marks a report resolved (by whom, when, how).
pub fn resolve_report(h: &Haven, id: u64, by: &UserId, note: Option<String>) -> Result<Value> {
    for item in h.db.t.reports.scan_prefix(&[]) {
        let ((room, n), Json(mut r)) = item?;
        if n != id {
            continue;
        }
        r["resolved"] = json!({ "by": by, "ts": crate::util::now_ms(), "note": note });
        h.db.t.reports.put(&(room.clone(), n), &Json(r.clone()))?;
        r["id"] = json!(n);
        r["room_id"] = json!(room);
        return Ok(r);
    }
    Err(Error::not_found("No such report"))
}

/// A user's uploads.
pub fn media_of(h: &Haven, user: &UserId) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for item in h.db.t.media.scan_prefix(&[]) {
        let (id, Json(m)) = item?;
        if m.uploader == user {
            out.push(json!({
                "media_id": id,
                "content_uri": format!("mxc://{}/{id}", h.config.server_name),
                "size": m.size,
                "content_type": m.content_type,
                "filename": m.filename,
                "created_ms": m.created_ms,
                "quarantined": h.db.t.quarantined_media.contains(&id)?,
            }));
        }
    }
    Ok(out)
}

/// Quarantines (or releases) an upload: while quarantined nobody can download it.
pub fn set_quarantined(h: &Haven, media_id: &str, quarantined: bool) -> Result<()> {
    let id = media_id.to_owned();
    if !h.db.t.media.contains(&id)? {
        return Err(Error::not_found("No such media"));
    }
    if quarantined {
        h.db.t.quarantined_media.put(&id, &())?;
    } else {
        h.db.t.quarantined_media.remove(&id)?;
    }
    Ok(())
}

pub fn is_quarantined(h: &Haven, media_id: &str) -> Result<bool> {
    Ok(h.db.t.quarantined_media.contains(&media_id.to_owned())?)
}

/// Deletes an upload: its record, and its file when no other upload shares the content.
pub fn delete_media(h: &Haven, media_id: &str) -> Result<()> {
    let id = media_id.to_owned();
    let Some(Json(rec)) = h.db.t.media.get(&id)? else {
        return Err(Error::not_found("No such media"));
    };
    h.db.t.media.remove(&id)?;
    h.db.t.quarantined_media.remove(&id)?;
    let shared =
        h.db.t
            .media
            .scan_prefix(&[])
            .filter_map(|i| i.ok())
            .any(|(_, Json(m))| m.sha256 == rec.sha256);
    if !shared {
        h.media.remove_content(&rec.sha256)?;
    }
    Ok(())
}

/// An event as it was sent, even if it was redacted since (support and legal review).
pub fn original_event(h: &Haven, event: &EventId) -> Result<Value> {
    let key = event.to_string();
    let (bytes, redacted) = match h.db.t.redacted_originals.get(&key)? {
        Some(b) => (b, true),
        None => (
            h.db.t
                .pdus
                .get(&key)?
                .ok_or_else(|| Error::not_found("No such event"))?,
            false,
        ),
    };
    let pdu: Value = serde_json::from_slice(&bytes).map_err(Error::internal)?;
    Ok(json!({
        "event_id": event,
        "redacted": redacted,
        "redacted_because": h.rooms.extras(event)?.redacted_because,
        "original": pdu,
    }))
}

/// The server's notices account (created on first use).
fn notices_user(h: &Haven) -> Result<OwnedUserId> {
    h.users.user_id_for("server-notices")
}

/// Sends a server notice to a local user, in their notices room (created, and tagged
/// `m.server_notice`, the first time).
pub async fn send_notice(h: &Haven, user: &UserId, content: Value) -> Result<Value> {
    if user.server_name() != h.config.server_name || !h.users.exists(user)? {
        return Err(Error::not_found("No such local user"));
    }
    if !content.is_object() || !content["body"].is_string() {
        return Err(Error::bad_json(
            "A notice's content is an object with a string body",
        ));
    }
    let sender = notices_user(h)?;
    if !h.users.exists(&sender)? {
        h.users.create(&sender, None, false).await?;
        h.users
            .set_profile(&sender, Some(Some("Server Notices".into())), None)?;
    }
    let key = user.to_string();
    let existing = h.db.t.notice_rooms.get(&key)?.and_then(|r| {
        OwnedRoomId::try_from(r)
            .ok()
            .filter(|r| h.rooms.meta(r).ok().flatten().is_some())
    });
    let room = match existing {
        Some(r) => r,
        None => {
            let req = CreateRoom {
                version: h.config.rooms.default_version.clone(),
                preset: Preset::PrivateChat,
                creation_content: Map::new(),
                power_level_override: None,
                initial_state: Vec::new(),
                name: Some("Server Notices".into()),
                topic: None,
                alias: None,
                invite: vec![user.to_owned()],
                is_direct: false,
                creator_profile: h.users.member_profile(&sender)?,
                invite_profiles: Default::default(),
            };
            let room = h.rooms.create_room(&sender, req).await?;
            h.db.t.notice_rooms.put(&key, &room.to_string())?;
            crate::users::account_data::set(
                &h.db,
                &h.stream,
                user,
                Some(&room),
                "m.tag",
                json!({ "tags": { "m.server_notice": { "order": 0.5 } } }),
            )
            .await?;
            room
        }
    };
    let mut content = content;
    if content.get("msgtype").is_none() {
        content["msgtype"] = json!("m.server_notice");
    }
    let pdu = h
        .rooms
        .append(
            &room,
            &sender,
            crate::events::EventTemplate::new("m.room.message", content),
            None,
        )
        .await?;
    Ok(json!({ "room_id": room, "event_id": pdu.event_id }))
}
