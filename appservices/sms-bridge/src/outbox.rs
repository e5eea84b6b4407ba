//! Responders' replies on their way out. A reply is queued in the store under its event ID
//! (so the homeserver redelivering the event never queues it twice), then sent by one worker,
//! paced per sending number. Its status is stored before Twilio is called: a reply found
//! "sending" after a crash may or may not have left, so it is reported, never resent.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use appservice_runtime::BoxError;
use ruma::OwnedRoomId;
use serde::{Deserialize, Serialize};

use crate::{bridge::Bridge, segments};

pub const OUTBOX: &str = "outbox";
const QUEUE: &str = "outbox_queue";
const SEQ: &str = "outbox_seq";
pub const SIDS: &str = "sids";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Sending,
    Sent,
    /// The texter had opted out.
    Refused,
    /// Twilio refused it or could not be reached.
    Failed,
    /// The bridge stopped while sending: it may or may not have left.
    Uncertain,
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

    /// At start: replies caught mid-send are reported instead of resent.
    pub async fn recover_outbox(&self) -> Result<(), BoxError> {
        for (event_id, mut e) in self.store.entries::<OutboxEntry>(OUTBOX)? {
            if e.status == Status::Sending {
                e.status = Status::Uncertain;
                self.store.put(OUTBOX, &event_id, &e)?;
                self.store.flush().await?;
                self.client
                    .send_text(&e.room, "A reply was being sent when the bridge stopped; it may not have reached the texter and was not resent (to avoid a duplicate).", true)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends queued replies one by one, forever.
    pub async fn run_outbox(self: Arc<Self>) {
        loop {
            match self.send_next().await {
                Ok(true) => continue,
                Ok(false) => self.outbox_wake.notified().await,
                Err(e) => {
                    tracing::error!(error = %e, "outbox worker error");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Sends the oldest queued reply; `false` when the queue is empty.
    async fn send_next(&self) -> Result<bool, BoxError> {
        let Some((key, event_id)) = self.store.entries::<String>(QUEUE)?.into_iter().next() else {
            return Ok(false);
        };
        let Some(mut e) = self.store.get::<OutboxEntry>(OUTBOX, &event_id)? else {
            self.store.remove(QUEUE, &key)?;
            return Ok(true);
        };
        if e.status != Status::Queued {
            // Handled before a crash that left its queue entry behind (sent, refused, or
            // uncertain after an interrupted send): never send it again.
            self.store.remove(QUEUE, &key)?;
            return Ok(true);
        }
        let Some(conv) = self.conversation(&e.puppet)? else {
            self.store.remove(QUEUE, &key)?;
            return Ok(true);
        };
        e.segments = segments::split(&e.body)
            .iter()
            .map(|p| segments::analyse(p).segments)
            .sum();
        let wait = self.pacer.reserve(
            &conv.sender,
            e.segments,
            self.config.pacing.segments_per_second,
        );
        tokio::time::sleep(wait).await;
        e.status = Status::Sending;
        self.store.put(OUTBOX, &event_id, &e)?;
        self.store.flush().await?;
        let started = Instant::now();
        let result = match &e.media {
            Some(mxc) => match self.publish_media(mxc).await {
                Ok(url) => {
                    self.text_texter_with_media(&conv, &e.body, Some(&url))
                        .await
                }
                Err(err) => Err(err),
            },
            None => self.text_texter(&conv, &e.body).await,
        };
        self.metrics
            .outbound_latency
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(sids) => {
                self.metrics.outbound.inc();
                self.metrics.segments.inc_by(e.segments as u64);
                for sid in &sids {
                    self.store
                        .put(SIDS, sid, &(e.room.to_string(), event_id.clone()))?;
                }
                e.message_sids = sids;
                e.status = Status::Sent;
            }
            Err(err) => {
                self.metrics.failures.with_label_values(&["outbound"]).inc();
                e.status = Status::Failed;
                let _ = self
                    .client
                    .send_text(&e.room, &format!("Reply not sent: {err}"), true)
                    .await;
            }
        }
        self.store.put(OUTBOX, &event_id, &e)?;
        self.store.remove(QUEUE, &key)?;
        self.store.flush().await?;
        Ok(true)
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
