//! Writing accepted events: the timeline, state groups, current state, membership indexes and
//! redactions, in an order that leaves the database consistent at any crash point (the
//! timeline entry and room metadata are written last).

use ruma::{events::TimelineEventType, room_version_rules::RoomVersionRules, OwnedDeviceId};
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

    fn write_event(
        &self,
        pdu: &Pdu,
        txn: Option<(OwnedDeviceId, String)>,
        pos: u64,
        meta: &mut RoomMeta,
        rules: &RoomVersionRules,
    ) -> Result<()> {
        let t = &self.db.t;
        let id = pdu.event_id.to_string();
        let room = pdu.room_id.to_string();
        t.pdus.put(&id, &pdu.to_bytes()?)?;
        t.event_state_before.put(&id, &meta.state_group)?;
        let mut extras = EventExtras {
            txn,
            ..Default::default()
        };

        if let Some(sk) = &pdu.state_key {
            let key = (room.clone(), pdu.kind.to_string(), sk.clone());
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
                let rec = Json(MemberRecord {
                    membership,
                    event_id: pdu.event_id.clone(),
                    pos,
                });
                t.room_members.put(&(room.clone(), sk.clone()), &rec)?;
                t.user_rooms.put(&(sk.clone(), room.clone()), &rec)?;
                if matches!(rec.0.membership.as_str(), "join" | "invite") {
                    t.forgotten.remove(&(sk.clone(), room.clone()))?;
                }
            }
        }

        if pdu.kind == TimelineEventType::RoomRedaction {
            if let Some(target) = &pdu.redacts {
                self.apply_redaction(target, pdu, rules)?;
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

        if let Some((device, txn_id)) = &extras.txn {
            t.txn_ids.put(
                &(pdu.sender.to_string(), device.to_string(), txn_id.clone()),
                &id,
            )?;
        }
        if extras.replaces_state.is_some() || extras.txn.is_some() {
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
        meta.forward_extremities = vec![pdu.event_id.clone()];
        meta.max_depth = meta.max_depth.max(u64::from(pdu.depth));
        meta.last_pos = pos;
        Ok(())
    }

    /// Replaces the stored event with its redacted form, keeping the original aside for audit.
    fn apply_redaction(
        &self,
        target: &ruma::EventId,
        redaction: &Pdu,
        rules: &RoomVersionRules,
    ) -> Result<()> {
        let t = &self.db.t;
        let key = target.to_string();
        let Some(original) = t.pdus.get(&key)? else {
            return Ok(());
        };
        let target_pdu = Pdu::from_bytes(target.as_str(), &original)?;
        if target_pdu.room_id != redaction.room_id {
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
}
