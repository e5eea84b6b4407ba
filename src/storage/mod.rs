//! Persistence. A small key-value engine abstraction ([`engine`]) implemented on fjall
//! ([`fjall_engine`], the default for a new data directory) and on sled ([`sled_engine`]), typed
//! tables on top ([`table`], [`keys`]), the schema of every table Haven keeps ([`schema`]), and
//! group commit ([`flusher`]) so an acknowledged write is durable without one fsync per request.

#[cfg(test)]
mod contract;
pub mod engine;
mod fjall_engine;
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

/// Which embedded engine holds the tables (`database.engine`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Whichever engine wrote the data directory; fjall for a new one.
    #[default]
    Auto,
    /// sled 0.34, in the data directory itself (the default before fjall was measured).
    Sled,
    /// fjall 3: an LSM tree with compressed blocks, in `<path>/fjall`: a seventh of sled's disk
    /// and a bounded memory (docs/performance.md).
    Fjall,
}

/// Whether `path` holds a sled database.
fn sled_in(path: &Path) -> bool {
    path.join("db").exists() && path.join("conf").exists()
}

/// The engine to open `path` with: the configured one, which must be the one that wrote the
/// directory (another would start empty, and the data would look lost).
fn resolve(path: &Path, kind: EngineKind) -> Result<EngineKind, StorageError> {
    let found = match (sled_in(path), fjall_engine::FjallEngine::exists_in(path)) {
        (true, false) => Some(EngineKind::Sled),
        (false, true) => Some(EngineKind::Fjall),
        (false, false) => None,
        (true, true) => {
            return Err(StorageError::Engine(format!(
                "{} holds both a sled and a fjall database; remove the one not in use",
                path.display()
            )))
        }
    };
    match (kind, found) {
        (EngineKind::Auto, Some(found)) => Ok(found),
        (EngineKind::Auto, None) => Ok(EngineKind::Fjall),
        (kind, Some(found)) if kind != found => Err(StorageError::Engine(format!(
            "{} holds a {} database: set database.engine = \"{}\" (or \"auto\")",
            path.display(),
            found.name(),
            found.name()
        ))),
        (kind, _) => Ok(kind),
    }
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Sled => "sled",
            EngineKind::Fjall => "fjall",
        }
    }
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
    /// Opens (creating if needed) the database under `path` with the engine that wrote it
    /// (fjall for a new one) and checks its schema version.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Arc<Self>, StorageError> {
        Self::open_engine(EngineKind::Auto, path, cache_bytes)
    }

    /// Opens (creating if needed) the database under `path` with the engine `kind` and checks
    /// its schema version.
    pub fn open_engine(
        kind: EngineKind,
        path: &Path,
        cache_bytes: u64,
    ) -> Result<Arc<Self>, StorageError> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::Engine(e.to_string()))?;
        let kind = resolve(path, kind)?;
        let engine: Arc<dyn engine::KvEngine> = match kind {
            EngineKind::Sled => Arc::new(sled_engine::SledEngine::open(path, cache_bytes)?),
            _ => Arc::new(fjall_engine::FjallEngine::open(path, cache_bytes)?),
        };
        tracing::info!(engine = kind.name(), path = %path.display(), "database opened");
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
