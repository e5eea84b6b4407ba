//! Phone numbers never leave the bridge in clear: Matrix sees a puppet `@sms_<keyed hash>` with
//! a neutral label ("Texter 4821"), and the number is stored encrypted with AES-256-GCM under a
//! key ID kept with each value, so keys can be rotated while old values stay readable.

use std::collections::BTreeMap;

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    Aes256Gcm, Key, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{0}")]
    Config(String),
    #[error("stored number is corrupt")]
    Corrupt,
    #[error("no key with id {0} (was it removed before re-encrypting?)")]
    UnknownKey(String),
}

/// Names puppets after a keyed hash of the number, so the same texter always gets the same
/// puppet and nobody without the key can go back from puppet to number.
#[derive(Clone)]
pub struct PuppetNamer {
    key: Vec<u8>,
}

impl PuppetNamer {
    pub fn new(key: &[u8]) -> Result<Self, PrivacyError> {
        if key.len() < 32 {
            return Err(PrivacyError::Config(
                "the hash key must be at least 32 bytes".into(),
            ));
        }
        Ok(Self { key: key.to_vec() })
    }

    fn digest(&self, number: &str) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(number.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// `sms_<20 hex digits>`
    pub fn localpart(&self, number: &str) -> String {
        format!("sms_{}", &hex::encode(self.digest(number))[..20])
    }

    /// "Texter 4821": a stable, neutral display name.
    pub fn label(&self, number: &str) -> String {
        let d = self.digest(number);
        let n = u16::from_be_bytes([d[30], d[31]]) % 10_000;
        format!("Texter {n:04}")
    }
}

/// Encrypts and decrypts stored phone numbers.
pub struct NumberVault {
    keys: BTreeMap<String, Aes256Gcm>,
    current: String,
}

impl NumberVault {
    /// `keys`: key ID -> 32-byte key; `current` encrypts new values.
    pub fn new(keys: BTreeMap<String, Vec<u8>>, current: &str) -> Result<Self, PrivacyError> {
        let mut ciphers = BTreeMap::new();
        for (id, k) in keys {
            if k.len() != 32 {
                return Err(PrivacyError::Config(format!(
                    "key {id} must be 32 bytes (AES-256)"
                )));
            }
            if id.contains(':') || id.is_empty() {
                return Err(PrivacyError::Config(format!(
                    "key id `{id}` must be non-empty without ':'"
                )));
            }
            ciphers.insert(id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k)));
        }
        if !ciphers.contains_key(current) {
            return Err(PrivacyError::Config(format!(
                "the current key id `{current}` has no key"
            )));
        }
        Ok(Self {
            keys: ciphers,
            current: current.to_owned(),
        })
    }

    /// Parses `id=base64key,id2=base64key` (the environment's form).
    pub fn from_env_value(value: &str, current: &str) -> Result<Self, PrivacyError> {
        let mut keys = BTreeMap::new();
        for part in value.split(',').filter(|p| !p.is_empty()) {
            let (id, b64) = part
                .split_once('=')
                .ok_or_else(|| PrivacyError::Config("keys look like id=base64key".into()))?;
            let key = STANDARD
                .decode(b64.trim())
                .map_err(|_| PrivacyError::Config(format!("key {id} is not base64")))?;
            keys.insert(id.trim().to_owned(), key);
        }
        Self::new(keys, current)
    }

    /// `<key id>:<base64(nonce ‖ ciphertext)>`
    pub fn encrypt(&self, number: &str) -> String {
        let cipher = &self.keys[&self.current];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(&nonce, number.as_bytes())
            .expect("AES-GCM encryption does not fail");
        let mut blob = nonce.to_vec();
        blob.extend(ct);
        format!("{}:{}", self.current, STANDARD.encode(blob))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, PrivacyError> {
        let (id, b64) = stored.split_once(':').ok_or(PrivacyError::Corrupt)?;
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| PrivacyError::UnknownKey(id.to_owned()))?;
        let blob = STANDARD.decode(b64).map_err(|_| PrivacyError::Corrupt)?;
        if blob.len() < 12 {
            return Err(PrivacyError::Corrupt);
        }
        let (nonce, ct) = blob.split_at(12);
        let pt = cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| PrivacyError::Corrupt)?;
        String::from_utf8(pt).map_err(|_| PrivacyError::Corrupt)
    }

    /// Whether a stored value should be re-encrypted under the current key.
    pub fn needs_rotation(&self, stored: &str) -> bool {
        stored
            .split_once(':')
            .is_none_or(|(id, _)| id != self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puppets_are_stable_and_reveal_nothing() {
        let n = PuppetNamer::new(&[7u8; 32]).unwrap();
        let a = n.localpart("+15551234567");
        assert_eq!(a, n.localpart("+15551234567"));
        assert_ne!(a, n.localpart("+15551234568"));
        assert!(a.starts_with("sms_") && !a.contains("5551234567"));
        assert!(n.label("+15551234567").starts_with("Texter "));
        let other = PuppetNamer::new(&[8u8; 32]).unwrap();
        assert_ne!(a, other.localpart("+15551234567"));
        assert!(PuppetNamer::new(b"short").is_err());
    }

    #[test]
    fn numbers_round_trip_and_keys_rotate() {
        let k1 = STANDARD.encode([1u8; 32]);
        let k2 = STANDARD.encode([2u8; 32]);
        let old = NumberVault::from_env_value(&format!("k1={k1}"), "k1").unwrap();
        let stored = old.encrypt("+15551234567");
        assert!(stored.starts_with("k1:") && !stored.contains("5551234567"));
        assert_ne!(stored, old.encrypt("+15551234567"), "fresh nonce each time");
        assert_eq!(old.decrypt(&stored).unwrap(), "+15551234567");

        let rotated = NumberVault::from_env_value(&format!("k1={k1},k2={k2}"), "k2").unwrap();
        assert_eq!(rotated.decrypt(&stored).unwrap(), "+15551234567");
        assert!(rotated.needs_rotation(&stored));
        let fresh = rotated.encrypt("+15551234567");
        assert!(fresh.starts_with("k2:") && !rotated.needs_rotation(&fresh));

        let only_new = NumberVault::from_env_value(&format!("k2={k2}"), "k2").unwrap();
        assert!(matches!(
            only_new.decrypt(&stored),
            Err(PrivacyError::UnknownKey(_))
        ));
        let mut tampered = fresh.clone();
        tampered.pop();
        tampered.push('A');
        assert!(rotated.decrypt(&tampered).is_err());
        assert!(NumberVault::from_env_value("k1=c2hvcnQ=", "k1").is_err());
        assert!(NumberVault::from_env_value(&format!("k1={k1}"), "k9").is_err());
    }
}
