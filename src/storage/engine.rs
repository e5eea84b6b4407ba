//! The key-value engine abstraction: everything Haven stores goes through these two traits, so
//! the engine (fjall or sled, chosen in the config) is replaced without touching the concern
//! modules.

use std::sync::{Arc, Mutex, Weak};

use super::StorageError;

/// A key/value pair as returned by scans.
pub type KvPair = (Vec<u8>, Vec<u8>);
/// Iterator over a tree's entries; errors are surfaced per item.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvPair, StorageError>> + Send + 'a>;

/// A batch of writes applied atomically to one tree.
#[derive(Default, Debug)]
pub struct Batch {
    pub(crate) ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A storage engine holding named trees that share one durability domain: `flush` makes every
/// write that happened before it durable, across all trees.
pub trait KvEngine: Send + Sync + 'static {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn KvTree>, StorageError>;
    /// Blocks until all previous writes are durable.
    fn flush(&self) -> Result<(), StorageError>;
    fn size_on_disk(&self) -> Result<u64, StorageError>;
    /// Copies every tree, as of one moment between writes, into a new database at `dir`;
    /// writers wait meanwhile. Answers how many entries were copied.
    fn snapshot_to(&self, dir: &std::path::Path) -> Result<u64, StorageError>;
    /// Rewrites the database into fresh files in place, while it runs, so removed data is
    /// gone from disk; writers wait meanwhile. Answers how many entries were kept.
    fn compact(&self) -> Result<u64, StorageError>;
    /// What each tree holds (a full read of the database: for operators, not requests).
    fn usage(&self) -> Result<Vec<TreeUsage>, StorageError>;
}

/// Entries and live bytes of one tree: where the space goes, before the engine's overhead.
#[derive(Debug, Clone, Default)]
pub struct TreeUsage {
    pub name: String,
    pub entries: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

impl TreeUsage {
    pub(super) fn add(&mut self, key: &[u8], value: &[u8]) {
        self.entries += 1;
        self.key_bytes += key.len() as u64;
        self.value_bytes += value.len() as u64;
    }
}

/// `it` as a [`KvIter`], ascending or (`reverse`) descending.
pub(super) fn ordered<'a, I>(it: I, reverse: bool) -> KvIter<'a>
where
    I: DoubleEndedIterator<Item = Result<KvPair, StorageError>> + Send + 'a,
{
    if reverse {
        Box::new(it.rev())
    } else {
        Box::new(it)
    }
}

/// The trees an engine has handed out, so that a compaction can move every handle still in
/// use to the fresh files.
pub(super) struct OpenTrees<T>(Mutex<Vec<Weak<T>>>);

impl<T> Default for OpenTrees<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> OpenTrees<T> {
    pub(super) fn add(&self, tree: &Arc<T>) {
        let mut trees = self.0.lock().unwrap_or_else(|e| e.into_inner());
        trees.retain(|t| t.strong_count() > 0);
        trees.push(Arc::downgrade(tree));
    }

    /// The trees still in use.
    pub(super) fn live(&self) -> Vec<Arc<T>> {
        let trees = self.0.lock().unwrap_or_else(|e| e.into_inner());
        trees.iter().filter_map(Weak::upgrade).collect()
    }
}

/// One ordered keyspace.
pub trait KvTree: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError>;
    /// Writes `value` only if `key` has none, atomically: `false` when it had one (nothing
    /// written). What a check-then-write pair cannot promise under concurrent requests.
    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StorageError>;
    fn remove(&self, key: &[u8]) -> Result<(), StorageError>;
    fn apply_batch(&self, batch: Batch) -> Result<(), StorageError>;
    /// Entries with `from <= key < to`, ascending or descending.
    fn range(&self, from: &[u8], to: &[u8], reverse: bool) -> KvIter<'_>;
    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
