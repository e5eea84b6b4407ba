//! The fjall implementation of [`KvEngine`], chosen with `database.engine = "fjall"`: a
//! log-structured merge tree with LZ4-compressed blocks, so the disk holds about what the
//! tables hold rather than sled's several copies of it. This file is the only place that
//! names fjall.
//!
//! The database lives in `<data>/fjall`, so the data directory can hold other things (media)
//! and an engine never opens the other's files by mistake.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{
    engine::{ordered, Batch, KvEngine, KvIter, KvTree, OpenTrees, TreeUsage},
    StorageError,
};

/// The database's directory inside the data directory.
const DIR: &str = "fjall";
/// Every table's memtable is written out once it holds this much...
const MEMTABLE_BYTES: u64 = 2 << 20;
/// ...and all memtables together never hold more than this: what bounds the write memory of
/// forty tables, most of them small.
const WRITE_BUFFER_BYTES: u64 = 16 << 20;
/// The journal is cut (and old memtables written out) at this size, the smallest fjall allows.
const JOURNAL_BYTES: u64 = 64 << 20;

pub struct FjallEngine {
    shared: Arc<Shared>,
}

struct Shared {
    /// The data directory (the database is in `root/fjall`).
    root: PathBuf,
    cache_bytes: u64,
    /// Writers share it; a snapshot or a compaction holds it alone, so it sees the database
    /// between two writes.
    gate: RwLock<()>,
    db: RwLock<Database>,
    /// Every tree handed out, so a compaction can move them to the fresh files.
    trees: OpenTrees<FjallTree>,
    /// The active journal file, opened once for [`KvEngine::flush`]'s fsync.
    journal: Mutex<Option<(PathBuf, u64, std::fs::File)>>,
}

fn map_err(e: fjall::Error) -> StorageError {
    StorageError::Engine(e.to_string())
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StorageError {
    move |e| StorageError::Engine(format!("{what}: {e}"))
}

fn open_db(dir: &Path, cache_bytes: u64) -> Result<Database, StorageError> {
    // A database this process has just closed can stay locked for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        #[allow(deprecated)]
        // fjall marks the write-buffer bound unstable; it is what caps memtables
        let opened = Database::builder(dir)
            .cache_size(cache_bytes)
            .max_write_buffer_size(Some(WRITE_BUFFER_BYTES))
            .max_journaling_size(JOURNAL_BYTES)
            // Writes reach the journal file at `flush`, which every acknowledgement waits for
            // (group commit), rather than one `write` call per insert.
            .manual_journal_persist(true)
            .open();
        match opened {
            Err(fjall::Error::Locked) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other.map_err(map_err),
        }
    }
}

fn keyspace(db: &Database, name: &str) -> Result<Keyspace, StorageError> {
    db.keyspace(name, || {
        KeyspaceCreateOptions::default()
            .max_memtable_size(MEMTABLE_BYTES)
            // See `open_db`: the journal is written out at `flush`.
            .manual_journal_persist(true)
    })
    .map_err(map_err)
}

/// `root/fjall` with a suffix: `fjall.compacting`.
fn dir(root: &Path, suffix: &str) -> PathBuf {
    root.join(format!("{DIR}{suffix}"))
}

/// Marks a fresh copy as complete: from then on the swap is finished even after a crash.
const COMPLETE: &str = ".complete";

/// Puts the fresh copy in the place of the database and removes the old one. Safe to repeat
/// after a crash at any point.
fn swap_in(root: &Path) -> std::io::Result<()> {
    let (live, fresh, old) = (
        dir(root, ""),
        dir(root, ".compacting"),
        dir(root, ".before-compact"),
    );
    if fresh.exists() {
        if live.exists() {
            std::fs::rename(&live, &old)?;
        }
        std::fs::rename(&fresh, &live)?;
    }
    std::fs::remove_file(dir(root, COMPLETE))?;
    if old.exists() {
        // The old database may still be closing; what is left goes at the next start.
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(error = %e, path = %old.display(), "old database files left for the next start");
        }
    }
    Ok(())
}

/// Finishes or undoes a compaction a crash cut short.
fn recover(root: &Path) -> Result<(), StorageError> {
    if dir(root, COMPLETE).exists() {
        swap_in(root).map_err(io("finishing a compaction"))?;
    }
    for d in [dir(root, ".compacting"), dir(root, ".before-compact")] {
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(io("finishing a compaction"))?;
        }
    }
    Ok(())
}

/// Copies every keyspace of `from` into a new database in `to`.
fn copy_all(from: &Database, to: &Path) -> Result<u64, StorageError> {
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(io("copying the database"))?;
    }
    let copy = open_db(to, 1 << 20)?;
    let mut entries = 0;
    for name in from.list_keyspace_names() {
        let name: &str = name.as_ref();
        let (src, dst) = (keyspace(from, name)?, keyspace(&copy, name)?);
        let mut batch = copy.batch();
        for item in src.iter() {
            let (k, v) = item.into_inner().map_err(map_err)?;
            batch.insert(&dst, k, v);
            entries += 1;
            if batch.len() >= 10_000 {
                std::mem::replace(&mut batch, copy.batch())
                    .commit()
                    .map_err(map_err)?;
            }
        }
        batch.commit().map_err(map_err)?;
    }
    copy.persist(PersistMode::SyncAll).map_err(map_err)?;
    Ok(entries)
}

impl FjallEngine {
    /// Opens (creating if needed) the database in `root/fjall`.
    pub fn open(root: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        recover(root)?;
        let db = open_db(&dir(root, ""), cache_bytes)?;
        Ok(Self {
            shared: Arc::new(Shared {
                root: root.to_owned(),
                cache_bytes,
                gate: RwLock::default(),
                db: RwLock::new(db),
                trees: OpenTrees::default(),
                journal: Mutex::default(),
            }),
        })
    }

    /// Makes every write so far durable without holding fjall's journal lock through the
    /// fsync: `persist(SyncAll)` would, stopping every writer for the length of a disk flush
    /// (a third of a big room's send throughput). Instead the journal's buffer is handed to
    /// the kernel under the lock, and the active journal file is fsynced after it. That is
    /// enough: fjall fsyncs a journal itself before it creates the next one, so a journal
    /// newer than the one written to can only appear once that one is durable.
    fn sync_journal(&self, db: &Database) -> Result<(), StorageError> {
        use std::os::unix::fs::MetadataExt;
        db.persist(PersistMode::Buffer).map_err(map_err)?;
        let live = dir(&self.shared.root, "");
        let newest = std::fs::read_dir(&live)
            .map_err(io("syncing the journal"))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n: u64 = name.strip_suffix(".jnl")?.parse().ok()?;
                Some((n, e.path()))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, p)| p)
            .ok_or_else(|| StorageError::Engine("no journal file".into()))?;
        let ino = std::fs::metadata(&newest)
            .map_err(io("syncing the journal"))?
            .ino();
        let mut cached = self
            .shared
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !matches!(&*cached, Some((p, i, _)) if *p == newest && *i == ino) {
            let file = std::fs::File::open(&newest).map_err(io("syncing the journal"))?;
            *cached = Some((newest, ino, file));
        }
        match &*cached {
            Some((_, _, file)) => file.sync_all().map_err(io("syncing the journal")),
            None => Ok(()),
        }
    }

    /// Whether `root` holds a fjall database (or one a crash left mid-compaction, between its
    /// two renames).
    pub fn exists_in(root: &Path) -> bool {
        dir(root, "").exists() || dir(root, COMPLETE).exists()
    }

    fn db(&self) -> Database {
        self.shared
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl KvEngine for FjallEngine {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn KvTree>, StorageError> {
        let db = self.db();
        let tree = Arc::new(FjallTree {
            name: name.to_owned(),
            ks: RwLock::new((db.clone(), keyspace(&db, name)?)),
            writes: Mutex::default(),
            shared: self.shared.clone(),
        });
        self.shared.trees.add(&tree);
        Ok(tree)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Not while a compaction moves the directories (it makes everything before it durable).
        let _between = self.shared.gate.read().unwrap_or_else(|e| e.into_inner());
        self.sync_journal(&self.db())
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db().disk_space().map_err(map_err)
    }

    fn usage(&self) -> Result<Vec<TreeUsage>, StorageError> {
        let db = self.db();
        let mut out = Vec::new();
        for name in db.list_keyspace_names() {
            let name: &str = name.as_ref();
            let mut u = TreeUsage {
                name: name.to_owned(),
                ..Default::default()
            };
            for item in keyspace(&db, name)?.iter() {
                let (k, v) = item.into_inner().map_err(map_err)?;
                u.add(&k, &v);
            }
            out.push(u);
        }
        Ok(out)
    }

    fn snapshot_to(&self, to: &Path) -> Result<u64, StorageError> {
        let _alone = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(to).map_err(io("copying the database"))?;
        copy_all(&self.db(), &dir(to, ""))
    }

    /// Rewrites the database into a fresh directory and deletes the old one, so what was
    /// removed is gone from disk (an LSM tree keeps removed values in older files until it
    /// happens to merge them). Writers wait meanwhile; a crash at any point is finished or
    /// undone at the next open.
    fn compact(&self) -> Result<u64, StorageError> {
        let shared = &self.shared;
        let _alone = shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let root = &shared.root;
        let db = self.db();
        db.persist(PersistMode::SyncAll).map_err(map_err)?;
        let entries = copy_all(&db, &dir(root, ".compacting"))?;
        std::fs::write(dir(root, COMPLETE), b"").map_err(io("compacting"))?;
        // The old database stays open (in its renamed directory) until no handle is left.
        let live = dir(root, "");
        let old = dir(root, ".before-compact");
        if old.exists() {
            // Left by an earlier compaction whose old files were still in use.
            std::fs::remove_dir_all(&old).map_err(io("compacting"))?;
        }
        std::fs::rename(&live, &old).map_err(io("compacting"))?;
        std::fs::rename(dir(root, ".compacting"), &live).map_err(io("compacting"))?;
        let reopened = open_db(&live, shared.cache_bytes)?;
        for t in shared.trees.live() {
            let ks = keyspace(&reopened, &t.name)?;
            *t.ks.write().unwrap_or_else(|e| e.into_inner()) = (reopened.clone(), ks);
        }
        *shared.db.write().unwrap_or_else(|e| e.into_inner()) = reopened;
        drop(db);
        swap_in(root).map_err(io("compacting"))?;
        Ok(entries)
    }
}

struct FjallTree {
    name: String,
    ks: RwLock<(Database, Keyspace)>,
    /// One writer at a time per tree, so [`KvTree::insert_new`]'s check and write are one step
    /// (fjall has no compare-and-swap outside transactions).
    writes: Mutex<()>,
    shared: Arc<Shared>,
}

impl FjallTree {
    fn writing(
        &self,
    ) -> (
        std::sync::RwLockReadGuard<'_, ()>,
        std::sync::MutexGuard<'_, ()>,
    ) {
        let gate = self.shared.gate.read().unwrap_or_else(|e| e.into_inner());
        (gate, self.writes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn ks(&self) -> (Database, Keyspace) {
        self.ks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The keyspace alone (reads need no database handle).
    fn k(&self) -> Keyspace {
        self.ks.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

fn pair(g: fjall::Guard) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
    g.into_inner()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .map_err(map_err)
}

impl KvTree for FjallTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.k().get(key).map_err(map_err)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let _w = self.writing();
        self.k().insert(key, value).map_err(map_err)
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StorageError> {
        let _w = self.writing();
        let ks = self.k();
        if ks.contains_key(key).map_err(map_err)? {
            return Ok(false);
        }
        ks.insert(key, value).map_err(map_err)?;
        Ok(true)
    }

    fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        let _w = self.writing();
        self.k().remove(key).map_err(map_err)
    }

    fn apply_batch(&self, batch: Batch) -> Result<(), StorageError> {
        let _w = self.writing();
        let (db, ks) = self.ks();
        let mut b = db.batch();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(&ks, k, v),
                None => b.remove(&ks, k),
            }
        }
        b.commit().map_err(map_err)
    }

    fn range(&self, from: &[u8], to: &[u8], reverse: bool) -> KvIter<'_> {
        ordered(
            self.k().range(from.to_vec()..to.to_vec()).map(pair),
            reverse,
        )
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_> {
        Box::new(self.k().prefix(prefix).map(pair))
    }

    fn len(&self) -> usize {
        self.k().len().unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.k().is_empty().unwrap_or(true)
    }
}
