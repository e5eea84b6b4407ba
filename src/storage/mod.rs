//! Persistence. A small key-value engine abstraction ([`engine`]) implemented on sled
//! ([`sled_engine`]), typed tables on top ([`table`], [`keys`]), the schema of every table Haven
//! keeps ([`schema`]), and group commit ([`flusher`]) so an acknowledged write is durable without
//! one fsync per request.

pub mod engine;
pub mod flusher;
pub mod keys;
pub mod migrations;
pub mod schema;
mod sled_engine;
pub mod table;

use std::{path::Path, sync::Arc};

pub use engine::Batch;
pub use keys::prefix;
pub use schema::Tables;
pub use table::{Json, Table};

/// The schema version this build writes. Older databases are migrated forward at start;
/// newer ones are refused.
pub const SCHEMA_VERSION: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("stored value could not be decoded: {0}")]
    Codec(String),
    #[error("database is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    TooNew { found: u64, supported: u64 },
}

/// The opened database: engine, tables and the group-commit flusher.
pub struct Storage {
    engine: Arc<dyn engine::KvEngine>,
    pub t: Tables,
    flusher: flusher::Flusher,
    /// Serialises [`Storage::next_number`].
    numbering: std::sync::Mutex<()>,
}

impl Storage {
    /// Opens (creating if needed) the database under `path` and checks its schema version.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Arc<Self>, StorageError> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::Engine(e.to_string()))?;
        let engine: Arc<dyn engine::KvEngine> =
            Arc::new(sled_engine::SledEngine::open(path, cache_bytes)?);
        let t = Tables::open(engine.as_ref())?;
        if !migrations::run(&t)?.is_empty() {
            engine.flush()?;
        }
        let flusher = flusher::Flusher::start(engine.clone());
        Ok(Arc::new(Self {
            engine,
            t,
            flusher,
            numbering: std::sync::Mutex::new(()),
        }))
    }

    /// Waits until every write made before this call is durable. Concurrent callers share one
    /// flush.
    pub async fn durable(&self) -> Result<(), StorageError> {
        self.flusher.flush().await
    }

    /// Flushes synchronously (shutdown, CLI tools).
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        self.engine.flush()
    }

    /// A counter or version kept in the `meta` table (0 when absent).
    pub fn meta_u64(&self, key: &str) -> Result<u64, StorageError> {
        meta_u64(&self.t, key)
    }

    /// The next number of the counter `key` (1, 2, ...): never the same twice, even for
    /// concurrent callers.
    pub fn next_number(&self, key: &str) -> Result<u64, StorageError> {
        let _one = self.numbering.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.meta_u64(key)? + 1;
        self.put_meta_u64(key, n)?;
        Ok(n)
    }

    pub fn put_meta_u64(&self, key: &str, value: u64) -> Result<(), StorageError> {
        self.t
            .meta
            .put(&key.to_owned(), &value.to_be_bytes().to_vec())
    }

    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.engine.size_on_disk()
    }

    /// Entries and live key and value bytes of every table, largest first.
    pub fn usage(&self) -> Result<Vec<engine::TreeUsage>, StorageError> {
        let mut all = self.engine.usage()?;
        all.sort_by_key(|u| std::cmp::Reverse(u.key_bytes + u.value_bytes));
        Ok(all)
    }

    /// Rewrites the database into fresh files while it runs, so what was removed is gone from
    /// disk (see `KvEngine::compact`). Blocking: writers wait until it is done.
    pub fn compact(&self) -> Result<u64, StorageError> {
        self.engine.compact()
    }

    /// A consistent copy of the whole database in a new directory (see `KvEngine::snapshot_to`).
    pub fn snapshot_to(&self, dir: &Path) -> Result<u64, StorageError> {
        self.engine.snapshot_to(dir)
    }
}

fn meta_u64(t: &Tables, key: &str) -> Result<u64, StorageError> {
    match t.meta.get(&key.to_owned())? {
        Some(v) => <u64 as table::Value>::from_bytes(&v),
        None => Ok(0),
    }
}

/// Runs blocking database work without stalling the async runtime's other tasks (on the
/// multi-threaded runtime the worker hands its queue to another thread first).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
