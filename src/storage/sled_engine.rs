//! The sled implementation of [`KvEngine`]. This file is the only place that names sled.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
};

use super::{
    engine::{Batch, KvEngine, KvIter, KvTree},
    StorageError,
};

pub struct SledEngine {
    db: sled::Db,
    /// Writers share it; a snapshot holds it alone, so it sees the database between two writes
    /// (a state the write order keeps consistent, like a crash point).
    gate: Arc<RwLock<()>>,
}

impl SledEngine {
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Durability is explicit: Haven flushes before acknowledging writes.
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(map_err)?;
        Ok(Self {
            db,
            gate: Arc::default(),
        })
    }
}

fn map_err(e: sled::Error) -> StorageError {
    StorageError::Engine(e.to_string())
}

impl KvEngine for SledEngine {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn KvTree>, StorageError> {
        Ok(Arc::new(SledTree(
            self.db.open_tree(name).map_err(map_err)?,
            self.gate.clone(),
        )))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(map_err)
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db.size_on_disk().map_err(map_err)
    }

    fn snapshot_to(&self, dir: &std::path::Path) -> Result<u64, StorageError> {
        let _alone = self.gate.write().unwrap_or_else(|e| e.into_inner());
        self.db.flush().map_err(map_err)?;
        let copy = sled::Config::new()
            .path(dir)
            .create_new(true)
            .open()
            .map_err(map_err)?;
        let mut entries = 0;
        for name in self.db.tree_names() {
            let from = self.db.open_tree(&name).map_err(map_err)?;
            let to = copy.open_tree(&name).map_err(map_err)?;
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in from.iter() {
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
}

struct SledTree(sled::Tree, Arc<RwLock<()>>);

impl SledTree {
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.1.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn pair(r: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
    r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(map_err)
}

impl KvTree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.get(key).map_err(map_err)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let _w = self.writing();
        self.0.insert(key, value).map(|_| ()).map_err(map_err)
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StorageError> {
        let _w = self.writing();
        self.0
            .compare_and_swap(key, None::<&[u8]>, Some(value))
            .map(|r| r.is_ok())
            .map_err(map_err)
    }

    fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        let _w = self.writing();
        self.0.remove(key).map(|_| ()).map_err(map_err)
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
        self.0.apply_batch(b).map_err(map_err)
    }

    fn range(&self, from: &[u8], to: &[u8], reverse: bool) -> KvIter<'_> {
        let it = self.0.range(from.to_vec()..to.to_vec());
        if reverse {
            Box::new(it.rev().map(pair))
        } else {
            Box::new(it.map(pair))
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_> {
        Box::new(self.0.scan_prefix(prefix).map(pair))
    }

    fn watch_prefix(&self, prefix: &[u8]) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let sub = self.0.watch_prefix(prefix);
        Box::pin(async move {
            let _ = sub.await;
        })
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}
