//! Simplified sliding sync (MSC4186, the `org.matrix.simplified_msc3575` path Element X uses),
//! as a projection of the /sync engine: the same long-poll and the same per-room data (timeline,
//! state, unread counts, ephemeral events, account data, to-device, device lists), arranged as
//! lists of rooms sorted by recency with ranges, room subscriptions, `required_state` and
//! `timeline_limit`, and the extensions. The position is the stream position; rooms are sent
//! when they changed since it (all selected rooms when there is none). Connection state
//! (remembering which rooms a client already has) is not kept: a room that slides into a range
//! without changing is sent again only with a new connection (no `pos`).

use std::collections::{BTreeMap, BTreeSet};

use ruma::{
    api::client::sync::sync_events::{v3, v5},
    events::StateEventType,
    serde::Raw,
    OwnedRoomId, UInt, UserId,
};
use serde_json::Value;

use super::{parse_token, SyncParams};
use crate::{error::Result, events::client::raw, users::Session, Haven};

/// `(event type, state key)` patterns: `*` for any, `$ME` for the user, `$LAZY` ignored.
fn wanted(required: &[(StateEventType, String)], kind: &str, key: &str, me: &UserId) -> bool {
    required.iter().any(|(t, k)| {
        let t = t.to_string();
        (t == "*" || t == kind) && (k == "*" || k == key || (k == "$ME" && key == me.as_str()))
    })
}

/// Rooms the user is in or invited to, most recently active first: (room, membership, bump).
fn rooms_by_recency(h: &Haven, user: &UserId) -> Result<Vec<(OwnedRoomId, String, u64)>> {
    let mut out = Vec::new();
    for (room, m) in h.rooms.user_rooms(user)? {
        if !matches!(m.membership.as_str(), "join" | "invite") {
            continue;
        }
        let bump = h
            .rooms
            .meta(&room)?
            .map_or(m.pos, |meta| meta.last_pos.max(m.pos));
        out.push((room, m.membership, bump));
    }
    out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Rooms in the user's `m.direct` account data.
fn direct_rooms(h: &Haven, user: &UserId) -> Result<BTreeSet<String>> {
    let v = crate::users::account_data::get(&h.db, user, None, "m.direct")?;
    Ok(v.and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.values()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The room's name: `m.room.name`, else its canonical alias.
fn room_name(h: &Haven, room: &ruma::RoomId) -> Result<Option<String>> {
    if let Some(n) = h.rooms.room_name(room)? {
        return Ok(Some(n));
    }
    Ok(h.rooms
        .current_state(room, &StateEventType::RoomCanonicalAlias, "")?
        .and_then(|e| e.content_value()["alias"].as_str().map(str::to_owned)))
}

pub async fn sync(h: &Haven, s: &Session, req: &v5::Request) -> Result<v5::Response> {
    let user = &s.user_id;
    let since = req.pos.as_deref().map(parse_token).transpose()?;
    // What each selected room asks for: the largest timeline and every required_state pattern.
    let mut details: BTreeMap<OwnedRoomId, (u64, Vec<(StateEventType, String)>)> = BTreeMap::new();
    let all = rooms_by_recency(h, user)?;
    let dms = direct_rooms(h, user)?;
    let mut lists = BTreeMap::new();
    for (name, list) in &req.lists {
        let f = list.filters.as_ref();
        let matching: Vec<&(OwnedRoomId, String, u64)> = all
            .iter()
            .filter(|(room, membership, _)| {
                f.is_none_or(|f| {
                    f.is_dm.is_none_or(|d| d == dms.contains(room.as_str()))
                        && f.is_invite.is_none_or(|i| i == (membership == "invite"))
                })
            })
            .collect();
        let mut counted = v5::response::List::default();
        counted.count = UInt::try_from(matching.len()).unwrap_or_default();
        lists.insert(name.clone(), counted);
        for (start, end) in &list.ranges {
            let (start, end) = (u64::from(*start) as usize, u64::from(*end) as usize);
            for (room, _, _) in matching
                .iter()
                .skip(start)
                .take(end.saturating_sub(start) + 1)
            {
                let d = details.entry(room.clone()).or_default();
                d.0 = d.0.max(u64::from(list.room_details.timeline_limit));
                d.1.extend(list.room_details.required_state.iter().cloned());
            }
        }
    }
    for (room, sub) in &req.room_subscriptions {
        if all.iter().any(|(r, _, _)| r == room) {
            let d = details.entry(room.clone()).or_default();
            d.0 = d.0.max(u64::from(sub.timeline_limit));
            d.1.extend(sub.required_state.iter().cloned());
        }
    }
    let timeline_limit = details
        .values()
        .map(|d| d.0)
        .max()
        .unwrap_or(0)
        .clamp(1, 100);
    let mut filter = ruma::api::client::filter::FilterDefinition::default();
    filter.room.timeline.limit = Some(UInt::from(timeline_limit as u32));
    filter.room.timeline.not_senders = crate::users::account_data::ignored_users(&h.db, user)?;
    let v3 = super::sync(
        h,
        s,
        SyncParams {
            since,
            full_state: false,
            timeout: req.timeout.unwrap_or_default(),
            filter,
        },
    )
    .await?;
    let mut resp = v5::Response::new(v3.next_batch.clone());
    resp.txn_id = req.txn_id.clone();
    resp.lists = lists;
    let bumps: BTreeMap<&OwnedRoomId, u64> = all.iter().map(|(r, _, b)| (r, *b)).collect();
    for (room, (limit, required)) in &details {
        let mut out = v5::response::Room::new();
        out.initial = Some(since.is_none());
        out.bump_stamp = bumps.get(room).and_then(|b| UInt::new(*b));
        out.is_dm = Some(dms.contains(room.as_str()));
        if let Some(inv) = v3.rooms.invite.get(room) {
            out.invite_state = Some(inv.invite_state.events.clone());
            out.name = room_name(h, room)?;
            resp.rooms.insert(room.clone(), out);
            continue;
        }
        let Some(jr) = v3.rooms.join.get(room) else {
            if since.is_some() {
                continue; // unchanged since the client's position
            }
            resp.rooms.insert(room.clone(), out);
            continue;
        };
        out.name = room_name(h, room)?;
        out.unread_notifications = jr.unread_notifications.clone();
        out.joined_count = jr.summary.joined_member_count;
        out.invited_count = jr.summary.invited_member_count;
        let events = &jr.timeline.events;
        let keep = (*limit as usize).min(events.len());
        out.limited = jr.timeline.limited || keep < events.len();
        out.num_live = since.map(|_| UInt::try_from(keep).unwrap_or_default());
        out.timeline = events[events.len() - keep..].to_vec();
        out.prev_batch = jr.timeline.prev_batch.clone();
        // Required state: the current state (on a new connection) or what changed, filtered.
        let state: Vec<Value> = if since.is_none() {
            h.rooms
                .current_state_all(room)?
                .iter()
                .map(|p| h.rooms.format_plain(p))
                .collect::<Result<_>>()?
        } else {
            let changed: &[Raw<ruma::events::AnySyncStateEvent>] = match &jr.state {
                v3::State::Before(s) | v3::State::After(s) => &s.events,
                _ => &[],
            };
            changed
                .iter()
                .chain(events.iter().map(|e| e.cast_ref_unchecked()))
                .filter_map(|e| serde_json::from_str::<Value>(e.json().get()).ok())
                .filter(|e| e.get("state_key").is_some())
                .collect()
        };
        for e in state {
            let (kind, key) = (
                e["type"].as_str().unwrap_or_default(),
                e["state_key"].as_str().unwrap_or_default(),
            );
            if wanted(required, kind, key, user) {
                out.required_state.push(raw(&e)?);
            }
        }
        resp.rooms.insert(room.clone(), out);
    }
    // Extensions.
    let ext = &req.extensions;
    if ext.to_device.enabled == Some(true) {
        let mut td = v5::response::ToDevice::default();
        td.next_batch = v3.next_batch.clone();
        td.events = v3.to_device.events.clone();
        resp.extensions.to_device = Some(td);
    }
    if ext.e2ee.enabled == Some(true) {
        resp.extensions.e2ee.device_lists = v3.device_lists.clone();
        resp.extensions.e2ee.device_one_time_keys_count = v3.device_one_time_keys_count.clone();
        resp.extensions.e2ee.device_unused_fallback_key_types =
            v3.device_unused_fallback_key_types.clone();
    }
    if ext.account_data.enabled == Some(true) {
        resp.extensions.account_data.global = v3.account_data.events.clone();
        for (room, jr) in &v3.rooms.join {
            if !jr.account_data.events.is_empty() {
                resp.extensions
                    .account_data
                    .rooms
                    .insert(room.clone(), jr.account_data.events.clone());
            }
        }
    }
    let receipts = ext.receipts.enabled == Some(true);
    let typing = ext.typing.enabled == Some(true);
    if receipts || typing {
        for (room, jr) in &v3.rooms.join {
            for e in &jr.ephemeral.events {
                let kind = serde_json::from_str::<Value>(e.json().get())
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned));
                match kind.as_deref() {
                    Some("m.receipt") if receipts => {
                        resp.extensions
                            .receipts
                            .rooms
                            .insert(room.clone(), Raw::from_json(e.json().to_owned()));
                    }
                    Some("m.typing") if typing => {
                        resp.extensions
                            .typing
                            .rooms
                            .insert(room.clone(), Raw::from_json(e.json().to_owned()));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(resp)
}
