//! Small helpers shared across concerns.

use subtle::ConstantTimeEq;

/// Compares two secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A random alphanumeric string (access tokens, room ID localparts).
pub fn random_string(len: usize) -> String {
    use rand::{distributions::Alphanumeric, Rng};
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::from(ruma::MilliSecondsSinceUnixEpoch::now().get())
}

/// Percent-encodes a path segment or query value (everything but ASCII letters and digits).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One async lock per key, made on first use and dropped when nobody holds or waits for it:
/// for "check, act, record" sequences that must not interleave for the same key (a transaction
/// ID retried while its first attempt is still running).
pub struct KeyedLocks<K> {
    locks: std::sync::Mutex<std::collections::HashMap<K, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Default::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> KeyedLocks<K> {
    /// Waits for the lock of `key`; held until the guard is dropped.
    pub async fn lock(&self, key: &K) -> KeyedGuard<'_, K> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        KeyedGuard {
            owner: self,
            key: key.clone(),
            guard: Some(guard),
        }
    }
}

/// Holds a [`KeyedLocks`] lock; forgets the key's lock once no one else wants it.
pub struct KeyedGuard<'a, K: std::hash::Hash + Eq + Clone> {
    owner: &'a KeyedLocks<K>,
    key: K,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: std::hash::Hash + Eq + Clone> Drop for KeyedGuard<'_, K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.owner.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: nobody holds or waits for this key any more.
        if locks
            .get(&self.key)
            .is_some_and(|l| std::sync::Arc::strong_count(l) == 1)
        {
            locks.remove(&self.key);
        }
    }
}
