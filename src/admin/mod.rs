//! Server administration: what the admin API (`/_haven/admin/v1`) and the operator commands
//! do, and the audit log that records every admin call.

pub mod content;
pub mod rooms;

use ruma::{OwnedUserId, UserId};
use serde_json::{json, Value};

use crate::{error::Result, storage::Json, Haven};

/// Appends an entry to the audit log, durably (an admin action is on record before it
/// happens); answers its sequence number.
pub async fn audit(h: &Haven, entry: Value) -> Result<u64> {
    let seq = crate::storage::blocking(|| record(h, entry))?;
    h.db.durable().await?;
    Ok(seq)
}

/// Writes an audit entry under the next number (with its time); answers the number.
fn record(h: &Haven, mut entry: Value) -> Result<u64> {
    let seq = h.db.next_number("audit_seq")?;
    entry["seq"] = json!(seq);
    entry["ts"] = json!(crate::util::now_ms());
    h.db.t.audit_log.put(&seq, &Json(entry))?;
    Ok(seq)
}

/// Refused admin calls recorded per caller per minute (with rate limits on); past that they
/// answer 429 and are not recorded, so that nobody can grow the audit log by being refused.
pub const REFUSALS_PER_MINUTE: u32 = 10;

/// Records a refused call (not waited for: its durability comes with the next flush; refusals
/// are few, see the admin gate).
pub fn audit_refusal(h: &Haven, entry: Value) -> Result<()> {
    record(h, entry).map(|_| ())
}

/// Records how an audited call ended.
pub async fn audit_outcome(h: &Haven, seq: u64, status: u16) -> Result<()> {
    if let Some(Json(mut entry)) = h.db.t.audit_log.get(&seq)? {
        entry["status"] = json!(status);
        h.db.t.audit_log.put(&seq, &Json(entry))?;
        h.db.durable().await?;
    }
    Ok(())
}

/// Audit entries after `from`, oldest first, at most `limit`.
pub fn audit_entries(h: &Haven, from: u64, limit: usize) -> Result<Vec<Value>> {
    use crate::storage::keys::Key;
    let mut out = Vec::new();
    for item in
        h.db.t
            .audit_log
            .range(&from.saturating_add(1).encode(), &u64::MAX.encode(), false)
    {
        let (_, Json(e)) = item?;
        out.push(e);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Ends an account: it leaves every room (so it drops out of member lists), its devices and
/// tokens go, and it can never log in again.
pub async fn deactivate_account(h: &Haven, user: &UserId) -> Result<()> {
    for room in h.rooms.joined_rooms(user)? {
        if let Err(e) = h.rooms.leave(&room, &user.to_owned(), None).await {
            tracing::warn!(%room, error = %e, "a deactivated account could not leave a room");
        }
    }
    h.users.deactivate(user)?;
    crate::users::keys::mark_changed(&h.db, &h.stream, user).await?;
    h.db.durable().await?;
    Ok(())
}

/// An account as the admin API shows it.
pub fn user_view(h: &Haven, user: &UserId) -> Result<Option<Value>> {
    let Some(u) = h.users.get(user)? else {
        return Ok(None);
    };
    Ok(Some(json!({
        "user_id": user,
        "displayname": u.displayname,
        "avatar_url": u.avatar_url,
        "admin": u.admin,
        "deactivated": u.deactivated,
        "locked": u.locked,
        "suspended": u.suspended,
        "created_ts": u.created_ts,
        "devices": h.users.devices(user)?.len(),
        "joined_rooms": h.rooms.joined_rooms(user)?,
    })))
}

/// Accounts after `from` (a user ID), at most `limit`, as the admin API lists them.
pub fn list_users(
    h: &Haven,
    from: Option<&str>,
    limit: usize,
) -> Result<(Vec<Value>, Option<OwnedUserId>)> {
    let page = h.users.list(from, limit)?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|(u, _)| u.clone()))
        .flatten();
    let users = page
        .into_iter()
        .map(|(id, u)| {
            json!({
                "user_id": id,
                "displayname": u.displayname,
                "admin": u.admin,
                "deactivated": u.deactivated,
                "locked": u.locked,
                "suspended": u.suspended,
                "created_ts": u.created_ts,
            })
        })
        .collect();
    Ok((users, next))
}

/// A new registration token (random when none is given).
pub fn create_registration_token(
    h: &Haven,
    token: Option<String>,
    uses_allowed: Option<u64>,
    expiry_time: Option<u64>,
) -> Result<Value> {
    let token = token.unwrap_or_else(|| crate::util::random_string(16));
    let valid = !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if !valid {
        return Err(crate::error::Error::invalid_param(
            "A registration token is 1-64 characters of [A-Za-z0-9._~-]",
        ));
    }
    let rec = crate::users::RegistrationToken {
        uses_allowed,
        completed: 0,
        expiry_time,
    };
    if !h
        .db
        .t
        .registration_tokens
        .insert_new(&token, &Json(rec.clone()))?
    {
        return Err(crate::error::Error::bad_request(
            crate::error::ErrCode::InvalidParam,
            "This registration token exists already",
        ));
    }
    Ok(token_view(&token, &rec))
}

fn token_view(token: &str, t: &crate::users::RegistrationToken) -> Value {
    json!({
        "token": token,
        "uses_allowed": t.uses_allowed,
        "completed": t.completed,
        "expiry_time": t.expiry_time,
    })
}

pub fn registration_tokens(h: &Haven) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for item in h.db.t.registration_tokens.scan_prefix(&[]) {
        let (token, Json(t)) = item?;
        out.push(token_view(&token, &t));
    }
    Ok(out)
}

/// Revokes a registration token; `false` when there was none.
pub fn revoke_registration_token(h: &Haven, token: &str) -> Result<bool> {
    let key = token.to_owned();
    if !h.db.t.registration_tokens.contains(&key)? {
        return Ok(false);
    }
    h.db.t.registration_tokens.remove(&key)?;
    Ok(true)
}
