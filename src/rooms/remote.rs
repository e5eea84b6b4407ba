//! Events from other servers entering a room: stored as outliers (auth chains, state fetched
//! for a join), or added to the timeline once their place in the graph is known — checked
//! against their auth events, against the state before them (state resolution where branches
//! merge) and, for soft failure, against the room's current state.

use std::collections::{HashMap, HashSet};

use ruma::{events::StateEventType, room_version_rules::RoomVersionRules, EventId, OwnedEventId};

use super::{rules_for, state::StateMap, Rooms};
use crate::{
    error::{Error, Result},
    events::{auth, Pdu, PduRef},
};

/// What became of a remote event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Already in the room.
    Known,
    /// In the timeline at this stream position (the caller publishes it once durable).
    Timeline(u64),
    /// Allowed by the state before it but not by the current state: stored, not shown.
    SoftFailed,
}

fn to_ruma(map: &StateMap) -> ruma::state_res::StateMap<OwnedEventId> {
    map.iter()
        .map(|((k, s), id)| ((StateEventType::from(k.as_str()), s.clone()), id.clone()))
        .collect()
}

fn from_ruma(map: ruma::state_res::StateMap<OwnedEventId>) -> StateMap {
    map.into_iter()
        .map(|((k, s), id)| ((k.to_string(), s), id))
        .collect()
}

impl Rooms {
    /// Whether this server has the event (in a timeline or as an outlier).
    pub fn has_event(&self, id: &EventId) -> Result<bool> {
        Ok(self.db.t.pdus.contains(&id.to_string())?)
    }

    /// Keeps an event outside any timeline (an auth or state event learnt from elsewhere).
    pub fn store_outlier(&self, pdu: &Pdu) -> Result<()> {
        let id = pdu.event_id.to_string();
        if !self.db.t.pdus.contains(&id)? {
            self.db.t.pdus.put(&id, &pdu.to_bytes()?)?;
        }
        Ok(())
    }

    /// The state after an event whose state is known here (it went through a timeline).
    pub fn state_after_event(&self, id: &EventId) -> Result<Option<StateMap>> {
        let Some(group) = self.db.t.event_state_before.get(&id.to_string())? else {
            return Ok(None);
        };
        let Some(pdu) = self.get_pdu(id)? else {
            return Ok(None);
        };
        let mut map = super::state::load_group(&self.db, group)?;
        if let Some(sk) = &pdu.state_key {
            map.insert((pdu.kind.to_string(), sk.clone()), pdu.event_id.clone());
        }
        Ok(Some(map))
    }

    /// Every event reachable from `ids` through `auth_events` (the ids included).
    pub fn auth_chain<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a OwnedEventId>,
    ) -> Result<HashSet<OwnedEventId>> {
        let mut seen = HashSet::new();
        let mut todo: Vec<OwnedEventId> = ids.into_iter().cloned().collect();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(p) = self.get_pdu(&id)? {
                todo.extend(p.auth_events.iter().filter(|a| !seen.contains(*a)).cloned());
            }
        }
        Ok(seen)
    }

    /// Events on an auth path from one conflicted state event to another (room version 12's
    /// state resolution considers them too).
    fn conflicted_subgraph(
        &self,
        conflicted: &HashSet<OwnedEventId>,
    ) -> Result<HashSet<OwnedEventId>> {
        let ancestors = self.auth_chain(conflicted.iter())?;
        // reaches[x]: some conflicted event is in x's auth chain.
        let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
        fn walk(
            rooms: &Rooms,
            id: &OwnedEventId,
            conflicted: &HashSet<OwnedEventId>,
            memo: &mut HashMap<OwnedEventId, bool>,
        ) -> Result<bool> {
            if let Some(r) = memo.get(id) {
                return Ok(*r);
            }
            memo.insert(id.clone(), false);
            let mut r = false;
            if let Some(p) = rooms.get_pdu(id)? {
                for a in &p.auth_events {
                    if conflicted.contains(a) || walk(rooms, a, conflicted, memo)? {
                        r = true;
                    }
                }
            }
            memo.insert(id.clone(), r);
            Ok(r)
        }
        let mut out = conflicted.clone();
        for id in &ancestors {
            if walk(self, id, conflicted, &mut reaches)? {
                out.insert(id.clone());
            }
        }
        Ok(out)
    }

    /// State resolution (v2, or v2.1 for room version 12) of several states of one room.
    /// `pending`: an event not stored yet that the states may hold (the one being added).
    pub fn resolve_states(
        &self,
        rules: &RoomVersionRules,
        maps: &[StateMap],
        pending: Option<&PduRef>,
    ) -> Result<StateMap> {
        match maps {
            [] => return Ok(StateMap::new()),
            [one] => return Ok(one.clone()),
            [first, rest @ ..] if rest.iter().all(|m| m == first) => return Ok(first.clone()),
            _ => {}
        }
        let v2 = rules
            .state_res
            .v2_rules()
            .ok_or_else(|| Error::internal("room version without state resolution v2"))?;
        let ruma_maps: Vec<_> = maps.iter().map(to_ruma).collect();
        let mut chains = Vec::new();
        for m in maps {
            let mut start: Vec<OwnedEventId> = m.values().cloned().collect();
            if let Some(p) = pending.filter(|p| start.contains(&p.event_id)) {
                start.extend(p.auth_events.iter().cloned());
            }
            chains.push(self.auth_chain(start.iter())?.into_iter().collect());
        }
        let resolved = ruma::state_res::resolve(
            &rules.authorization,
            v2,
            ruma_maps.iter(),
            chains,
            |id| match pending {
                Some(p) if p.event_id == id => Some((**p).clone()),
                _ => self.get_pdu(id).ok().flatten().map(|p| (*p).clone()),
            },
            |conflicted| {
                let ids: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
                self.conflicted_subgraph(&ids)
                    .ok()
                    .map(|s| s.into_iter().collect())
            },
        )
        .map_err(|e| Error::internal(format!("state resolution failed: {e}")))?;
        Ok(from_ruma(resolved))
    }

    /// Adds a verified remote event to its room. `state_before`: the state it applies to when
    /// the caller had to fetch it (a gap in the graph); otherwise it is worked out from the
    /// stored `prev_events`. Rejected events (not authorised by their auth events or by the
    /// state before them) are an error and change nothing.
    pub async fn accept_remote(
        &self,
        pdu: PduRef,
        state_before: Option<StateMap>,
    ) -> Result<Accepted> {
        let room = pdu.room_id.clone();
        let guard = self.room_lock(&room).await;
        if self.db.t.event_pos.contains(&pdu.event_id.to_string())? {
            return Ok(Accepted::Known);
        }
        let meta = self.meta_or_404(&room)?;
        let rules = rules_for(&meta.version)?;
        let fetch = |id: &EventId| self.get_pdu(id).ok().flatten();
        self.check_auth_events(&pdu, &meta, &rules)?;

        // Authorised by the state before it.
        let state_before = match state_before {
            Some(s) => s,
            None => {
                let mut maps = Vec::new();
                for prev in &pdu.prev_events {
                    maps.push(self.state_after_event(prev)?.ok_or_else(|| {
                        Error::forbidden(format!("previous event {prev} is unknown"))
                    })?);
                }
                self.resolve_states(&rules, &maps, None)?
            }
        };
        let lookup = |map: &StateMap, k: &StateEventType, sk: &str| {
            map.get(&(k.to_string(), sk.to_owned()))
                .and_then(|id| self.get_pdu(id).ok().flatten())
        };
        auth::check(&pdu, &rules, fetch, |k, sk| lookup(&state_before, k, sk))?;

        // Soft failure: not allowed by the room as it is now.
        let soft_failed = match auth::check(&pdu, &rules, fetch, |k, sk| {
            self.current_state(&room, k, sk).ok().flatten()
        }) {
            Ok(()) => false,
            Err(e) => {
                tracing::info!(server = %self.server_name(), event = %pdu.event_id, error = %e, "soft-failed: not allowed by the current state");
                true
            }
        };

        let prevs: HashSet<&OwnedEventId> = pdu.prev_events.iter().collect();
        let extremities: HashSet<&OwnedEventId> = meta.forward_extremities.iter().collect();
        let (before, current, new_extremities) = if prevs == extremities {
            (meta.state_group, None, vec![pdu.event_id.clone()])
        } else {
            let before = self.ids.snapshot(&self.db, &state_before)?;
            let mut ext: Vec<OwnedEventId> = meta
                .forward_extremities
                .iter()
                .filter(|e| !prevs.contains(e))
                .cloned()
                .collect();
            ext.push(pdu.event_id.clone());
            let current = if ext.len() == 1 {
                None
            } else {
                let mut after = state_before.clone();
                if let Some(sk) = &pdu.state_key {
                    after.insert((pdu.kind.to_string(), sk.clone()), pdu.event_id.clone());
                }
                let mut maps = vec![after];
                for e in ext.iter().filter(|e| **e != pdu.event_id) {
                    if let Some(m) = self.state_after_event(e)? {
                        maps.push(m);
                    }
                }
                let resolved = self.resolve_states(&rules, &maps, Some(&pdu))?;
                tracing::debug!(
                    server = %self.server_name(),
                    event = %pdu.event_id,
                    forks = maps.len(),
                    "branches merged by state resolution"
                );
                Some(resolved)
            };
            (before, current, ext)
        };
        let extremities = if soft_failed {
            meta.forward_extremities.clone()
        } else {
            new_extremities
        };
        let pos = self
            .persist_remote(
                &pdu,
                before,
                current,
                extremities,
                meta,
                &rules,
                soft_failed,
            )
            .await?;
        drop(guard);
        if soft_failed {
            return Ok(Accepted::SoftFailed);
        }
        self.publish_new(&pdu, pos).await?;
        Ok(Accepted::Timeline(pos))
    }

    /// Whether a remote event is authorised by its own auth events (which must be stored).
    pub fn check_auth_events(
        &self,
        pdu: &Pdu,
        meta: &super::RoomMeta,
        rules: &RoomVersionRules,
    ) -> Result<()> {
        let mut by_auth: HashMap<(StateEventType, String), PduRef> = HashMap::new();
        for id in &pdu.auth_events {
            let a = self
                .get_pdu(id)?
                .ok_or_else(|| Error::forbidden(format!("auth event {id} is unknown")))?;
            if let Some(sk) = &a.state_key {
                by_auth.insert((a.kind.to_string().into(), sk.clone()), a);
            }
        }
        // Room version 12 leaves the create event out of auth_events: it is the room's.
        if let Some(create) = self.get_pdu(&meta.create_event_id)? {
            by_auth
                .entry((StateEventType::RoomCreate, String::new()))
                .or_insert(create);
        }
        auth::check(
            pdu,
            rules,
            |id| self.get_pdu(id).ok().flatten(),
            |k, sk| by_auth.get(&(k.clone(), sk.to_owned())).cloned(),
        )
    }

    /// The state before an event whose state is known here.
    pub fn state_before_event(&self, id: &EventId) -> Result<Option<StateMap>> {
        match self.db.t.event_state_before.get(&id.to_string())? {
            Some(group) => Ok(Some(super::state::load_group(&self.db, group)?)),
            None => Ok(None),
        }
    }

    /// Builds the room on this server from the state another server sent with a local user's
    /// join (`send_join`): the state becomes the room's, and the join its first timeline event.
    pub async fn join_from_state(
        &self,
        version: ruma::RoomVersionId,
        state: Vec<PduRef>,
        join: PduRef,
    ) -> Result<()> {
        let room = join.room_id.clone();
        let _guard = self.room_lock(&room).await;
        let rules = rules_for(&version)?;
        let mut map = StateMap::new();
        for p in &state {
            if p.room_id != room {
                return Err(Error::bad_json("state of another room"));
            }
            if let Some(sk) = &p.state_key {
                map.insert((p.kind.to_string(), sk.clone()), p.event_id.clone());
            }
        }
        let create = map
            .get(&("m.room.create".to_owned(), String::new()))
            .cloned()
            .ok_or_else(|| Error::bad_json("the room's state has no create event"))?;
        auth::check(
            &join,
            &rules,
            |id| self.get_pdu(id).ok().flatten(),
            |k, sk| {
                map.get(&(k.to_string(), sk.to_owned()))
                    .and_then(|id| self.get_pdu(id).ok().flatten())
            },
        )?;
        if self.meta(&room)?.is_some() {
            // Already here (another local user joined meanwhile): an ordinary remote event.
            drop(_guard);
            self.accept_remote(join, Some(map)).await?;
            return Ok(());
        }
        let mut meta = super::RoomMeta {
            version,
            create_event_id: create,
            forward_extremities: join.prev_events.clone(),
            max_depth: u64::from(join.depth).saturating_sub(1),
            state_group: 0,
            last_pos: 0,
            event_count: 0,
        };
        let mut commit = self.stream.begin(&self.db).await;
        let pos = crate::storage::blocking(|| {
            let first = commit.allocate()?;
            self.set_current_state(&room, &map, first, &mut meta)?;
            let pos = commit.allocate()?;
            self.write_event(&join, None, pos, &mut meta, &rules)?;
            self.db
                .t
                .rooms
                .put(&room.to_string(), &crate::storage::Json(meta))?;
            self.db
                .t
                .remote_invites
                .remove(&(join.sender.to_string(), room.to_string()))?;
            Ok::<_, Error>(pos)
        })?;
        drop(_guard);
        self.publish_new(&join, pos).await
    }

    /// A local user's invite to, or knock on, a room this server is not in (membership from
    /// the event): kept with the room's state as the other server sent it (shown to the user),
    /// the server to answer through, and the room version to check what comes later.
    pub async fn record_remote_pending(
        &self,
        event: &Pdu,
        user: &ruma::UserId,
        via: &ruma::ServerName,
        version: &ruma::RoomVersionId,
        state: Vec<serde_json::Value>,
    ) -> Result<()> {
        self.store_outlier(event)?;
        let membership = event.content_str("membership").unwrap_or_default();
        let stored = serde_json::json!({
            "via": via,
            "room_version": version,
            "invite_state": state,
        });
        self.set_remote_membership(
            &event.room_id,
            user,
            &membership,
            &event.event_id,
            Some(stored),
        )
        .await
    }

    /// A local user's pending invite to, or knock on, a room this server is not in.
    pub fn remote_invite(
        &self,
        user: &ruma::UserId,
        room: &ruma::RoomId,
    ) -> Result<Option<serde_json::Value>> {
        Ok(self
            .db
            .t
            .remote_invites
            .get(&(user.to_string(), room.to_string()))?
            .map(|j| j.0))
    }
}

impl Rooms {
    /// Events preceding `latest` (not included) back to `earliest` (excluded) and no deeper
    /// than `min_depth`, newest found first, at most `limit`, returned oldest first: what a
    /// server missed.
    pub fn events_between(
        &self,
        room: &ruma::RoomId,
        earliest: &[OwnedEventId],
        latest: &[OwnedEventId],
        limit: usize,
        min_depth: u64,
    ) -> Result<Vec<PduRef>> {
        let stop: HashSet<&OwnedEventId> = earliest.iter().collect();
        let mut seen: HashSet<OwnedEventId> = latest.iter().cloned().collect();
        let mut queue: std::collections::VecDeque<OwnedEventId> = std::collections::VecDeque::new();
        for id in latest {
            if let Some(p) = self.get_pdu(id)? {
                queue.extend(p.prev_events.iter().cloned());
            }
        }
        let mut out = Vec::new();
        while let Some(id) = queue.pop_front() {
            if out.len() >= limit {
                break;
            }
            if stop.contains(&id) || !seen.insert(id.clone()) {
                continue;
            }
            let Some(p) = self.get_pdu(&id)? else {
                continue;
            };
            if p.room_id != room || u64::from(p.depth) < min_depth {
                continue;
            }
            queue.extend(p.prev_events.iter().cloned());
            out.push(p);
        }
        out.sort_by_key(|p| u64::from(p.depth));
        Ok(out)
    }

    /// A refused invite from another server: the user's membership becomes the leave event
    /// (kept as an outlier) and the invite is forgotten.
    pub async fn forget_remote_invite(&self, leave: &Pdu, user: &ruma::UserId) -> Result<()> {
        self.store_outlier(leave)?;
        self.set_remote_membership(&leave.room_id, user, "leave", &leave.event_id, None)
            .await
    }

    /// An invite refused here only (its server unreachable).
    pub async fn drop_remote_invite(&self, room: &ruma::RoomId, user: &ruma::UserId) -> Result<()> {
        let Some(m) = self
            .db
            .t
            .user_rooms
            .get(&(user.to_string(), room.to_string()))?
        else {
            return Ok(());
        };
        self.set_remote_membership(room, user, "leave", &m.0.event_id, None)
            .await
    }

    /// A local user's membership in a room this server is not in (an invite from another
    /// server, or its refusal), with what is kept of the invite; published to their syncs.
    async fn set_remote_membership(
        &self,
        room: &ruma::RoomId,
        user: &ruma::UserId,
        membership: &str,
        event: &EventId,
        invite: Option<serde_json::Value>,
    ) -> Result<()> {
        let key = (user.to_string(), room.to_string());
        let pos = {
            let mut c = self.stream.begin(&self.db).await;
            let pos = c.allocate()?;
            match invite {
                Some(v) => self
                    .db
                    .t
                    .remote_invites
                    .put(&key, &crate::storage::Json(v))?,
                None => self.db.t.remote_invites.remove(&key)?,
            }
            let rec = super::MemberRecord {
                membership: membership.into(),
                event_id: event.to_owned(),
                pos,
            };
            self.db.t.user_rooms.put(&key, &crate::storage::Json(rec))?;
            pos
        };
        self.db.durable().await?;
        self.stream
            .publish_to(pos, &[crate::stream::Topic::User(user.to_owned())]);
        Ok(())
    }
}
