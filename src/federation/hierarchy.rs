//! Space hierarchies across servers: walking a space for a local user (asking other servers
//! about the rooms this server is not in) and answering other servers' `/hierarchy`.

use std::collections::{HashMap, HashSet, VecDeque};

use ruma::{OwnedRoomId, OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{json, Value};

use crate::{
    error::{Error, Result},
    rooms::hierarchy::Viewer,
    Haven,
};

/// `/hierarchy` for `origin`: the room with its children's events, the children this server
/// has that `origin` may see, and the ones it may not.
pub fn serve(h: &Haven, origin: &ServerName, room: &RoomId, suggested_only: bool) -> Result<Value> {
    let not_found = || Error::not_found("Room not found, or not visible to your server");
    if h.rooms.meta(room)?.is_none() || !h.rooms.may_view(room, Viewer::Server(origin))? {
        return Err(not_found());
    }
    let (children, events) = h.rooms.space_children(room, suggested_only)?;
    let mut entry = h.rooms.summary_entry(room)?;
    entry["children_state"] = json!(events);
    let (mut visible, mut hidden) = (Vec::new(), Vec::new());
    for c in children {
        if h.rooms.meta(&c.room)?.is_none() {
            continue;
        }
        if h.rooms.may_view(&c.room, Viewer::Server(origin))? {
            visible.push(h.rooms.summary_entry(&c.room)?);
        } else {
            hidden.push(c.room);
        }
    }
    Ok(json!({ "room": entry, "children": visible, "inaccessible_children": hidden }))
}

/// What a walk found of one room: its summary (with `children_state`) and its children.
struct Found {
    entry: Value,
    children: Vec<(OwnedRoomId, Vec<OwnedServerName>)>,
}

/// A page of the space tree under `root` as `user` may see it, breadth first: the rooms after
/// the first `skip`, at most `limit`, no deeper than `max_depth`; and whether more follow.
pub async fn walk(
    h: &Haven,
    user: &UserId,
    root: &RoomId,
    suggested_only: bool,
    max_depth: usize,
    skip: usize,
    limit: usize,
) -> Result<(Vec<Value>, bool)> {
    let mut queue: VecDeque<(OwnedRoomId, Vec<OwnedServerName>, usize)> = VecDeque::new();
    queue.push_back((root.to_owned(), Vec::new(), 0));
    let mut seen = HashSet::new();
    // Summaries of rooms learnt from another server's answer about their parent.
    let mut known: HashMap<OwnedRoomId, Value> = HashMap::new();
    let mut out = Vec::new();
    let mut index = 0;
    while let Some((room, via, depth)) = queue.pop_front() {
        if out.len() >= limit {
            queue.push_front((room, via, depth));
            break;
        }
        if !seen.insert(room.clone()) {
            continue;
        }
        let found = match visit(h, user, &room, &via, suggested_only, &mut known).await? {
            Some(f) => f,
            None if room == root => {
                return Err(Error::forbidden("You may not see this room"));
            }
            None => continue,
        };
        if depth < max_depth {
            for (child, via) in found.children {
                queue.push_back((child, via, depth + 1));
            }
        }
        if index >= skip {
            out.push(found.entry);
        }
        index += 1;
    }
    let more = queue.iter().any(|(r, _, _)| !seen.contains(r));
    Ok((out, more))
}

/// One room of a walk: from this server when it is in the room, else from the servers the
/// parent named (or what they said about it with its parent). `None` when `user` may not
/// see it or no server answered.
async fn visit(
    h: &Haven,
    user: &UserId,
    room: &RoomId,
    via: &[OwnedServerName],
    suggested_only: bool,
    known: &mut HashMap<OwnedRoomId, Value>,
) -> Result<Option<Found>> {
    if h.rooms.meta(room)?.is_some() {
        if !h.rooms.may_view(room, Viewer::User(user))? {
            return Ok(None);
        }
        let (children, events) = h.rooms.space_children(room, suggested_only)?;
        let mut entry = h.rooms.summary_entry(room)?;
        entry["children_state"] = json!(events);
        return Ok(Some(Found {
            entry,
            children: children.into_iter().map(|c| (c.room, c.via)).collect(),
        }));
    }
    // A room that is not a space needs no question if its parent's server described it.
    if let Some(entry) = known.get(room) {
        if entry["room_type"] != "m.space" {
            let mut entry = entry.clone();
            if !may_see_remote(h, user, room, &entry)? {
                return Ok(None);
            }
            entry["children_state"] = json!([]);
            return Ok(Some(Found {
                entry,
                children: Vec::new(),
            }));
        }
    }
    let path = format!(
        "/_matrix/federation/v1/hierarchy/{}?suggested_only={suggested_only}",
        crate::util::encode(room.as_str())
    );
    for server in via.iter().filter(|s| **s != h.key.server_name) {
        let answer = match h.federation.get(h, server, &path).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(%room, %server, error = %e, "hierarchy request failed");
                continue;
            }
        };
        let mut entry = answer["room"].clone();
        if entry["room_id"] != room.as_str() || !may_see_remote(h, user, room, &entry)? {
            return Ok(None);
        }
        for c in answer["children"].as_array().into_iter().flatten() {
            if let Some(id) = c["room_id"]
                .as_str()
                .and_then(|r| OwnedRoomId::try_from(r).ok())
            {
                known.insert(id, c.clone());
            }
        }
        let mut children = Vec::new();
        let mut events = Vec::new();
        for e in entry["children_state"].as_array().into_iter().flatten() {
            let child = e["state_key"]
                .as_str()
                .and_then(|r| OwnedRoomId::try_from(r).ok());
            let via = crate::rooms::hierarchy::via_servers(&e["content"]);
            if let (Some(child), false) = (child, via.is_empty()) {
                children.push((child, via));
                events.push(e.clone());
            }
        }
        entry["children_state"] = json!(events);
        return Ok(Some(Found { entry, children }));
    }
    Ok(None)
}

/// Whether `user` may see a room another server described: open rooms, rooms they are a
/// member of, and restricted rooms whose allowed rooms they are in.
fn may_see_remote(h: &Haven, user: &UserId, room: &RoomId, entry: &Value) -> Result<bool> {
    let open = matches!(
        entry["join_rule"].as_str(),
        Some("public" | "knock" | "knock_restricted")
    ) || entry["world_readable"] == true;
    if open
        || h.rooms
            .membership(room, user)?
            .is_some_and(|m| matches!(m.membership.as_str(), "join" | "invite" | "knock"))
    {
        return Ok(true);
    }
    for r in entry["allowed_room_ids"].as_array().into_iter().flatten() {
        let Some(r) = r.as_str().and_then(|r| OwnedRoomId::try_from(r).ok()) else {
            continue;
        };
        if h.rooms
            .membership(&r, user)?
            .is_some_and(|m| m.membership == "join")
        {
            return Ok(true);
        }
    }
    Ok(false)
}
