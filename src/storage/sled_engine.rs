//! The sled implementation of [`KvEngine`]. This file is the only place that names sled.

use std::{future::Future, pin::Pin, sync::Arc};

use super::{
    engine::{Batch, KvEngine, KvIter, KvTree},
    StorageError,
};

pub struct SledEngine {
    db: sled::Db,
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
        Ok(Self { db })
    }
}

fn map_err(e: sled::Error) -> StorageError {
    StorageError::Engine(e.to_string())
}

impl KvEngine for SledEngine {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn KvTree>, StorageError> {
        Ok(Arc::new(SledTree(
            self.db.open_tree(name).map_err(map_err)?,
        )))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(map_err)
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db.size_on_disk().map_err(map_err)
    }
}

struct SledTree(sled::Tree);

fn pair(r: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
    r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(map_err)
}

impl KvTree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.get(key).map_err(map_err)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.0.insert(key, value).map(|_| ()).map_err(map_err)
    }

    fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
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
