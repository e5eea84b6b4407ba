//! Cross-signing: a user's master, self-signing and user-signing keys, and signatures
//! uploaded for devices and keys. The server stores and serves them; it never holds a
//! private key.

use ruma::UserId;
use serde_json::{Map, Value};

use crate::{
    error::Result,
    storage::{Json, Storage},
};

pub const KINDS: [&str; 3] = ["master", "self_signing", "user_signing"];

pub fn get(db: &Storage, user: &UserId, kind: &str) -> Result<Option<Value>> {
    Ok(db
        .t
        .cross_signing_keys
        .get(&(user.to_string(), kind.to_owned()))?
        .map(|j| j.0))
}

pub fn set(db: &Storage, user: &UserId, kind: &str, key: Value) -> Result<()> {
    db.t.cross_signing_keys
        .put(&(user.to_string(), kind.to_owned()), &Json(key))?;
    Ok(())
}

/// The public key of a cross-signing key object (`keys: {"ed25519:<pk>": "<pk>"}`).
pub fn public_key(key: &Value) -> Option<String> {
    key["keys"]
        .as_object()?
        .values()
        .next()?
        .as_str()
        .map(str::to_owned)
}

/// Merges the signatures `signer` made in `signed` into `target` (only the signer's own
/// entry: nobody can add signatures in someone else's name).
pub fn merge_signatures(target: &mut Value, signed: &Value, signer: &UserId) -> bool {
    let Some(theirs) = signed["signatures"][signer.as_str()].as_object() else {
        return false;
    };
    if !target["signatures"].is_object() {
        target["signatures"] = Value::Object(Map::new());
    }
    let entry = target["signatures"].as_object_mut().map(|m| {
        m.entry(signer.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
    });
    match entry.and_then(Value::as_object_mut) {
        Some(mine) => {
            for (k, v) in theirs {
                mine.insert(k.clone(), v.clone());
            }
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_signers_own_signatures_are_merged() {
        let alice = ruma::user_id!("@alice:hs");
        let mut device = json!({"keys": {}, "signatures": {"@alice:hs": {"ed25519:DEV": "self"}}});
        let signed = json!({"signatures": {"@alice:hs": {"ed25519:SSK": "by-ssk"}, "@mallory:hs": {"ed25519:X": "forged"}}});
        assert!(merge_signatures(&mut device, &signed, alice));
        assert_eq!(device["signatures"]["@alice:hs"]["ed25519:SSK"], "by-ssk");
        assert_eq!(device["signatures"]["@alice:hs"]["ed25519:DEV"], "self");
        assert!(device["signatures"].get("@mallory:hs").is_none());
        assert_eq!(
            public_key(&json!({"keys": {"ed25519:abc": "abc"}})).as_deref(),
            Some("abc")
        );
    }
}
