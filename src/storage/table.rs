//! Typed views over a tree: keys through [`Key`], values as JSON (or raw integers).

use std::{marker::PhantomData, sync::Arc};

use serde::{de::DeserializeOwned, Serialize};

use super::{
    engine::{Batch, KvTree},
    keys::Key,
    StorageError,
};

/// How a value is stored.
pub trait Value: Sized {
    fn to_bytes(&self) -> Result<Vec<u8>, StorageError>;
    fn from_bytes(b: &[u8]) -> Result<Self, StorageError>;
}

/// Wraps a serde type stored as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned> Value for Json<T> {
    fn to_bytes(&self) -> Result<Vec<u8>, StorageError> {
        serde_json::to_vec(&self.0).map_err(|e| StorageError::Codec(e.to_string()))
    }

    fn from_bytes(b: &[u8]) -> Result<Self, StorageError> {
        serde_json::from_slice(b)
            .map(Json)
            .map_err(|e| StorageError::Codec(e.to_string()))
    }
}

impl Value for u64 {
    fn to_bytes(&self) -> Result<Vec<u8>, StorageError> {
        Ok(self.to_be_bytes().to_vec())
    }

    fn from_bytes(b: &[u8]) -> Result<Self, StorageError> {
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| StorageError::Corrupt("integer value"))?;
        Ok(u64::from_be_bytes(arr))
    }
}

impl Value for Vec<u8> {
    fn to_bytes(&self) -> Result<Vec<u8>, StorageError> {
        Ok(self.clone())
    }

    fn from_bytes(b: &[u8]) -> Result<Self, StorageError> {
        Ok(b.to_vec())
    }
}

impl Value for String {
    fn to_bytes(&self) -> Result<Vec<u8>, StorageError> {
        Ok(self.as_bytes().to_vec())
    }

    fn from_bytes(b: &[u8]) -> Result<Self, StorageError> {
        String::from_utf8(b.to_vec()).map_err(|_| StorageError::Corrupt("utf8 value"))
    }
}

impl Value for () {
    fn to_bytes(&self) -> Result<Vec<u8>, StorageError> {
        Ok(Vec::new())
    }

    fn from_bytes(_: &[u8]) -> Result<Self, StorageError> {
        Ok(())
    }
}

/// A tree whose keys are `K` and values `V`.
pub struct Table<K, V> {
    tree: Arc<dyn KvTree>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: Key, V: Value> Table<K, V> {
    pub fn new(tree: Arc<dyn KvTree>) -> Self {
        Self {
            tree,
            _types: PhantomData,
        }
    }

    pub fn get(&self, key: &K) -> Result<Option<V>, StorageError> {
        self.tree
            .get(&key.encode())?
            .map(|b| V::from_bytes(&b))
            .transpose()
    }

    pub fn contains(&self, key: &K) -> Result<bool, StorageError> {
        Ok(self.tree.get(&key.encode())?.is_some())
    }

    pub fn put(&self, key: &K, value: &V) -> Result<(), StorageError> {
        self.tree.put(&key.encode(), &value.to_bytes()?)
    }

    /// Writes `value` only if `key` has none, atomically; `false` (nothing written) when it had.
    pub fn insert_new(&self, key: &K, value: &V) -> Result<bool, StorageError> {
        self.tree.insert_new(&key.encode(), &value.to_bytes()?)
    }

    pub fn remove(&self, key: &K) -> Result<(), StorageError> {
        self.tree.remove(&key.encode())
    }

    /// Adds a write of this table to `batch` (which must be applied to this table).
    pub fn batch_put(&self, batch: &mut Batch, key: &K, value: &V) -> Result<(), StorageError> {
        batch.put(key.encode(), value.to_bytes()?);
        Ok(())
    }

    pub fn apply(&self, batch: Batch) -> Result<(), StorageError> {
        self.tree.apply_batch(batch)
    }

    /// All entries whose encoded key starts with `prefix` (see [`super::keys::prefix`]).
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(K, V), StorageError>> + '_ {
        self.tree.scan_prefix(prefix).map(decode_pair::<K, V>)
    }

    /// Entries with `from <= key < to` (encoded bounds).
    pub fn range(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
    ) -> impl Iterator<Item = Result<(K, V), StorageError>> + '_ {
        self.tree.range(from, to, reverse).map(decode_pair::<K, V>)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn decode_pair<K: Key, V: Value>(
    r: Result<(Vec<u8>, Vec<u8>), StorageError>,
) -> Result<(K, V), StorageError> {
    let (k, v) = r?;
    Ok((K::decode(&k)?, V::from_bytes(&v)?))
}
