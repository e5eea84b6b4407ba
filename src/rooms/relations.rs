//! Event relationships: the children of an event (edits, thread replies, references,
//! reactions), the aggregations bundled into `unsigned.m.relations`, and thread listings.

use std::collections::HashMap;

use ruma::{EventId, RoomId, UserId};
use serde_json::{json, Map, Value};

use super::{visibility::Visible, PduRef, Rooms};
use crate::{
    error::{ErrCode, Error, Result},
    storage::prefix,
};

/// One relating event: where it is in the room's stream, its ID and relation type.
#[derive(Debug, Clone)]
pub struct Child {
    pub pos: u64,
    pub event_id: String,
    pub rel_type: String,
}

impl Rooms {
    /// The events relating to `parent`, oldest first (by stream position).
    pub fn children(&self, room: &RoomId, parent: &EventId) -> Result<Vec<Child>> {
        if !self.db.t.has_relations.contains(&parent.to_string())? {
            return Ok(Vec::new());
        }
        let p = [prefix(room.as_str()), prefix(parent.as_str())].concat();
        let mut out = Vec::new();
        for item in self.db.t.relations.scan_prefix(&p) {
            let ((_, _, child), rel_type) = item?;
            if let Some(pos) = self.db.t.event_pos.get(&child)? {
                out.push(Child {
                    pos,
                    event_id: child,
                    rel_type,
                });
            }
        }
        out.sort_by_key(|c| c.pos);
        Ok(out)
    }

    fn child_pdu(&self, c: &Child) -> Result<Option<PduRef>> {
        match EventId::parse(&c.event_id) {
            Ok(id) => self.get_pdu(&id),
            Err(_) => Ok(None),
        }
    }

    /// Whether `sender` already reacted to `parent` with `key` (reactions are unique per
    /// sender and key; redacted ones no longer count).
    pub fn has_annotation(
        &self,
        room: &RoomId,
        parent: &EventId,
        sender: &UserId,
        key: &str,
    ) -> Result<bool> {
        for c in self.children(room, parent)? {
            if c.rel_type != "m.annotation" {
                continue;
            }
            if let Some(p) = self.child_pdu(&c)? {
                let v = p.content_value();
                if p.sender == sender && v["m.relates_to"]["key"] == key {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Refuses a second identical reaction (same sender, target and key), as Synapse does.
    pub(super) fn check_annotation_unique(
        &self,
        room: &RoomId,
        sender: &UserId,
        t: &crate::events::EventTemplate,
    ) -> Result<()> {
        let rel = &t.content["m.relates_to"];
        if t.state_key.is_some() || rel["rel_type"] != "m.annotation" {
            return Ok(());
        }
        let (Some(parent), Some(key)) = (rel["event_id"].as_str(), rel["key"].as_str()) else {
            return Ok(());
        };
        let Ok(parent) = EventId::parse(parent) else {
            return Ok(());
        };
        if self.has_annotation(room, &parent, sender, key)? {
            return Err(Error::bad_request(
                ErrCode::DuplicateAnnotation,
                "You have already reacted with this key",
            ));
        }
        Ok(())
    }

    /// `unsigned.m.relations` for `pdu`: the latest edit (by the original sender), the thread
    /// summary, references. `None` when there is nothing to bundle.
    pub fn bundled(
        &self,
        pdu: &PduRef,
        viewer: Option<&UserId>,
        vis: Option<&Visible>,
    ) -> Result<Option<Value>> {
        let children = self.children(&pdu.room_id, &pdu.event_id)?;
        if children.is_empty() {
            return Ok(None);
        }
        let seen = |c: &Child| vis.is_none_or(|v| v.contains(c.pos));
        let mut out = Map::new();
        let mut latest_edit: Option<PduRef> = None;
        let mut thread: Vec<PduRef> = Vec::new();
        let mut references = Vec::new();
        for c in children.iter().filter(|c| seen(c)) {
            let Some(child) = self.child_pdu(c)? else {
                continue;
            };
            if self.extras(&child.event_id)?.redacted_because.is_some() {
                continue;
            }
            match c.rel_type.as_str() {
                "m.replace"
                    if child.sender == pdu.sender
                        && child.content_value().get("m.new_content").is_some() =>
                {
                    let newer = latest_edit.as_ref().is_none_or(|l| {
                        (l.origin_server_ts, l.event_id.as_str())
                            < (child.origin_server_ts, child.event_id.as_str())
                    });
                    if newer {
                        latest_edit = Some(child);
                    }
                }
                "m.thread" => thread.push(child),
                "m.reference" => references.push(json!({ "event_id": child.event_id })),
                _ => {}
            }
        }
        if let Some(edit) = latest_edit {
            out.insert("m.replace".into(), self.format_plain(&edit)?);
        }
        if let Some(latest) = thread.last() {
            let participated =
                viewer.is_some_and(|v| pdu.sender == v || thread.iter().any(|t| t.sender == v));
            // The latest reply with its own edits bundled, as clients show it.
            let mut latest_event = self.format_plain(latest)?;
            if let Some(Value::Object(b)) = self.bundled(latest, viewer, vis)? {
                if let Some(r) = b.get("m.replace") {
                    latest_event["unsigned"]["m.relations"] = json!({ "m.replace": r });
                }
            }
            out.insert(
                "m.thread".into(),
                json!({
                    "latest_event": latest_event,
                    "count": thread.len(),
                    "current_user_participated": participated,
                }),
            );
        }
        if !references.is_empty() {
            out.insert("m.reference".into(), json!({ "chunk": references }));
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }

    /// Thread roots of `room` with their latest activity, newest activity first; with
    /// `participant`, only threads they wrote in (or started).
    pub fn threads(
        &self,
        room: &RoomId,
        participant: Option<&UserId>,
        vis: &Visible,
    ) -> Result<Vec<(u64, PduRef)>> {
        let mut latest: HashMap<String, u64> = HashMap::new();
        let mut participated: HashMap<String, bool> = HashMap::new();
        for item in self.db.t.relations.scan_prefix(&prefix(room.as_str())) {
            let ((_, parent, child), rel_type) = item?;
            if rel_type != "m.thread" {
                continue;
            }
            let Some(pos) = self.db.t.event_pos.get(&child)? else {
                continue;
            };
            if !vis.contains(pos) {
                continue;
            }
            let e = latest.entry(parent.clone()).or_insert(0);
            *e = (*e).max(pos);
            if let Some(u) = participant {
                if let Ok(id) = EventId::parse(&child) {
                    if self.get_pdu(&id)?.is_some_and(|p| p.sender == u) {
                        participated.insert(parent, true);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (root, at) in latest {
            let Ok(id) = EventId::parse(&root) else {
                continue;
            };
            let Some(pdu) = self.get_pdu(&id)? else {
                continue;
            };
            let Some(root_pos) = self.event_pos(&id)? else {
                continue;
            };
            if !vis.contains(root_pos) {
                continue;
            }
            if let Some(u) = participant {
                if pdu.sender != u && !participated.get(&root).copied().unwrap_or(false) {
                    continue;
                }
            }
            out.push((at, pdu));
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.0));
        Ok(out)
    }
}
