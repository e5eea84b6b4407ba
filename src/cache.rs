//! Bounded in-memory caches. Every cache of the server is declared with its size where it is
//! used, through [`Cache::new`], and none grows past it: memory stays bounded however many
//! users and rooms there are. Each counts its hits and misses and its entries, which `/metrics`
//! shows as `haven_cache_requests_total{cache, result}` and `haven_cache_entries{cache}`.

use std::{
    borrow::Borrow,
    hash::Hash,
    num::NonZeroUsize,
    sync::{LazyLock, Mutex, MutexGuard},
};

use lru::LruCache;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// Lookups by cache and result (`hit`, `miss`); registered by `crate::metrics`.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "cache_requests_total",
            "Cache lookups by cache and result (hit or miss)",
        ),
        &["cache", "result"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"))
});

/// Entries held, by cache; registered by `crate::metrics`.
pub static ENTRIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new("cache_entries", "Entries held, by cache"),
        &["cache"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"))
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves a valid (if partly updated) cache.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A map of at most `capacity` entries, the least recently used dropped first.
pub struct Cache<K: Hash + Eq, V> {
    entries: Mutex<LruCache<K, V>>,
    hits: IntCounter,
    misses: IntCounter,
    held: IntGauge,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A cache called `name` in the metrics, holding at most `capacity` entries (at least 1).
    pub fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            hits: REQUESTS.with_label_values(&[name, "hit"]),
            misses: REQUESTS.with_label_values(&[name, "miss"]),
            held: ENTRIES.with_label_values(&[name]),
        }
    }

    /// The value for `key`, counted as a hit or a miss.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = lock(&self.entries).get(key).cloned();
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = lock(&self.entries);
        entries.put(key, value);
        self.held.set(entries.len() as i64);
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = lock(&self.entries);
        entries.pop(key);
        self.held.set(entries.len() as i64);
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_counts_hits() {
        let c = Cache::new("test_bounded", 2);
        c.insert(1, "a");
        c.insert(2, "b");
        assert_eq!(c.get(&1), Some("a")); // 1 is now the most recently used
        c.insert(3, "c"); // drops 2
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&3), Some("c"));
        let count = |r| REQUESTS.with_label_values(&["test_bounded", r]).get();
        assert_eq!((count("hit"), count("miss")), (2, 1));
        assert_eq!(ENTRIES.with_label_values(&["test_bounded"]).get(), 2);
    }
}
