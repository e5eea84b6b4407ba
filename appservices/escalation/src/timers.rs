//! Durable timers: queue expiry, follow-ups and response targets. A timer is stored before the
//! action that sets it is acknowledged and removed only after it fired, so it survives restarts;
//! firing is idempotent (each checks the conversation still waits for it), so it acts once.

use appservice_runtime::{BoxError, Store};
use serde::{Deserialize, Serialize};

const TIMERS: &str = "timers";
const SEQ: &str = "timer_seq";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Timer {
    /// A queued conversation waited too long.
    Expire { conversation: u64 },
    /// A scheduled follow-up is due.
    FollowUp { conversation: u64 },
    /// The assigned responder has not written since assignment at `since_ms`.
    FirstResponse { conversation: u64, since_ms: u64 },
    /// The texter's message of `since_ms` has had no answer.
    NextResponse { conversation: u64, since_ms: u64 },
}

/// Due timers with their keys, and when the next one falls due.
pub type Due = (Vec<(String, Timer)>, Option<u64>);

#[derive(Clone)]
pub struct Timers {
    store: Store,
    seq: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Timers {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            seq: Default::default(),
        }
    }

    /// Stores a timer due at `due_ms` (flush before acknowledging).
    pub fn set(&self, due_ms: u64, timer: &Timer) -> Result<(), BoxError> {
        let _one = self.seq.lock().map_err(|_| "timer lock")?;
        let n: u64 = self.store.get(SEQ, "n")?.unwrap_or(0) + 1;
        self.store.put(SEQ, "n", &n)?;
        self.store
            .put(TIMERS, &format!("{due_ms:020}-{n:020}"), timer)?;
        Ok(())
    }

    /// Timers due at `now_ms` (oldest first) with their keys, and when the next one is due.
    pub fn due(&self, now_ms: u64) -> Result<Due, BoxError> {
        let mut due = Vec::new();
        for (key, t) in self.store.entries::<Timer>(TIMERS)? {
            let at: u64 = key
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if at <= now_ms {
                due.push((key, t));
            } else {
                return Ok((due, Some(at)));
            }
        }
        Ok((due, None))
    }

    /// Forgets a timer that has fired.
    pub fn done(&self, key: &str) -> Result<(), BoxError> {
        self.store.remove(TIMERS, key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_due_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let t = Timers::new(Store::open(dir.path()).unwrap());
            t.set(2_000, &Timer::FollowUp { conversation: 2 }).unwrap();
            t.set(1_000, &Timer::Expire { conversation: 1 }).unwrap();
        }
        let t = Timers::new(Store::open(dir.path()).unwrap());
        let (due, next) = t.due(1_500).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, Timer::Expire { conversation: 1 });
        assert_eq!(next, Some(2_000));
        t.done(&due[0].0).unwrap();
        let (due, next) = t.due(5_000).unwrap();
        assert_eq!((due.len(), next), (1, None));
    }
}
