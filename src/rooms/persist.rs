//! Writing accepted events: the timeline, state groups, current state, membership indexes and
//! redactions, in an order that leaves the database consistent at any crash point (the
//! timeline entry and room metadata are written last).

use ruma::{events::TimelineEventType, room_version_rules::RoomVersionRules};
use serde::Deserialize;

use super::{EventExtras, MemberRecord, RoomMeta, Rooms};
use crate::{
    error::{Error, Result},
    events::Pdu,
    storage::Json,
};

#[derive(Deserialize)]
struct Relates {
    #[serde(rename = "m.relates_to")]
    relates_to: Option<RelatesTo>,
}

#[derive(Deserialize)]
struct RelatesTo {
    rel_type: Option<String>,
    event_id: Option<String>,
}

impl Rooms {
    /// Persists `pdus` in order as the room's newest events and returns the stream position of
    /// the last one. The caller holds the room lock and publishes the position once durable.
    pub(crate) async fn persist(
        &self,
        pdus: Vec<super::PendingEvent>,
        mut meta: RoomMeta,
        rules: &RoomVersionRules,
    ) -> Result<u64> {
        let mut commit = self.stream.begin(&self.db).await;
        crate::storage::blocking(|| {
            let mut last = 0;
            for (pdu, txn) in &pdus {
                let pos = commit.allocate()?;
                self.write_event(pdu, txn.clone(), pos, &mut meta, rules)?;
                last = pos;
            }
            self.db
                .t
                .rooms
                .put(&pdus[0].0.room_id.to_string(), &Json(meta))?;
            Ok(last)
        })
    }

    /// Persists a checked remote event as the room's newest: on the state group `before`
    /// (the state it applies to); the room's current state becomes `current` when forks merged,
    /// and follows the event when `current` is `None` and the event extends the current state.
    /// A soft-failed event is only stored: not in the timeline, not an extremity, no state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn persist_remote(
        &self,
        pdu: &Pdu,
        before: u64,
        current: Option<super::state::StateMap>,
        extremities: Vec<ruma::OwnedEventId>,
        mut meta: RoomMeta,
        rules: &RoomVersionRules,
        soft_failed: bool,
    ) -> Result<u64> {
        if soft_failed {
            crate::storage::blocking(|| {
                self.db
                    .t
                    .pdus
                    .put(&pdu.event_id.to_string(), &pdu.to_bytes()?)?;
                self.db
                    .t
                    .event_state_before
                    .put(&pdu.event_id.to_string(), &before)?;
                Ok::<_, Error>(())
            })?;
            return Ok(meta.last_pos);
        }
        let mut commit = self.stream.begin(&self.db).await;
        crate::storage::blocking(|| {
            let pos = commit.allocate()?;
            let linear = current.is_none() && before == meta.state_group;
            self.write_event_on(
                pdu,
                None,
                pos,
                &mut meta,
                rules,
                (!linear).then_some(before),
            )?;
            if let Some(map) = current {
                self.set_current_state(&pdu.room_id, &map, pos, &mut meta)?;
            } else if !linear {
                let mut map = super::state::load_group(&self.db, before)?;
                if let Some(sk) = &pdu.state_key {
                    map.insert((pdu.kind.to_string(), sk.clone()), pdu.event_id.clone());
                }
                self.set_current_state(&pdu.room_id, &map, pos, &mut meta)?;
            }
            meta.forward_extremities = extremities;
            self.db.t.rooms.put(&pdu.room_id.to_string(), &Json(meta))?;
            Ok(pos)
        })
    }

    /// Makes `map` the room's current state: changed entries and memberships rewritten, a new
    /// state group recorded.
    pub(crate) fn set_current_state(
        &self,
        room: &ruma::RoomId,
        map: &super::state::StateMap,
        pos: u64,
        meta: &mut RoomMeta,
    ) -> Result<()> {
        let t = &self.db.t;
        let r = room.to_string();
        let mut old = super::state::StateMap::new();
        for item in t
            .current_state
            .scan_prefix(&crate::storage::prefix(r.as_str()))
        {
            let ((_, kind, sk), id) = item?;
            old.insert(
                (kind, sk),
                ruma::EventId::parse(id).map_err(Error::internal)?,
            );
        }
        for ((kind, sk), id) in map {
            if old.get(&(kind.clone(), sk.clone())) == Some(id) {
                continue;
            }
            t.current_state
                .put(&(r.clone(), kind.clone(), sk.clone()), &id.to_string())?;
            if kind == "m.room.member" {
                if let Some(ev) = self.get_pdu(id)? {
                    let membership = ev.content_str("membership").unwrap_or_default();
                    self.index_membership(&r, sk, membership, id, pos)?;
                }
            }
        }
        for key in old.keys().filter(|k| !map.contains_key(*k)) {
            t.current_state
                .remove(&(r.clone(), key.0.clone(), key.1.clone()))?;
        }
        meta.state_group = self.ids.snapshot(&self.db, map)?;
        Ok(())
    }

    /// Records a user's membership in the room and user indexes.
    fn index_membership(
        &self,
        room: &str,
        user: &str,
        membership: String,
        event_id: &ruma::EventId,
        pos: u64,
    ) -> Result<()> {
        let t = &self.db.t;
        let rec = Json(MemberRecord {
            membership,
            event_id: event_id.to_owned(),
            pos,
        });
        t.room_members
            .put(&(room.to_owned(), user.to_owned()), &rec)?;
        t.user_rooms
            .put(&(user.to_owned(), room.to_owned()), &rec)?;
        if matches!(rec.0.membership.as_str(), "join" | "invite") {
            t.forgotten.remove(&(user.to_owned(), room.to_owned()))?;
        }
        Ok(())
    }

    pub(crate) fn write_event(
        &self,
        pdu: &Pdu,
        txn: Option<super::Transaction>,
        pos: u64,
        meta: &mut RoomMeta,
        rules: &RoomVersionRules,
    ) -> Result<()> {
        self.write_event_on(pdu, txn, pos, meta, rules, None)
    }

    /// Writes one event. `before`: the state group it applies to when that is not the current
    /// state (a remote fork); the current state is then left to the caller.
    fn write_event_on(
        &self,
        pdu: &Pdu,
        txn: Option<super::Transaction>,
        pos: u64,
        meta: &mut RoomMeta,
        rules: &RoomVersionRules,
        before: Option<u64>,
    ) -> Result<()> {
        let t = &self.db.t;
        let id = pdu.event_id.to_string();
        let room = pdu.room_id.to_string();
        let group_before = before.unwrap_or(meta.state_group);
        let redacted_because = match self.pending_redaction(pdu, rules)? {
            Some((redacted, because)) => {
                t.redacted_originals.put(&id, &pdu.to_bytes()?)?;
                t.pdus.put(&id, &redacted.to_bytes()?)?;
                Some(because)
            }
            None => {
                t.pdus.put(&id, &pdu.to_bytes()?)?;
                None
            }
        };
        t.event_state_before.put(&id, &group_before)?;
        let txn_key = txn.as_ref().map(|x| x.key(&pdu.sender));
        let mut extras = EventExtras {
            txn: txn.map(|t| (t.device, t.id)),
            redacted_because,
            ..Default::default()
        };

        if let Some(sk) = &pdu.state_key {
            let key = (room.clone(), pdu.kind.to_string(), sk.clone());
            match before {
                None => {
                    extras.replaces_state = t
                        .current_state
                        .get(&key)?
                        .map(|e| ruma::EventId::parse(e).map_err(Error::internal))
                        .transpose()?;
                    meta.state_group = self.ids.add_to_group(
                        &self.db,
                        meta.state_group,
                        &pdu.kind.to_string(),
                        sk,
                        &pdu.event_id,
                    )?;
                    t.current_state.put(&key, &id)?;
                    if pdu.kind == TimelineEventType::RoomMember {
                        let membership = pdu.content_str("membership").unwrap_or_default();
                        self.index_membership(&room, sk, membership, &pdu.event_id, pos)?;
                    }
                }
                Some(group) => {
                    extras.replaces_state = super::state::load_group(&self.db, group)?
                        .remove(&(pdu.kind.to_string(), sk.clone()));
                }
            }
        }

        if pdu.kind == TimelineEventType::RoomRedaction {
            if let Some(target) = &pdu.redacts {
                let state = super::state::load_group(&self.db, group_before)?;
                let view = super::state::MapView {
                    rooms: self,
                    map: &state,
                };
                self.apply_redaction(target, pdu, rules, &view)?;
            }
        }
        if let Ok(Relates {
            relates_to:
                Some(RelatesTo {
                    rel_type: Some(rt),
                    event_id: Some(parent),
                }),
        }) = serde_json::from_str::<Relates>(pdu.content.get())
        {
            t.has_relations.put(&parent, &())?;
            t.relations.put(&(room.clone(), parent, id.clone()), &rt)?;
        }

        if let Some(key) = &txn_key {
            t.txn_ids.put(key, &id)?;
        }
        if extras.replaces_state.is_some()
            || extras.txn.is_some()
            || extras.redacted_because.is_some()
        {
            t.event_extras.put(&id, &Json(extras))?;
        }
        t.event_pos.put(&id, &pos)?;
        t.stream_events.put(&pos, &id)?;
        let entry = super::timeline::TimelineEntry {
            event_id: id.clone(),
            sender: pdu.sender.to_string(),
            kind: pdu.kind.to_string(),
        };
        t.timeline.put(&(room, pos), &entry)?;
        meta.event_count += 1;
        crate::metrics::METRICS.events_persisted.inc();
        meta.forward_extremities = vec![pdu.event_id.clone()];
        meta.max_depth = meta.max_depth.max(u64::from(pdu.depth));
        meta.last_pos = pos;
        Ok(())
    }

    /// Whether `redaction` may take effect on `target`: the sender's own event, or a sender
    /// whose power level in `state` (before the redaction) reaches `redact`. Room versions 3+
    /// accept any redaction into the graph and leave this to the servers showing it.
    fn redaction_allowed(
        &self,
        redaction: &Pdu,
        target: &Pdu,
        rules: &RoomVersionRules,
        state: &dyn super::StateView,
    ) -> Result<bool> {
        if target.room_id != redaction.room_id {
            return Ok(false);
        }
        if target.sender == redaction.sender {
            return Ok(true);
        }
        let levels = super::state::power_levels(state, rules)?;
        Ok(levels.user_level(&redaction.sender) >= levels.redact)
    }

    /// Replaces the stored event with its redacted form, keeping the original aside for audit.
    /// A redaction of an event this server does not have yet waits for it in the event's
    /// extras ([`Self::pending_redaction`]).
    pub(crate) fn apply_redaction(
        &self,
        target: &ruma::EventId,
        redaction: &Pdu,
        rules: &RoomVersionRules,
        state: &dyn super::StateView,
    ) -> Result<()> {
        let t = &self.db.t;
        let key = target.to_string();
        let Some(original) = t.pdus.get(&key)? else {
            let mut extras = t.event_extras.get(&key)?.map(|j| j.0).unwrap_or_default();
            if extras.redacted_because.is_none() {
                extras.redacted_because = Some(redaction.event_id.clone());
                t.event_extras.put(&key, &Json(extras))?;
            }
            return Ok(());
        };
        let target_pdu = Pdu::from_bytes(target.as_str(), &original)?;
        if !self.redaction_allowed(redaction, &target_pdu, rules, state)? {
            return Ok(());
        }
        if !t.redacted_originals.contains(&key)? {
            t.redacted_originals.put(&key, &original)?;
        }
        let redacted =
            ruma::canonical_json::redact(target_pdu.canonical()?, &rules.redaction, None)
                .map_err(Error::internal)?;
        t.pdus.put(
            &key,
            &serde_json::to_vec(&redacted).map_err(Error::internal)?,
        )?;
        let mut extras = t.event_extras.get(&key)?.map(|j| j.0).unwrap_or_default();
        extras.redacted_because = Some(redaction.event_id.clone());
        t.event_extras.put(&key, &Json(extras))?;
        Ok(())
    }

    /// The redacted form of an event arriving after its redaction (a gap filled late, or
    /// backfilled history), and the redaction, when that redaction may take effect.
    pub(crate) fn pending_redaction(
        &self,
        pdu: &Pdu,
        rules: &RoomVersionRules,
    ) -> Result<Option<(Pdu, ruma::OwnedEventId)>> {
        let Some(because) = self.extras(&pdu.event_id)?.redacted_because else {
            return Ok(None);
        };
        let Some(redaction) = self.get_pdu(&because)? else {
            return Ok(None);
        };
        let forget = || -> Result<Option<(Pdu, ruma::OwnedEventId)>> {
            let mut extras = self.extras(&pdu.event_id)?;
            extras.redacted_because = None;
            self.db
                .t
                .event_extras
                .put(&pdu.event_id.to_string(), &Json(extras))?;
            Ok(None)
        };
        // Judged by the state before the redaction when it is known, else the room's now.
        let allowed = match self.state_before_event(&because)? {
            Some(state) => {
                let view = super::state::MapView {
                    rooms: self,
                    map: &state,
                };
                self.redaction_allowed(&redaction, pdu, rules, &view)?
            }
            None => {
                let view = super::CurrentState {
                    rooms: self,
                    room_id: &pdu.room_id,
                };
                self.redaction_allowed(&redaction, pdu, rules, &view)?
            }
        };
        if !allowed {
            return forget();
        }
        let redacted = ruma::canonical_json::redact(pdu.canonical()?, &rules.redaction, None)
            .map_err(Error::internal)?;
        Ok(Some((
            Pdu::from_json(pdu.event_id.clone(), redacted)?,
            because,
        )))
    }
}
