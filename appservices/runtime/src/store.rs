//! A small persistent key-value store for an appservice's own state (sled), with JSON values.

use serde::{de::DeserializeOwned, Serialize};

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Engine(#[from] sled::Error),
    #[error("state store value: {0}")]
    Codec(#[from] serde_json::Error),
}

impl Store {
    /// Opens (or creates) the store in `dir`. A store this process has just closed can stay
    /// locked for a moment while sled's background threads let go of it, so a held lock is
    /// waited for (up to 10 s) before it counts as another process's.
    pub fn open(dir: &std::path::Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match sled::Config::new().path(dir).flush_every_ms(None).open() {
                Ok(db) => return Ok(Self { db }),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn get<T: DeserializeOwned>(&self, tree: &str, key: &str) -> Result<Option<T>, StoreError> {
        match self.db.open_tree(tree)?.get(key)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&self, tree: &str, key: &str, value: &T) -> Result<(), StoreError> {
        self.db
            .open_tree(tree)?
            .insert(key, serde_json::to_vec(value)?)?;
        Ok(())
    }

    pub fn remove(&self, tree: &str, key: &str) -> Result<(), StoreError> {
        self.db.open_tree(tree)?.remove(key)?;
        Ok(())
    }

    pub fn contains(&self, tree: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.db.open_tree(tree)?.contains_key(key)?)
    }

    /// Every entry of `tree` in key order (values that do not decode are skipped).
    pub fn entries<T: DeserializeOwned>(&self, tree: &str) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.open_tree(tree)?.iter() {
            let (k, v) = item?;
            if let (Ok(k), Ok(v)) = (String::from_utf8(k.to_vec()), serde_json::from_slice(&v)) {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Makes every previous write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}
