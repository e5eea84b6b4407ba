//! Responders' replies on their way out: never lost, never sent twice.
//!
//! A reply is queued under its event ID (the homeserver redelivering the event never queues it
//! twice) and sent by one worker, part by part (a long reply is several texts), paced per
//! sending number, in the order replies were written to each texter. Each part's state is
//! stored before and after the carrier is called:
//! - `Pending`: not handed over; safe to send.
//! - `Attempted`: handed over without a clear answer (no answer in time, a crash mid-call, a
//!   gateway error). It may have gone out, so it is never sent again blindly: after
//!   `delivery.check_unknown_after_s` the bridge finds out, from a delivery status the carrier
//!   sent for the part's reference or from the carrier's list of recent messages to the
//!   number, and sends it again only if it did not go out. A carrier that cannot say leaves
//!   it unknown, and it is not resent.
//! - `Sent`: the carrier took it; its ID is kept for delivery statuses.
//!
//! While the carrier cannot be reached (or is busy) the worker keeps trying, waiting 2 s and
//! doubling up to `delivery.retry_max_interval_s`, for as long as the reply is useful
//! (`delivery.give_up_after_s`, by default the validity period). The room is told, in a
//! notice that replies to the responder's message and holds no internal details, when a reply
//! is delayed, when its outcome is unknown, when it goes out after all and when it is given up.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use appservice_runtime::{now_ms, BoxError};
use ruma::{OwnedRoomId, RoomId};
use serde::{Deserialize, Serialize};

use crate::{
    bridge::{Bridge, Conversation},
    provider::{Part as Outgoing, Provider},
    segments,
    twilio::SendError,
};

pub const OUTBOX: &str = "outbox";
const QUEUE: &str = "outbox_queue";
const SEQ: &str = "outbox_seq";
/// Carrier message ID -> (room, event ID) of the reply it is part of.
pub const SIDS: &str = "sids";
/// A part's reference -> (room, event ID) of its reply.
pub const REFERENCES: &str = "references";
/// A part's reference -> the carrier's message ID, from a delivery status that named it.
pub const REFERENCE_SIDS: &str = "reference_sids";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting to go out, or going out part by part.
    Queued,
    /// An entry from before parts were tracked, caught mid-send by a stop.
    Sending,
    Sent,
    /// The texter had opted out.
    Refused,
    /// The carrier refused it, or could not be reached for as long as it was useful.
    Failed,
    /// Whether it went out could not be found out; it was not resent.
    Uncertain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum PartState {
    Pending,
    Attempted { at_ms: u64 },
    Sent { sid: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub body: String,
    /// Unique to the part: named in its delivery statuses.
    pub reference: String,
    pub state: PartState,
}

/// Which notices the room has had about a reply (each is said once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Told {
    pub delayed: bool,
    pub unknown: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub puppet: String,
    pub room: OwnedRoomId,
    pub body: String,
    /// An `mxc://` picture to send as MMS.
    #[serde(default)]
    pub media: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub message_sids: Vec<String>,
    #[serde(default)]
    pub segments: usize,
    /// The texts it goes out as; made on the first try.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// When it was queued (ms); it is useful until `delivery.give_up_after_s` later.
    #[serde(default)]
    pub queued_ms: u64,
    /// Not to be tried again before (ms).
    #[serde(default)]
    pub next_try_ms: u64,
    /// Tries that found the carrier unreachable or busy, for the backoff.
    #[serde(default)]
    pub failures: u32,
    /// The picture's published URL, once published.
    #[serde(default)]
    pub media_url: Option<String>,
    #[serde(default)]
    pub told: Told,
}

impl OutboxEntry {
    pub fn new(
        puppet: String,
        room: OwnedRoomId,
        body: String,
        media: Option<String>,
        status: Status,
    ) -> Self {
        Self {
            puppet,
            room,
            body,
            media,
            status,
            message_sids: vec![],
            segments: 0,
            parts: vec![],
            queued_ms: now_ms(),
            next_try_ms: 0,
            failures: 0,
            media_url: None,
            told: Told::default(),
        }
    }
}

/// Removes every reply to `room` (its words, its carrier IDs, its references), queued or not.
pub fn forget_room(store: &appservice_runtime::Store, room: &str) -> Result<(), BoxError> {
    let mut replies = HashSet::new();
    for (event_id, e) in store.entries::<OutboxEntry>(OUTBOX)? {
        if e.room.as_str() == room {
            for p in &e.parts {
                store.remove(REFERENCES, &p.reference)?;
                store.remove(REFERENCE_SIDS, &p.reference)?;
            }
            store.remove(OUTBOX, &event_id)?;
            replies.insert(event_id);
        }
    }
    for (key, event_id) in store.entries::<String>(QUEUE)? {
        if replies.contains(&event_id) {
            store.remove(QUEUE, &key)?;
        }
    }
    for (sid, (r, _)) in store.entries::<(String, String)>(SIDS)? {
        if r == room {
            store.remove(SIDS, &sid)?;
        }
    }
    Ok(())
}

/// A fresh part reference: unguessable, URL-safe.
pub fn new_reference() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Spaces sends per sending number at the configured segments per second.
#[derive(Default)]
pub struct Pacer {
    next_free: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// How long to wait before sending `segments` from `sender`; reserves that slot.
    pub fn reserve(&self, sender: &str, segments: usize, per_second: f64) -> Duration {
        let now = Instant::now();
        let mut map = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let start = map.get(sender).copied().filter(|t| *t > now).unwrap_or(now);
        map.insert(
            sender.to_owned(),
            start + Duration::from_secs_f64(segments.max(1) as f64 / per_second),
        );
        start - now
    }
}

/// What the worker should do next.
enum Next {
    Again,
    /// Nothing is due before this time (ms).
    Until(u64),
    Idle,
}

/// What became of a part whose send was not answered.
enum Found {
    Sent(String),
    NotSent,
    Unknown,
}

/// Notices about a reply, in the words a responder reads.
mod notice {
    pub fn delayed(until: &str) -> String {
        format!("This reply is delayed: the text message service cannot be reached right now. It will be sent as soon as the service is back (the bridge keeps trying until {until}), and this room will be told.")
    }
    pub const SENT_AFTER_DELAY: &str = "The delayed reply has now been sent.";
    pub const UNKNOWN: &str = "It is not yet known whether this reply went out: the text message service did not answer in time. The bridge is checking and will not send it twice.";
    pub const FOUND_SENT: &str = "Checked: this reply did go out.";
    pub const FOUND_NOT_SENT: &str = "Checked: this reply had not gone out; it is being sent now.";
    pub fn gave_up(minutes: u64) -> String {
        format!("This reply was not sent: the text message service could not be reached for {minutes} minutes. Please reach the texter another way, or send it again.")
    }
    pub const STILL_UNKNOWN: &str = "It could not be confirmed whether this reply went out, so it was not sent again (to avoid a duplicate). You may want to ask the texter whether they received it.";
    pub fn refused(why: &str) -> String {
        format!("This reply was not sent: the text message service refused it ({why}).")
    }
    pub const INTERRUPTED: &str = "This reply was being sent when the bridge stopped; it may not have reached the texter and was not resent (to avoid a duplicate).";
}

impl Bridge {
    /// Queues a reply unless this event was queued before. Returns whether it was new.
    pub fn enqueue(&self, event_id: &str, entry: OutboxEntry) -> Result<bool, BoxError> {
        if self.store.contains(OUTBOX, event_id)? {
            return Ok(false);
        }
        let seq = self.store.get::<u64>(SEQ, "next")?.unwrap_or(0) + 1;
        self.store.put(SEQ, "next", &seq)?;
        self.store.put(OUTBOX, event_id, &entry)?;
        if entry.status == Status::Queued {
            self.store
                .put(QUEUE, &format!("{seq:020}"), &event_id.to_owned())?;
        }
        Ok(true)
    }

    /// At start: entries from before parts were tracked, caught mid-send, are reported
    /// instead of resent. (Tracked parts need nothing: the worker finds out about them.)
    pub async fn recover_outbox(&self) -> Result<(), BoxError> {
        for (event_id, mut e) in self.store.entries::<OutboxEntry>(OUTBOX)? {
            if e.status == Status::Sending {
                e.status = Status::Uncertain;
                self.store.put(OUTBOX, &event_id, &e)?;
                self.store.flush().await?;
                self.tell(&e.room, &event_id, "interrupted", notice::INTERRUPTED)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends queued replies, forever.
    pub async fn run_outbox(self: Arc<Self>) {
        loop {
            match self.send_due().await {
                Ok(Next::Again) => continue,
                Ok(Next::Until(at)) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    tokio::select! {
                        _ = self.outbox_wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Ok(Next::Idle) => self.outbox_wake.notified().await,
                Err(e) => {
                    tracing::error!(error = %e, "outbox worker error");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Works on the oldest reply that is due and has no older unfinished reply to the same
    /// texter (replies to one texter leave in the order they were written).
    async fn send_due(&self) -> Result<Next, BoxError> {
        let now = now_ms();
        let mut waiting_texters = HashSet::new();
        let mut earliest: Option<u64> = None;
        for (key, event_id) in self.store.entries::<String>(QUEUE)? {
            let entry = self.store.get::<OutboxEntry>(OUTBOX, &event_id)?;
            let Some(e) = entry.filter(|e| e.status == Status::Queued) else {
                // Finished before a stop that left its queue entry behind: never again.
                self.store.remove(QUEUE, &key)?;
                return Ok(Next::Again);
            };
            if !waiting_texters.insert(e.puppet.clone()) {
                continue;
            }
            if e.next_try_ms > now {
                earliest = Some(earliest.map_or(e.next_try_ms, |t| t.min(e.next_try_ms)));
                continue;
            }
            self.work_on(&key, &event_id, e).await?;
            return Ok(Next::Again);
        }
        Ok(earliest.map_or(Next::Idle, Next::Until))
    }

    fn save(&self, event_id: &str, e: &OutboxEntry) -> Result<(), BoxError> {
        self.store.put(OUTBOX, event_id, e)?;
        Ok(())
    }

    /// Ends a reply's time in the queue with `status`.
    async fn finish(
        &self,
        key: &str,
        event_id: &str,
        e: &mut OutboxEntry,
        status: Status,
    ) -> Result<(), BoxError> {
        e.status = status;
        e.message_sids = e
            .parts
            .iter()
            .filter_map(|p| match &p.state {
                PartState::Sent { sid } => Some(sid.clone()),
                _ => None,
            })
            .collect();
        self.save(event_id, e)?;
        self.store.remove(QUEUE, key)?;
        self.store.flush().await?;
        Ok(())
    }

    /// One step on one reply: find out about unanswered parts, send the next ones.
    async fn work_on(&self, key: &str, event_id: &str, mut e: OutboxEntry) -> Result<(), BoxError> {
        let Some(conv) = self.conversation(&e.puppet)? else {
            self.store.remove(QUEUE, key)?;
            return Ok(());
        };
        let Some(provider) = self.providers.get(&conv.provider).cloned() else {
            self.finish(key, event_id, &mut e, Status::Failed).await?;
            tracing::error!(provider = %conv.provider, "a conversation's carrier is not configured");
            return self
                .tell(
                    &e.room,
                    event_id,
                    "refused",
                    &notice::refused("this line's carrier is not configured"),
                )
                .await;
        };
        let now = now_ms();
        if e.queued_ms == 0 {
            e.queued_ms = now;
        }
        let deadline = e.queued_ms + self.config.give_up_after_ms();
        if e.parts.is_empty() {
            let bodies = if e.media.is_some() && e.body.is_empty() {
                vec![String::new()]
            } else {
                provider.parts(&e.body)
            };
            e.segments = bodies.iter().map(|b| segments::analyse(b).segments).sum();
            e.parts = bodies
                .into_iter()
                .map(|body| Part {
                    body,
                    reference: new_reference(),
                    state: PartState::Pending,
                })
                .collect();
            for p in &e.parts {
                self.store.put(
                    REFERENCES,
                    &p.reference,
                    &(e.room.to_string(), event_id.to_owned()),
                )?;
            }
            self.save(event_id, &e)?;
            self.store.flush().await?;
        }
        let to = self.vault.decrypt(&conv.number)?;
        for i in 0..e.parts.len() {
            if let PartState::Attempted { at_ms } = e.parts[i].state {
                match self
                    .find_out(provider.as_ref(), &to, &conv, &e.parts[i], at_ms)
                    .await?
                {
                    Found::Sent(sid) => {
                        self.part_sent(event_id, &mut e, i, sid)?;
                        if e.told.unknown {
                            self.tell(&e.room, event_id, "found-sent", notice::FOUND_SENT)
                                .await?;
                        }
                        continue;
                    }
                    Found::NotSent => {
                        e.parts[i].state = PartState::Pending;
                        self.save(event_id, &e)?;
                        if e.told.unknown {
                            self.tell(&e.room, event_id, "found-not-sent", notice::FOUND_NOT_SENT)
                                .await?;
                        }
                    }
                    Found::Unknown => return self.unknown(key, event_id, e, deadline).await,
                }
            }
            if matches!(e.parts[i].state, PartState::Sent { .. }) {
                continue;
            }
            if now_ms() > deadline {
                return self.give_up(key, event_id, e).await;
            }
            if i == 0 && e.media.is_some() && e.media_url.is_none() {
                match self
                    .publish_media(e.media.as_deref().unwrap_or_default())
                    .await
                {
                    Ok(url) => {
                        e.media_url = Some(url);
                        self.save(event_id, &e)?;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not fetch a picture to send");
                        return self.retry_later(key, event_id, e, deadline).await;
                    }
                }
            }
            let wait = self.pacer.reserve(
                &conv.sender,
                segments::analyse(&e.parts[i].body).segments,
                self.config.pacing.segments_per_second,
            );
            tokio::time::sleep(wait).await;
            let at_ms = now_ms();
            e.parts[i].state = PartState::Attempted { at_ms };
            self.save(event_id, &e)?;
            self.store.flush().await?;
            let started = Instant::now();
            let validity_s = u32::try_from(deadline.saturating_sub(at_ms) / 1000)
                .unwrap_or(u32::MAX)
                .clamp(1, self.config.pacing.validity_period_s.max(1));
            let result = provider
                .send(Outgoing {
                    to: &to,
                    from: &conv.sender,
                    body: &e.parts[i].body,
                    media_url: if i == 0 { e.media_url.as_deref() } else { None },
                    reference: &e.parts[i].reference,
                    validity_s,
                })
                .await;
            self.metrics
                .outbound_latency
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(sid) => {
                    self.metrics
                        .segments
                        .inc_by(segments::analyse(&e.parts[i].body).segments as u64);
                    self.part_sent(event_id, &mut e, i, sid)?;
                    e.failures = 0;
                    self.store.flush().await?;
                }
                Err(SendError::NotSent(why)) => {
                    tracing::warn!(reason = %why, "carrier unreachable or busy; the reply will be retried");
                    e.parts[i].state = PartState::Pending;
                    return self.retry_later(key, event_id, e, deadline).await;
                }
                Err(SendError::Unknown(why)) => {
                    tracing::warn!(reason = %why, "no clear answer from the carrier; finding out before any resend");
                    return self.unknown(key, event_id, e, deadline).await;
                }
                Err(SendError::Refused {
                    status,
                    code,
                    message,
                }) => {
                    tracing::warn!(status, ?code, message = %message, "the carrier refused a reply");
                    self.metrics.failures.with_label_values(&["outbound"]).inc();
                    self.finish(key, event_id, &mut e, Status::Failed).await?;
                    let why = code
                        .map(|c| crate::bridge::error_meaning(&c.to_string()))
                        .filter(|m| !m.starts_with("see "))
                        .unwrap_or("the number or the message was not accepted");
                    return self
                        .tell(&e.room, event_id, "refused", &notice::refused(why))
                        .await;
                }
            }
        }
        self.metrics.outbound.inc();
        self.finish(key, event_id, &mut e, Status::Sent).await?;
        if e.told.delayed {
            self.tell(
                &e.room,
                event_id,
                "sent-after-delay",
                notice::SENT_AFTER_DELAY,
            )
            .await?;
        }
        Ok(())
    }

    fn part_sent(
        &self,
        event_id: &str,
        e: &mut OutboxEntry,
        i: usize,
        sid: String,
    ) -> Result<(), BoxError> {
        self.store
            .put(SIDS, &sid, &(e.room.to_string(), event_id.to_owned()))?;
        e.parts[i].state = PartState::Sent { sid };
        self.save(event_id, e)
    }

    /// What became of a part handed over at `at_ms` without a clear answer.
    async fn find_out(
        &self,
        provider: &dyn Provider,
        to: &str,
        conv: &Conversation,
        part: &Part,
        at_ms: u64,
    ) -> Result<Found, BoxError> {
        if let Some(sid) = self.store.get::<String>(REFERENCE_SIDS, &part.reference)? {
            return Ok(Found::Sent(sid));
        }
        let settle_ms = u64::from(self.config.delivery.check_unknown_after_s) * 1000;
        if now_ms() < at_ms + settle_ms {
            return Ok(Found::Unknown);
        }
        let Some(recent) = provider.recent(to, &conv.sender).await else {
            return Ok(Found::Unknown);
        };
        // Clocks differ: a minute's slack before the attempt.
        let since = at_ms.saturating_sub(60_000);
        for m in recent {
            if m.body == part.body && m.created_ms >= since && !self.store.contains(SIDS, &m.id)? {
                return Ok(Found::Sent(m.id));
            }
        }
        Ok(Found::NotSent)
    }

    /// The carrier could not be reached or was busy: try again later, telling the room once.
    async fn retry_later(
        &self,
        key: &str,
        event_id: &str,
        mut e: OutboxEntry,
        deadline: u64,
    ) -> Result<(), BoxError> {
        e.failures = e.failures.saturating_add(1);
        let max = u64::from(self.config.delivery.retry_max_interval_s) * 1000;
        let backoff = 2000u64
            .saturating_mul(1 << e.failures.min(20).saturating_sub(1))
            .min(max);
        let now = now_ms();
        if now >= deadline {
            return self.give_up(key, event_id, e).await;
        }
        if self
            .postpone(event_id, &mut e, (now + backoff).min(deadline), |t| {
                &mut t.delayed
            })
            .await?
        {
            self.metrics.failures.with_label_values(&["outbound"]).inc();
            let until = chrono::DateTime::from_timestamp_millis(deadline as i64)
                .map(|t| t.format("%H:%M UTC").to_string())
                .unwrap_or_default();
            self.tell(&e.room, event_id, "delayed", &notice::delayed(&until))
                .await?;
        }
        Ok(())
    }

    /// A part may have gone out: look again later, telling the room once; at the deadline,
    /// leave it unsent and say so.
    async fn unknown(
        &self,
        key: &str,
        event_id: &str,
        mut e: OutboxEntry,
        deadline: u64,
    ) -> Result<(), BoxError> {
        let now = now_ms();
        if now >= deadline {
            self.finish(key, event_id, &mut e, Status::Uncertain)
                .await?;
            return self
                .tell(&e.room, event_id, "still-unknown", notice::STILL_UNKNOWN)
                .await;
        }
        let check = u64::from(self.config.delivery.check_unknown_after_s) * 1000;
        let every = check.clamp(
            1000,
            u64::from(self.config.delivery.retry_max_interval_s) * 1000,
        );
        if self
            .postpone(event_id, &mut e, (now + every).min(deadline), |t| {
                &mut t.unknown
            })
            .await?
        {
            self.tell(&e.room, event_id, "unknown", notice::UNKNOWN)
                .await?;
        }
        Ok(())
    }

    /// Puts the next try off until `at` and saves the entry; answers whether the room has
    /// yet to be told (the flag `told` picks), marking it told.
    async fn postpone(
        &self,
        event_id: &str,
        e: &mut OutboxEntry,
        at: u64,
        told: fn(&mut Told) -> &mut bool,
    ) -> Result<bool, BoxError> {
        e.next_try_ms = at;
        let first = !std::mem::replace(told(&mut e.told), true);
        self.save(event_id, e)?;
        self.store.flush().await?;
        Ok(first)
    }

    async fn give_up(&self, key: &str, event_id: &str, mut e: OutboxEntry) -> Result<(), BoxError> {
        self.metrics.failures.with_label_values(&["outbound"]).inc();
        self.finish(key, event_id, &mut e, Status::Failed).await?;
        let minutes = self.config.give_up_after_ms() / 60_000;
        self.tell(&e.room, event_id, "gave-up", &notice::gave_up(minutes))
            .await
    }

    /// A notice in `room` replying to the responder's message `event_id`; `what` makes a
    /// retried notice idempotent.
    pub async fn tell(
        &self,
        room: &RoomId,
        event_id: &str,
        what: &str,
        text: &str,
    ) -> Result<(), BoxError> {
        let content = serde_json::json!({
            "msgtype": "m.notice",
            "body": text,
            "m.relates_to": { "m.in_reply_to": { "event_id": event_id } },
        });
        let txn = format!("outbox-{what}-{event_id}");
        self.client.send_message(room, &content, Some(&txn)).await?;
        Ok(())
    }
}

/// Pictures published for the carrier to fetch: token -> (content type, expiry in ms).
const MMS: &str = "mms";
/// How long a published picture stays fetchable.
const MMS_TTL_MS: u64 = 60 * 60 * 1000;

impl Bridge {
    /// Copies a Matrix picture to an unguessable, expiring URL the bridge serves, for the
    /// carrier to fetch as MMS media.
    pub async fn publish_media(&self, mxc: &str) -> Result<String, BoxError> {
        let (bytes, content_type) = self.client.download_media(mxc).await?;
        let token: String = {
            use rand::Rng;
            rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(40)
                .map(char::from)
                .collect()
        };
        let dir = self.config.bridge.state_dir.join("mms");
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join(&token), bytes).await?;
        self.store.put(
            MMS,
            &token,
            &(content_type, appservice_runtime::now_ms() + MMS_TTL_MS),
        )?;
        self.store.flush().await?;
        Ok(format!(
            "{}/mms/{token}",
            self.config.bridge.public_url.trim_end_matches('/')
        ))
    }

    /// A published picture, while it has not expired: (bytes, content type).
    pub async fn published_media(
        &self,
        token: &str,
    ) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        if token.len() != 40 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let Some((content_type, expires)) = self.store.get::<(String, u64)>(MMS, token)? else {
            return Ok(None);
        };
        let path = self.config.bridge.state_dir.join("mms").join(token);
        if expires < appservice_runtime::now_ms() {
            self.store.remove(MMS, token)?;
            let _ = tokio::fs::remove_file(path).await;
            return Ok(None);
        }
        Ok(Some((tokio::fs::read(path).await?, content_type)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spaces_segments_per_number() {
        let p = Pacer::default();
        assert_eq!(p.reserve("+1", 1, 1.0), Duration::ZERO);
        let second = p.reserve("+1", 2, 1.0);
        assert!(second > Duration::from_millis(900) && second <= Duration::from_secs(1));
        let third = p.reserve("+1", 1, 1.0);
        assert!(third > Duration::from_millis(2900) && third <= Duration::from_secs(3));
        // Another number is not held up.
        assert_eq!(p.reserve("+2", 1, 1.0), Duration::ZERO);
    }
}
