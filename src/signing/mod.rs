//! The server's ed25519 signing key: generated on first start, kept in the database, used to
//! sign every PDU this server creates and every federation request. A rotated key's public half
//! stays published (`old_verify_keys`) so that what it signed can still be checked.

use ruma::{
    serde::Base64,
    signatures::{Ed25519KeyPair, KeyPair},
    OwnedServerName,
};

use crate::{error::Result, storage::Storage};

const KEY_DER: &str = "signing_key_der";
const KEY_VERSION: &str = "signing_key_version";
/// JSON: key id -> `{ "key": public key, "expired_ts": ms }` of keys rotated out.
const OLD_KEYS: &str = "signing_old_keys";

pub struct ServerKey {
    pub server_name: OwnedServerName,
    pub pair: Ed25519KeyPair,
    /// Keys this server used before, as `old_verify_keys` lists them.
    pub old_keys: serde_json::Map<String, serde_json::Value>,
}

impl ServerKey {
    /// Loads the stored key, generating and storing one on first start.
    pub fn load_or_generate(db: &Storage, server_name: OwnedServerName) -> Result<Self> {
        let der = db.t.meta.get(&KEY_DER.to_owned())?;
        let version = db.t.meta.get(&KEY_VERSION.to_owned())?;
        let (der, version) = match (der, version) {
            (Some(d), Some(v)) => (
                d,
                String::from_utf8(v).map_err(crate::error::Error::internal)?,
            ),
            _ => {
                let der = Ed25519KeyPair::generate().to_vec();
                let version = format!("a_{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
                db.t.meta.put(&KEY_DER.to_owned(), &der)?;
                db.t.meta
                    .put(&KEY_VERSION.to_owned(), &version.clone().into_bytes())?;
                db.flush_blocking()?;
                tracing::info!(key_id = %format!("ed25519:{version}"), "generated a new signing key");
                (der, version)
            }
        };
        let pair =
            Ed25519KeyPair::from_der(&der, version).map_err(crate::error::Error::internal)?;
        Ok(Self {
            server_name,
            pair,
            old_keys: old_keys(db)?,
        })
    }

    /// Replaces the signing key with a new one (for a key that may have leaked); the old one
    /// is kept as expired now. Run with the server stopped. Answers the old and new key ids.
    pub fn rotate(db: &Storage, server_name: OwnedServerName) -> Result<(String, String)> {
        let old = Self::load_or_generate(db, server_name)?;
        let mut expired = old.old_keys.clone();
        expired.insert(
            old.key_id(),
            serde_json::json!({
                "key": old.public_key_base64(),
                "expired_ts": crate::util::now_ms(),
            }),
        );
        let der = Ed25519KeyPair::generate().to_vec();
        let version = format!("a_{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        db.t.meta.put(
            &OLD_KEYS.to_owned(),
            &serde_json::to_vec(&expired).map_err(crate::error::Error::internal)?,
        )?;
        db.t.meta.put(&KEY_DER.to_owned(), &der)?;
        db.t.meta
            .put(&KEY_VERSION.to_owned(), &version.clone().into_bytes())?;
        db.flush_blocking()?;
        Ok((old.key_id(), format!("ed25519:{version}")))
    }

    /// `ed25519:<version>`
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.pair.version())
    }

    pub fn public_key_base64(&self) -> String {
        Base64::<ruma::serde::base64::Standard, _>::new(self.pair.public_key().to_vec()).encode()
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_bytes().to_vec()
    }
}

fn old_keys(db: &Storage) -> Result<serde_json::Map<String, serde_json::Value>> {
    match db.t.meta.get(&OLD_KEYS.to_owned())? {
        Some(b) => serde_json::from_slice(&b).map_err(crate::error::Error::internal),
        None => Ok(serde_json::Map::new()),
    }
}
