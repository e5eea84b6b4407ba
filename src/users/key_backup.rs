//! Server-side room key backup (`/room_keys`): versions holding an algorithm and its public
//! auth data, and the encrypted session keys clients upload. The server sees only ciphertext.
//! Writes go to the current (latest) version only; each change moves the version's etag.

use ruma::UserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    storage::{prefix, Json, Storage},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    /// `{"algorithm": …, "auth_data": …}` as the client sent it.
    pub algorithm: Value,
    /// Moves on every change of the version's keys.
    pub etag: u64,
}

fn version_number(v: &str) -> Result<u64> {
    v.parse()
        .map_err(|_| Error::not_found("Unknown backup version"))
}

/// The newest version, if any.
pub fn latest(db: &Storage, user: &UserId) -> Result<Option<(u64, Version)>> {
    let mut last = None;
    for item in db.t.backup_versions.scan_prefix(&prefix(user.as_str())) {
        let ((_, v), Json(rec)) = item?;
        last = Some((v, rec));
    }
    Ok(last)
}

pub fn get(db: &Storage, user: &UserId, version: &str) -> Result<Version> {
    let v = version_number(version)?;
    db.t.backup_versions
        .get(&(user.to_string(), v))?
        .map(|j| j.0)
        .ok_or_else(|| Error::not_found("Unknown backup version"))
}

pub fn create(db: &Storage, user: &UserId, algorithm: Value) -> Result<u64> {
    let next = latest(db, user)?.map_or(1, |(v, _)| v + 1);
    // Deleted versions keep their number: never reuse one.
    let floor = db.meta_u64(&format!("backup_version:{user}"))?;
    let n = next.max(floor + 1);
    db.put_meta_u64(&format!("backup_version:{user}"), n)?;
    db.t.backup_versions.put(
        &(user.to_string(), n),
        &Json(Version { algorithm, etag: 0 }),
    )?;
    Ok(n)
}

/// Replaces the auth data; the algorithm cannot change.
pub fn update(db: &Storage, user: &UserId, version: &str, algorithm: Value) -> Result<()> {
    let mut rec = get(db, user, version)?;
    if rec.algorithm["algorithm"] != algorithm["algorithm"] {
        return Err(Error::invalid_param(
            "the algorithm of a backup version cannot change",
        ));
    }
    rec.algorithm = algorithm;
    db.t.backup_versions
        .put(&(user.to_string(), version_number(version)?), &Json(rec))?;
    Ok(())
}

pub fn delete_version(db: &Storage, user: &UserId, version: &str) -> Result<()> {
    get(db, user, version)?;
    let v = version_number(version)?;
    delete_keys(db, user, v, None, None)?;
    db.t.backup_versions.remove(&(user.to_string(), v))?;
    Ok(())
}

/// Checks that `version` is the current one (writes go nowhere else).
pub fn require_current(db: &Storage, user: &UserId, version: &str) -> Result<u64> {
    let current = latest(db, user)?;
    match &current {
        Some((v, _)) if v.to_string() == version => Ok(*v),
        _ => Err(Error::wrong_room_keys_version(
            current.map(|(v, _)| v.to_string()),
        )),
    }
}

/// Whether `new` should replace `old`: verified beats unverified, then the lower first
/// message index, then the lower forwarded count.
fn better(new: &Value, old: &Value) -> bool {
    let verified = |v: &Value| v["is_verified"].as_bool().unwrap_or(false);
    let index = |v: &Value| v["first_message_index"].as_u64().unwrap_or(u64::MAX);
    let forwarded = |v: &Value| v["forwarded_count"].as_u64().unwrap_or(u64::MAX);
    (
        verified(new),
        std::cmp::Reverse(index(new)),
        std::cmp::Reverse(forwarded(new)),
    ) > (
        verified(old),
        std::cmp::Reverse(index(old)),
        std::cmp::Reverse(forwarded(old)),
    )
}

/// Stores session keys (keeping a better one already stored); bumps the etag on change.
pub fn put_keys(
    db: &Storage,
    user: &UserId,
    version: u64,
    keys: impl IntoIterator<Item = (String, String, Value)>,
) -> Result<()> {
    let mut changed = false;
    for (room, session, data) in keys {
        let k = (user.to_string(), version, room, session);
        let keep_old =
            db.t.backup_keys
                .get(&k)?
                .is_some_and(|Json(old)| !better(&data, &old));
        if !keep_old {
            db.t.backup_keys.put(&k, &Json(data))?;
            changed = true;
        }
    }
    if changed {
        bump(db, user, version)?;
    }
    Ok(())
}

fn bump(db: &Storage, user: &UserId, version: u64) -> Result<()> {
    let key = (user.to_string(), version);
    if let Some(Json(mut rec)) = db.t.backup_versions.get(&key)? {
        rec.etag += 1;
        db.t.backup_versions.put(&key, &Json(rec))?;
    }
    Ok(())
}

/// Keys of a version, optionally of one room or one session: (room, session, data).
pub fn keys(
    db: &Storage,
    user: &UserId,
    version: u64,
    room: Option<&str>,
    session: Option<&str>,
) -> Result<Vec<(String, String, Value)>> {
    use crate::storage::keys::Key;
    let mut p = (user.to_string(), version).encode();
    if let Some(r) = room {
        p.extend(prefix(r));
        if let Some(s) = session {
            p.extend(prefix(s));
        }
    }
    let mut out = Vec::new();
    for item in db.t.backup_keys.scan_prefix(&p) {
        let ((_, _, r, s), Json(v)) = item?;
        out.push((r, s, v));
    }
    Ok(out)
}

pub fn delete_keys(
    db: &Storage,
    user: &UserId,
    version: u64,
    room: Option<&str>,
    session: Option<&str>,
) -> Result<()> {
    let found = keys(db, user, version, room, session)?;
    for (r, s, _) in &found {
        db.t.backup_keys
            .remove(&(user.to_string(), version, r.clone(), s.clone()))?;
    }
    if !found.is_empty() {
        bump(db, user, version)?;
    }
    Ok(())
}

/// (etag, count) of a version.
pub fn etag_count(db: &Storage, user: &UserId, version: u64) -> Result<(String, u64)> {
    let etag =
        db.t.backup_versions
            .get(&(user.to_string(), version))?
            .map_or(0, |j| j.0.etag);
    let count = keys(db, user, version, None, None)?.len() as u64;
    Ok((etag.to_string(), count))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn verified_then_lower_index_then_fewer_forwards_win() {
        let k = |v: bool, i: u64, f: u64| json!({"is_verified": v, "first_message_index": i, "forwarded_count": f});
        assert!(super::better(&k(true, 9, 9), &k(false, 0, 0)));
        assert!(!super::better(&k(false, 0, 0), &k(true, 9, 9)));
        assert!(super::better(&k(true, 1, 5), &k(true, 2, 0)));
        assert!(super::better(&k(true, 1, 0), &k(true, 1, 1)));
        assert!(!super::better(&k(true, 1, 1), &k(true, 1, 1)));
    }
}
