//! Deleting a room (the admin API's room deletion, which retention uses): local members leave
//! first, so their clients are told, then every record of the room is removed. A purged room
//! answers 404 everywhere; its former members keep only their `leave` membership, which sync
//! reports as a left room without history.

use std::collections::BTreeSet;

use ruma::{OwnedUserId, RoomId};

use super::Rooms;
use crate::{error::Result, storage::prefix};

/// What a purge did.
#[derive(Debug, Default)]
pub struct Purged {
    pub kicked_users: Vec<OwnedUserId>,
    pub events: usize,
    pub local_aliases: Vec<String>,
}

impl Rooms {
    /// Makes every local member leave (their clients, and appservices, are told by the
    /// leave events); answers who left.
    pub async fn make_all_leave(&self, room_id: &RoomId) -> Result<Vec<ruma::OwnedUserId>> {
        self.meta_or_404(room_id)?;
        let mut left = Vec::new();
        for (user, m) in self.members(room_id)? {
            let local = user.server_name() == self.server_name();
            if local && matches!(m.membership.as_str(), "join" | "invite" | "knock") {
                match self
                    .leave(room_id, &user, Some("room deleted".into()))
                    .await
                {
                    Ok(_) => left.push(user),
                    Err(e) => {
                        tracing::warn!(%room_id, %user, error = %e, "member not made to leave")
                    }
                }
            }
        }
        Ok(left)
    }

    pub async fn purge(&self, room_id: &RoomId) -> Result<Purged> {
        let meta = self.meta_or_404(room_id)?;
        let mut out = Purged {
            kicked_users: self.make_all_leave(room_id).await?,
            ..Purged::default()
        };
        let _guard = self.room_lock(room_id).await;
        let t = &self.db.t;
        let room = room_id.as_str();
        let p = prefix(room);
        let mut groups: BTreeSet<u64> = BTreeSet::from([meta.state_group]);
        let timeline: Vec<_> = t
            .timeline
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for ((_, pos), entry) in timeline {
            let id = entry.event_id.to_string();
            if let Some(g) = t.event_state_before.get(&id)? {
                groups.insert(g);
            }
            if let Some(short) = t.short_event_id.get(&id)? {
                t.short_event_id_rev.remove(&short)?;
                t.short_event_id.remove(&id)?;
            }
            t.pdus.remove(&id)?;
            t.has_relations.remove(&id)?;
            t.redacted_originals.remove(&id)?;
            t.event_pos.remove(&id)?;
            t.event_extras.remove(&id)?;
            t.event_state_before.remove(&id)?;
            t.stream_events.remove(&pos)?;
            t.timeline.remove(&(room.to_owned(), pos))?;
            out.events += 1;
        }
        // History fetched from other servers.
        let backfilled: Vec<_> = t
            .backfill
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for ((_, n), entry) in backfilled {
            t.backfill_index.remove(&entry.event_id)?;
            t.pdus.remove(&entry.event_id)?;
            t.redacted_originals.remove(&entry.event_id)?;
            t.event_extras.remove(&entry.event_id)?;
            t.backfill.remove(&(room.to_owned(), n))?;
        }
        t.backfill_edges.remove(&room.to_owned())?;
        // State groups form chains within the room: remove each and its ancestors.
        let mut seen = BTreeSet::new();
        for g in groups {
            let mut cur = g;
            while cur != 0 && seen.insert(cur) {
                let parent = super::state::group_parent(&self.db, cur)?;
                t.state_groups.remove(&cur)?;
                cur = parent.unwrap_or(0);
            }
        }
        let rel: Vec<_> = t
            .relations
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for (k, _) in rel {
            t.relations.remove(&k)?;
        }
        let cs: Vec<_> = t
            .current_state
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for (k, _) in cs {
            t.current_state.remove(&k)?;
        }
        let receipts: Vec<_> = t
            .receipts
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for (k, _) in receipts {
            t.receipts.remove(&k)?;
        }
        for (user, _) in self.members(room_id)? {
            let u = user.to_string();
            let ad: Vec<_> = t
                .account_data
                .scan_prefix(&[prefix(u.as_str()), prefix(room)].concat())
                .collect::<std::result::Result<_, _>>()?;
            for (k, _) in ad {
                t.account_data.remove(&k)?;
            }
            t.forgotten.remove(&(u.clone(), room.to_owned()))?;
            // Remote members and those already gone are forgotten; local leavers keep their
            // `leave` so their next sync reports the room as left.
            if !out.kicked_users.contains(&user) {
                t.user_rooms.remove(&(u.clone(), room.to_owned()))?;
            }
            t.room_members.remove(&(room.to_owned(), u))?;
        }
        for alias in self.room_aliases(room_id)? {
            t.aliases.remove(&alias)?;
            out.local_aliases.push(alias);
        }
        t.rooms.remove(&room.to_owned())?;
        self.rosters.remove(room_id);
        self.db.durable().await?;
        tracing::info!(%room_id, events = out.events, "room purged");
        Ok(out)
    }
}

impl Rooms {
    /// Removes a room's events sent before `before_ms` (retention, or an admin's purge) while
    /// the room goes on: state events (the room's state and authorisation rest on them) and the
    /// room's newest events are kept. Answers how many events went. Search postings and
    /// relations of removed events are left to point at nothing, which readers skip.
    pub async fn purge_history(&self, room_id: &RoomId, before_ms: u64) -> Result<u64> {
        let _guard = self.room_lock(room_id).await;
        let meta = self.meta_or_404(room_id)?;
        let t = &self.db.t;
        let room = room_id.as_str().to_owned();
        let p = prefix(room.as_str());
        let old = |pdu: &crate::events::Pdu| {
            u64::from(pdu.origin_server_ts.get()) < before_ms
                && pdu.state_key.is_none()
                && !meta.forward_extremities.contains(&pdu.event_id)
        };
        let mut removed = 0;
        let remove_event = |id: &str| -> Result<()> {
            t.pdus.remove(&id.to_owned())?;
            t.redacted_originals.remove(&id.to_owned())?;
            t.event_extras.remove(&id.to_owned())?;
            t.has_relations.remove(&id.to_owned())?;
            t.event_state_before.remove(&id.to_owned())?;
            Ok(())
        };
        let timeline: Vec<_> = t
            .timeline
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for ((_, pos), entry) in timeline {
            let Some(pdu) = self.get_pdu(
                &ruma::EventId::parse(&entry.event_id).map_err(crate::error::Error::internal)?,
            )?
            else {
                continue;
            };
            if !old(&pdu) {
                continue;
            }
            remove_event(&entry.event_id)?;
            t.event_pos.remove(&entry.event_id)?;
            t.stream_events.remove(&pos)?;
            t.push_actions.remove(&(room.clone(), pos))?;
            t.timeline.remove(&(room.clone(), pos))?;
            removed += 1;
        }
        let live_removed = removed;
        let backfilled: Vec<_> = t
            .backfill
            .scan_prefix(&p)
            .collect::<std::result::Result<_, _>>()?;
        for ((_, n), entry) in backfilled {
            let Some(pdu) = self.get_pdu(
                &ruma::EventId::parse(&entry.event_id).map_err(crate::error::Error::internal)?,
            )?
            else {
                continue;
            };
            if old(&pdu) {
                remove_event(&entry.event_id)?;
                t.backfill_index.remove(&entry.event_id)?;
                t.backfill.remove(&(room.clone(), n))?;
                removed += 1;
            }
        }
        // The timeline's count (backfilled history is not in it).
        let mut meta = self.meta_or_404(room_id)?;
        meta.event_count = meta.event_count.saturating_sub(live_removed);
        t.rooms.put(&room, &crate::storage::Json(meta))?;
        self.db.durable().await?;
        tracing::info!(%room_id, removed, "history purged");
        Ok(removed)
    }
}
