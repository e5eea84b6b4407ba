//! A small persistent key-value store for an appservice's own state (sled), with JSON values.
//!
//! Removing an entry does not remove its bytes from disk: sled is log-structured and keeps
//! old pages until it rewrites them. What must be gone (a texter's words after DELETE or
//! retention) is made gone by [`Store::compact`], which rewrites the store into fresh files
//! and deletes the old ones, while every other use of the store waits.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use serde::{de::DeserializeOwned, Serialize};

#[derive(Clone)]
pub struct Store {
    dir: Arc<PathBuf>,
    db: Arc<RwLock<sled::Db>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Engine(#[from] sled::Error),
    #[error("state store files: {0}")]
    Files(#[from] std::io::Error),
    #[error("state store value: {0}")]
    Codec(#[from] serde_json::Error),
}

impl Store {
    /// Opens (or creates) the store in `dir`. A store this process has just closed can stay
    /// locked for a moment while sled's background threads let go of it, so a held lock is
    /// waited for (up to 10 s) before it counts as another process's.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // A compaction cut short: the fresh copy is complete before the old store moves
        // aside, so a missing store with both beside it is finished with the fresh one; what
        // is left of the old one goes.
        let (fresh, old) = (sibling(dir, "compacting"), sibling(dir, "before-compact"));
        if !dir.exists() && fresh.exists() && old.exists() {
            std::fs::rename(&fresh, dir)?;
        }
        for d in [&fresh, &old] {
            if d.exists() && dir.exists() {
                std::fs::remove_dir_all(d)?;
            }
        }
        Ok(Self {
            dir: Arc::new(dir.to_owned()),
            db: Arc::new(RwLock::new(open_sled(dir)?)),
        })
    }

    fn db(&self) -> std::sync::RwLockReadGuard<'_, sled::Db> {
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites the store into fresh files and deletes the old ones, so removed entries are
    /// gone from disk. Every other use of the store waits meanwhile (the stores are small:
    /// milliseconds). Answers how many entries were kept.
    pub fn compact(&self) -> Result<u64, StoreError> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        let fresh_dir = sibling(&self.dir, "compacting");
        let old_dir = sibling(&self.dir, "before-compact");
        for d in [&fresh_dir, &old_dir] {
            if d.exists() {
                std::fs::remove_dir_all(d)?;
            }
        }
        let mut kept = 0u64;
        {
            let fresh = sled::Config::new()
                .path(&fresh_dir)
                .flush_every_ms(None)
                .open()?;
            for name in db.tree_names() {
                let from = db.open_tree(&name)?;
                let to = fresh.open_tree(&name)?;
                for item in from.iter() {
                    let (k, v) = item?;
                    to.insert(k, v)?;
                    kept += 1;
                }
            }
            fresh.flush()?;
        }
        db.flush()?;
        // The fresh files take the store's place; the old ones (with what was removed) go.
        std::fs::rename(self.dir.as_path(), &old_dir)?;
        std::fs::rename(&fresh_dir, self.dir.as_path())?;
        *db = open_sled(&self.dir)?;
        std::fs::remove_dir_all(&old_dir)?;
        Ok(kept)
    }
}

/// `dir` with a suffix, next to it: `state/store` -> `state/store.compacting`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match sled::Config::new().path(dir).flush_every_ms(None).open() {
                Ok(db) => return Ok(db),
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
}

impl Store {
    pub fn get<T: DeserializeOwned>(&self, tree: &str, key: &str) -> Result<Option<T>, StoreError> {
        match self.db().open_tree(tree)?.get(key)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&self, tree: &str, key: &str, value: &T) -> Result<(), StoreError> {
        self.db()
            .open_tree(tree)?
            .insert(key, serde_json::to_vec(value)?)?;
        Ok(())
    }

    pub fn remove(&self, tree: &str, key: &str) -> Result<(), StoreError> {
        self.db().open_tree(tree)?.remove(key)?;
        Ok(())
    }

    pub fn contains(&self, tree: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.db().open_tree(tree)?.contains_key(key)?)
    }

    /// Every entry of `tree` in key order (values that do not decode are skipped).
    pub fn entries<T: DeserializeOwned>(&self, tree: &str) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db().open_tree(tree)?.iter() {
            let (k, v) = item?;
            if let (Ok(k), Ok(v)) = (String::from_utf8(k.to_vec()), serde_json::from_slice(&v)) {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Makes every previous write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db().clone();
        db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_contain(dir: &Path, needle: &[u8]) -> bool {
        !haven_testkit::files_holding(dir, needle).is_empty()
    }

    #[tokio::test]
    async fn compaction_leaves_nothing_removed_on_disk_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let store = Store::open(&dir).unwrap();
        let secret = "the texter said something only they should know";
        store.put("answers", "a", &secret).unwrap();
        store.put("answers", "b", &"kept").unwrap();
        store.put("other", "c", &3u32).unwrap();
        store.flush().await.unwrap();
        store.remove("answers", "a").unwrap();
        store.flush().await.unwrap();
        assert!(
            files_contain(tmp.path(), secret.as_bytes()),
            "sled keeps old pages"
        );
        let clone = store.clone();
        assert_eq!(store.compact().unwrap(), 2);
        assert!(!files_contain(tmp.path(), secret.as_bytes()));
        assert_eq!(
            clone.get::<String>("answers", "b").unwrap().as_deref(),
            Some("kept")
        );
        assert_eq!(clone.get::<u32>("other", "c").unwrap(), Some(3));
        clone.put("answers", "d", &"after").unwrap();
        clone.flush().await.unwrap();
        drop((store, clone));
        let reopened = Store::open(&dir).unwrap();
        assert_eq!(
            reopened.get::<String>("answers", "d").unwrap().as_deref(),
            Some("after")
        );
    }

    #[test]
    fn a_compaction_cut_short_is_finished_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        {
            let fresh = Store::open(&sibling(&dir, "compacting")).unwrap();
            fresh.put("t", "k", &"fresh").unwrap();
            let old = Store::open(&sibling(&dir, "before-compact")).unwrap();
            old.put("t", "k", &"old").unwrap();
            let db = fresh.db().clone();
            db.flush().unwrap();
            let db = old.db().clone();
            db.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store.get::<String>("t", "k").unwrap().as_deref(),
            Some("fresh")
        );
        assert!(!sibling(&dir, "before-compact").exists());
    }
}
