//! The sled implementation of [`KvEngine`]. This file is the only place that names sled.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use super::{
    engine::{ordered, Batch, KvEngine, KvIter, KvTree, OpenTrees},
    StorageError,
};

pub struct SledEngine {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    cache_bytes: u64,
    /// Writers share it; a snapshot or a compaction holds it alone, so it sees the database
    /// between two writes (a state the write order keeps consistent, like a crash point).
    gate: RwLock<()>,
    db: RwLock<sled::Db>,
    /// Every tree handed out, so a compaction can move them to the fresh files.
    trees: OpenTrees<SledTree>,
}

fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, StorageError> {
    // A database this process has just closed can stay locked for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Durability is explicit: Haven flushes before acknowledging writes.
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other.map_err(map_err),
        }
    }
}

/// `path` with a suffix, next to it: `data` -> `data.compacting`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Marks a fresh copy as complete: from then on, the swap is finished even after a crash.
const COMPLETE: &str = "COMPLETE";

/// Puts the fresh copy's files in the place of the database's own (leaving anything else in
/// the directory, such as media, alone) and removes the old ones. Safe to repeat after a crash
/// at any point.
fn swap_in(path: &Path, fresh: &Path, old: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(old)?;
    let sled_owned = |name: &std::ffi::OsStr| {
        let n = name.to_string_lossy();
        n.starts_with("snap.") || fresh.join(name).exists()
    };
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        if sled_owned(&name) {
            std::fs::rename(entry.path(), old.join(&name))?;
        }
    }
    for entry in std::fs::read_dir(fresh)? {
        let entry = entry?;
        if entry.file_name() != COMPLETE {
            std::fs::rename(entry.path(), path.join(entry.file_name()))?;
        }
    }
    std::fs::remove_dir_all(fresh)?;
    std::fs::remove_dir_all(old)
}

/// Finishes or undoes a compaction a crash cut short (see [`SledEngine::compact`]).
fn recover(path: &Path) -> Result<(), StorageError> {
    let (fresh, old) = (beside(path, ".compacting"), beside(path, ".before-compact"));
    let io = |e: std::io::Error| StorageError::Engine(format!("finishing a compaction: {e}"));
    if fresh.join(COMPLETE).exists() {
        swap_in(path, &fresh, &old).map_err(io)?;
    }
    for d in [&fresh, &old] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(io)?;
        }
    }
    Ok(())
}

impl SledEngine {
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        recover(path)?;
        let db = open_sled(path, cache_bytes)?;
        Ok(Self {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                cache_bytes,
                gate: RwLock::default(),
                db: RwLock::new(db),
                trees: OpenTrees::default(),
            }),
        })
    }

    fn db(&self) -> sled::Db {
        self.shared
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn map_err(e: sled::Error) -> StorageError {
    StorageError::Engine(e.to_string())
}

/// Copies every tree of `from` into a new database at `dir`.
fn copy_all(from: &sled::Db, dir: &Path) -> Result<u64, StorageError> {
    let copy = sled::Config::new()
        .path(dir)
        .create_new(true)
        .open()
        .map_err(map_err)?;
    let mut entries = 0;
    for name in from.tree_names() {
        let src = from.open_tree(&name).map_err(map_err)?;
        let to = copy.open_tree(&name).map_err(map_err)?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in src.iter() {
            let (k, v) = item.map_err(map_err)?;
            batch.insert(k, v);
            n += 1;
            if n % 10_000 == 0 {
                to.apply_batch(std::mem::take(&mut batch))
                    .map_err(map_err)?;
            }
        }
        to.apply_batch(batch).map_err(map_err)?;
        entries += n;
    }
    copy.flush().map_err(map_err)?;
    Ok(entries)
}

impl KvEngine for SledEngine {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn KvTree>, StorageError> {
        let tree = Arc::new(SledTree {
            name: name.to_owned(),
            tree: RwLock::new(self.db().open_tree(name).map_err(map_err)?),
            shared: self.shared.clone(),
        });
        self.shared.trees.add(&tree);
        Ok(tree)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db().flush().map(|_| ()).map_err(map_err)
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db().size_on_disk().map_err(map_err)
    }

    fn usage(&self) -> Result<Vec<super::engine::TreeUsage>, StorageError> {
        let db = self.db();
        let mut out = Vec::new();
        for name in db.tree_names() {
            let tree = db.open_tree(&name).map_err(map_err)?;
            let mut u = super::engine::TreeUsage {
                name: String::from_utf8_lossy(&name).into_owned(),
                ..Default::default()
            };
            for item in tree.iter() {
                let (k, v) = item.map_err(map_err)?;
                u.add(&k, &v);
            }
            out.push(u);
        }
        Ok(out)
    }

    fn snapshot_to(&self, dir: &Path) -> Result<u64, StorageError> {
        let _alone = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let db = self.db();
        db.flush().map_err(map_err)?;
        copy_all(&db, dir)
    }

    /// Rewrites the database into fresh files while it runs and deletes the old ones, so what
    /// was removed (a purged room) is gone from disk: sled is log-structured and otherwise
    /// keeps old pages until it happens to rewrite them. Writers wait meanwhile; readers go
    /// on with the old files until the swap. A crash at any point is finished or undone at the
    /// next open.
    fn compact(&self) -> Result<u64, StorageError> {
        let shared = &self.shared;
        let _alone = shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let (fresh, old) = (
            beside(&shared.path, ".compacting"),
            beside(&shared.path, ".before-compact"),
        );
        let io = |e: std::io::Error| StorageError::Engine(format!("compacting: {e}"));
        for d in [&fresh, &old] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(io)?;
            }
        }
        let db = self.db();
        db.flush().map_err(map_err)?;
        let entries = copy_all(&db, &fresh)?;
        std::fs::write(fresh.join(COMPLETE), b"").map_err(io)?;
        swap_in(&shared.path, &fresh, &old).map_err(io)?;
        let reopened = open_sled(&shared.path, shared.cache_bytes)?;
        for t in shared.trees.live() {
            let fresh_tree = reopened.open_tree(&t.name).map_err(map_err)?;
            *t.tree.write().unwrap_or_else(|e| e.into_inner()) = fresh_tree;
        }
        *shared.db.write().unwrap_or_else(|e| e.into_inner()) = reopened;
        Ok(entries)
    }
}

struct SledTree {
    name: String,
    tree: RwLock<sled::Tree>,
    shared: Arc<Shared>,
}

impl SledTree {
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.shared.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    fn t(&self) -> sled::Tree {
        self.tree.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn pair(r: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
    r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(map_err)
}

impl KvTree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.t().get(key).map_err(map_err)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let _w = self.writing();
        self.t().insert(key, value).map(|_| ()).map_err(map_err)
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StorageError> {
        let _w = self.writing();
        self.t()
            .compare_and_swap(key, None::<&[u8]>, Some(value))
            .map(|r| r.is_ok())
            .map_err(map_err)
    }

    fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        let _w = self.writing();
        self.t().remove(key).map(|_| ()).map_err(map_err)
    }

    fn apply_batch(&self, batch: Batch) -> Result<(), StorageError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        let _w = self.writing();
        self.t().apply_batch(b).map_err(map_err)
    }

    fn range(&self, from: &[u8], to: &[u8], reverse: bool) -> KvIter<'_> {
        ordered(
            self.t().range(from.to_vec()..to.to_vec()).map(pair),
            reverse,
        )
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_> {
        Box::new(self.t().scan_prefix(prefix).map(pair))
    }

    fn len(&self) -> usize {
        self.t().len()
    }
}
