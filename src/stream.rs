//! The stream position: one monotonically increasing counter that orders everything a client
//! syncs (timeline, state, receipts, typing, account data). Sync tokens encode it.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use ruma::{OwnedRoomId, OwnedUserId};
use tokio::sync::{watch, Mutex, MutexGuard, Notify};

use crate::{error::Result, storage::Storage};

const KEY: &str = "stream_pos";
/// Positions handed to ephemeral data (typing) are not flushed; skipping this many on start
/// keeps positions strictly increasing across a crash.
const RESTART_GAP: u64 = 100_000;

pub struct Stream {
    /// Held while positions are allocated and written, so positions become visible in order.
    commit: Mutex<u64>,
    published: watch::Sender<u64>,
    last: AtomicU64,
    waiters: std::sync::Mutex<Waiters>,
}

/// An open commit: positions allocated through it are written before it is dropped.
pub struct Commit<'a> {
    next: MutexGuard<'a, u64>,
    db: &'a Storage,
}

impl Commit<'_> {
    pub fn allocate(&mut self) -> Result<u64> {
        *self.next += 1;
        let pos = *self.next;
        self.db.put_meta_u64(KEY, pos)?;
        Ok(pos)
    }
}

impl Stream {
    pub fn load(db: &Storage) -> Result<Self> {
        let stored = db.meta_u64(KEY)?;
        let start = if stored == 0 { 0 } else { stored + RESTART_GAP };
        Ok(Self {
            commit: Mutex::new(start),
            published: watch::Sender::new(start),
            last: AtomicU64::new(start),
            waiters: Default::default(),
        })
    }

    pub async fn begin<'a>(&'a self, db: &'a Storage) -> Commit<'a> {
        Commit {
            next: self.commit.lock().await,
            db,
        }
    }

    /// Makes everything up to `pos` visible to readers, tells the stream's followers
    /// (appservices, federation, search) and wakes the long-polls waiting for `topics`.
    pub fn publish_to(&self, pos: u64, topics: &[Topic]) {
        self.publish(pos);
        let w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for t in topics {
            if let Some(m) = w.by_topic.get(t) {
                m.values().for_each(|n| n.notify_one());
            }
        }
    }

    /// Registers a long-poll for `topics`: changes published for them after this call wake
    /// it (none is lost between registering and waiting).
    pub fn wait_for(&self, topics: Vec<Topic>) -> Waiter<'_> {
        let notify = Arc::new(Notify::new());
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        w.next_id += 1;
        let id = w.next_id;
        for t in &topics {
            w.by_topic
                .entry(t.clone())
                .or_default()
                .insert(id, notify.clone());
        }
        drop(w);
        Waiter {
            stream: self,
            id,
            topics,
            notify,
        }
    }

    /// Makes everything up to `pos` visible to the stream's followers (no long-poll is woken:
    /// see [`Stream::publish_to`]).
    fn publish(&self, pos: u64) {
        let prev = self.last.fetch_max(pos, Ordering::SeqCst);
        if pos > prev {
            self.published.send_if_modified(|p| {
                if pos > *p {
                    *p = pos;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// The highest position readers may see.
    pub fn current(&self) -> u64 {
        *self.published.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }
}

/// What a published change concerns, for waking only the long-polls it may answer: a room's
/// members, or one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Room(OwnedRoomId),
    User(OwnedUserId),
}

/// Long-polls waiting for a topic. Each waiter has one `Notify`; a change notifies the
/// waiters of its topics only, so idle clients cost nothing while others' rooms are busy.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    by_topic: HashMap<Topic, HashMap<u64, Arc<Notify>>>,
}

/// A registered long-poll; unregisters when dropped.
pub struct Waiter<'a> {
    stream: &'a Stream,
    id: u64,
    topics: Vec<Topic>,
    notify: Arc<Notify>,
}

impl Waiter<'_> {
    /// Resolves once something published for one of the topics since registration (or since
    /// the last time it resolved).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut w = self
            .stream
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for t in &self.topics {
            if let Some(m) = w.by_topic.get_mut(t) {
                m.remove(&self.id);
                if m.is_empty() {
                    w.by_topic.remove(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A long-poll wakes for its own topics only, and a change published between registering
    /// and waiting is not lost.
    async fn quick(w: &Waiter<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), w.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn waiters_wake_for_their_topics_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(dir.path(), 1 << 20).unwrap();
        let stream = Stream::load(&db).unwrap();
        let alice = Topic::User(ruma::user_id!("@alice:example.org").to_owned());
        let room = Topic::Room(ruma::room_id!("!room:example.org").to_owned());
        let other = Topic::Room(ruma::room_id!("!other:example.org").to_owned());
        let waiter = stream.wait_for(vec![alice.clone(), room.clone()]);

        stream.publish_to(1, &[other]);
        assert!(!quick(&waiter).await, "woken by a room it is not in");
        stream.publish_to(2, &[room]);
        assert!(quick(&waiter).await, "not woken by its room");
        stream.publish_to(3, &[alice]);
        assert!(quick(&waiter).await, "not woken by its user");
        assert_eq!(stream.current(), 3);

        drop(waiter);
        let w = stream.waiters.lock().unwrap();
        assert!(
            w.by_topic.is_empty(),
            "a finished long-poll stays registered"
        );
    }
}
