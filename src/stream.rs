//! The stream position: one monotonically increasing counter that orders everything a client
//! syncs (timeline, state, receipts, typing, account data). Sync tokens encode it.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{watch, Mutex, MutexGuard};

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
        })
    }

    pub async fn begin<'a>(&'a self, db: &'a Storage) -> Commit<'a> {
        Commit {
            next: self.commit.lock().await,
            db,
        }
    }

    /// Makes everything up to `pos` visible to readers and wakes long-polling syncs.
    pub fn publish(&self, pos: u64) {
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
