//! Accounts: registration, passwords, access tokens, devices and profiles.

pub mod account_data;
pub mod cross_signing;
pub mod key_backup;
pub mod keys;
pub mod password;
pub mod presence;
pub mod to_device;
pub mod uiaa;

use std::sync::Arc;

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::{ErrCode, Error, Result},
    storage::{Json, Storage},
    util::now_ms,
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2id PHC string; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    #[serde(default)]
    pub deactivated: bool,
    #[serde(default)]
    pub admin: bool,
    /// Locked by an admin: every request refused (`M_USER_LOCKED`).
    #[serde(default)]
    pub locked: bool,
    /// Suspended by an admin: reading allowed, acting refused (`M_USER_SUSPENDED`).
    #[serde(default)]
    pub suspended: bool,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub created_ts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub display_name: Option<String>,
    pub last_seen_ts: Option<u64>,
    pub last_seen_ip: Option<String>,
    /// Hash of the device's current access token, to revoke it with the device.
    pub token_hash: String,
}

/// An admin-created registration token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationToken {
    pub uses_allowed: Option<u64>,
    pub completed: u64,
    pub expiry_time: Option<u64>,
}

/// The identity behind an access token.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    /// Set when an appservice made the request (with its as_token), possibly as one of its
    /// namespace users.
    pub appservice: Option<std::sync::Arc<crate::appservice::Appservice>>,
}

pub struct Users {
    db: Arc<Storage>,
    server_name: ruma::OwnedServerName,
    pub uiaa: uiaa::Uiaa,
    /// New to-device messages, for appservices (MSC4203).
    pub to_device_feed: to_device::ToDeviceFeed,
    /// One request at a time per (user, device, transaction ID) for endpoints that record a
    /// transaction ID after acting on it.
    pub txn_locks: crate::util::KeyedLocks<(String, String, String)>,
}

/// SHA-256 of a token, hex: what is stored instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Users {
    pub fn new(db: Arc<Storage>, server_name: ruma::OwnedServerName) -> Self {
        Self {
            db,
            server_name,
            uiaa: uiaa::Uiaa::default(),
            to_device_feed: tokio::sync::broadcast::Sender::new(4096),
            txn_locks: Default::default(),
        }
    }

    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// Validates a requested localpart and makes the user ID (`M_INVALID_USERNAME`).
    pub fn user_id_for(&self, localpart: &str) -> Result<OwnedUserId> {
        let valid = !localpart.is_empty()
            && localpart.len() <= 255
            && localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'));
        let id = UserId::parse(format!("@{localpart}:{}", self.server_name));
        match id {
            Ok(id) if valid && id.as_str().len() <= 255 => Ok(id),
            _ => Err(Error::bad_request(
                ErrCode::InvalidUsername,
                "Invalid username",
            )),
        }
    }

    /// Runs `act` once per transaction `key` (user, device, scoped transaction ID): a request
    /// whose transaction is recorded answers at once; concurrent ones wait for the first and
    /// then find it recorded. Recorded only once `act` has succeeded, and durable before this
    /// returns: a crash in between loses the record, not what was done, and a failed attempt
    /// can be retried.
    pub async fn once<F, Fut>(&self, key: (String, String, String), act: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let _one_at_a_time = self.txn_locks.lock(&key).await;
        if self.db.t.txn_ids.contains(&key)? {
            return Ok(());
        }
        act().await?;
        self.db.t.txn_ids.put(&key, &String::new())?;
        self.db.durable().await?;
        Ok(())
    }

    /// [`Users::user_id_for`] for a person signing up: localparts starting with `_` (kept for
    /// appservices' users) or made only of digits (guests' on other servers) are refused too,
    /// as Synapse does.
    pub fn user_id_for_person(&self, localpart: &str) -> Result<OwnedUserId> {
        let id = self.user_id_for(localpart)?;
        if localpart.starts_with('_') {
            return Err(Error::bad_request(
                ErrCode::InvalidUsername,
                "A username may not start with _",
            ));
        }
        if localpart.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_request(
                ErrCode::InvalidUsername,
                "A username may not be only digits",
            ));
        }
        Ok(id)
    }

    pub fn get(&self, user: &UserId) -> Result<Option<UserRecord>> {
        Ok(self.db.t.users.get(&user.to_string())?.map(|j| j.0))
    }

    pub fn exists(&self, user: &UserId) -> Result<bool> {
        Ok(self.db.t.users.contains(&user.to_string())?)
    }

    pub fn is_admin(&self, user: &UserId) -> Result<bool> {
        Ok(self.get(user)?.is_some_and(|u| u.admin))
    }

    /// Creates an account; `M_USER_IN_USE` if the ID is taken.
    pub async fn create(&self, user: &UserId, password: Option<&str>, admin: bool) -> Result<()> {
        let password_hash = match password {
            Some(p) => Some(password::hash(p.to_owned()).await?),
            None => None,
        };
        static CREATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _g = CREATE_LOCK.lock().await;
        if self.exists(user)? {
            return Err(Error::bad_request(
                ErrCode::UserInUse,
                "User ID already taken",
            ));
        }
        let rec = UserRecord {
            password_hash,
            admin,
            created_ts: now_ms(),
            ..Default::default()
        };
        self.db.t.users.put(&user.to_string(), &Json(rec))?;
        Ok(())
    }

    /// Starts a session on a (new or existing) device and returns its access token.
    pub fn create_session(
        &self,
        user: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
    ) -> Result<(OwnedDeviceId, String)> {
        let device_id = device_id.unwrap_or_else(DeviceId::new);
        let token = format!("hv_{}", crate::util::random_string(40));
        let hash = token_hash(&token);
        let key = (user.to_string(), device_id.to_string());
        let mut dev = match self.db.t.devices.get(&key)? {
            Some(Json(d)) => {
                // Re-login on an existing device replaces its token.
                self.db.t.access_tokens.remove(&d.token_hash)?;
                d
            }
            None => DeviceRecord {
                display_name: None,
                last_seen_ts: None,
                last_seen_ip: None,
                token_hash: String::new(),
            },
        };
        if display_name.is_some() {
            dev.display_name = display_name;
        }
        dev.token_hash = hash.clone();
        dev.last_seen_ts = Some(now_ms());
        self.db.t.access_tokens.put(
            &hash,
            &Json(TokenRecord {
                user_id: user.to_owned(),
                device_id: device_id.clone(),
            }),
        )?;
        self.db.t.devices.put(&key, &Json(dev))?;
        Ok((device_id, token))
    }

    /// Resolves an access token; `None` when unknown.
    pub fn authenticate(&self, token: &str) -> Result<Option<Session>> {
        Ok(self
            .db
            .t
            .access_tokens
            .get(&token_hash(token))?
            .map(|Json(r)| Session {
                user_id: r.user_id,
                device_id: r.device_id,
                appservice: None,
            }))
    }

    /// Checks a user's password (constant-time via argon2's verifier).
    pub async fn check_password(&self, user: &UserId, password: &str) -> Result<bool> {
        let Some(rec) = self.get(user)? else {
            return Ok(false);
        };
        if rec.deactivated {
            return Ok(false);
        }
        match rec.password_hash {
            Some(h) => password::verify(password.to_owned(), h).await,
            None => Ok(false),
        }
    }

    /// Refuses an action of a suspended account.
    pub fn require_not_suspended(&self, user: &UserId) -> Result<()> {
        match self.get(user)? {
            Some(u) if u.suspended => Err(Error::user_suspended()),
            _ => Ok(()),
        }
    }

    /// Changes a user's record (admin flags, lock, suspension).
    pub fn update(&self, user: &UserId, f: impl FnOnce(&mut UserRecord)) -> Result<UserRecord> {
        let mut rec = self
            .get(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        f(&mut rec);
        self.db.t.users.put(&user.to_string(), &Json(rec.clone()))?;
        Ok(rec)
    }

    /// Every account, in user ID order after `from`, at most `limit`.
    pub fn list(&self, from: Option<&str>, limit: usize) -> Result<Vec<(OwnedUserId, UserRecord)>> {
        let mut out = Vec::new();
        for item in self.db.t.users.scan_prefix(&[]) {
            let (id, Json(rec)) = item?;
            if from.is_some_and(|f| id.as_str() <= f) {
                continue;
            }
            if let Ok(u) = OwnedUserId::try_from(id) {
                out.push((u, rec));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub async fn set_password(&self, user: &UserId, password: &str) -> Result<()> {
        let hash = password::hash(password.to_owned()).await?;
        let mut rec = self
            .get(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        rec.password_hash = Some(hash);
        self.db.t.users.put(&user.to_string(), &Json(rec))?;
        Ok(())
    }

    pub fn devices(&self, user: &UserId) -> Result<Vec<(OwnedDeviceId, DeviceRecord)>> {
        let prefix = crate::storage::prefix(user.as_str());
        let mut out = Vec::new();
        for item in self.db.t.devices.scan_prefix(&prefix) {
            let ((_, d), Json(rec)) = item?;
            out.push((OwnedDeviceId::from(d), rec));
        }
        Ok(out)
    }

    pub fn device(&self, user: &UserId, device: &DeviceId) -> Result<Option<DeviceRecord>> {
        Ok(self
            .db
            .t
            .devices
            .get(&(user.to_string(), device.to_string()))?
            .map(|j| j.0))
    }

    pub fn rename_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        name: Option<String>,
    ) -> Result<()> {
        let key = (user.to_string(), device.to_string());
        let mut d = self
            .db
            .t
            .devices
            .get(&key)?
            .ok_or_else(|| Error::not_found("Unknown device"))?
            .0;
        d.display_name = name;
        self.db.t.devices.put(&key, &Json(d))?;
        Ok(())
    }

    /// Creates a device without an access token (appservice device management, MSC4190).
    pub fn create_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        display_name: Option<String>,
    ) -> Result<()> {
        let key = (user.to_string(), device.to_string());
        let rec = DeviceRecord {
            display_name,
            last_seen_ts: None,
            last_seen_ip: None,
            token_hash: String::new(),
        };
        // An existing device is kept as it is.
        self.db.t.devices.insert_new(&key, &Json(rec))?;
        Ok(())
    }

    /// Deletes a device and revokes its access token.
    pub fn delete_device(&self, user: &UserId, device: &DeviceId) -> Result<()> {
        let key = (user.to_string(), device.to_string());
        if let Some(Json(d)) = self.db.t.devices.get(&key)? {
            self.db.t.access_tokens.remove(&d.token_hash)?;
            self.db.t.devices.remove(&key)?;
            keys::delete_device(&self.db, user, device)?;
        }
        Ok(())
    }

    /// Deletes every device of `user` except `keep`.
    pub fn delete_devices_except(&self, user: &UserId, keep: Option<&DeviceId>) -> Result<()> {
        for (d, _) in self.devices(user)? {
            if Some(&*d) != keep {
                self.delete_device(user, &d)?;
            }
        }
        Ok(())
    }

    pub fn deactivate(&self, user: &UserId) -> Result<()> {
        self.delete_devices_except(user, None)?;
        let mut rec = self
            .get(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        rec.deactivated = true;
        rec.password_hash = None;
        rec.displayname = None;
        rec.avatar_url = None;
        self.db.t.users.put(&user.to_string(), &Json(rec))?;
        Ok(())
    }

    /// displayname/avatar_url for the user's member events.
    pub fn member_profile(
        &self,
        user: &UserId,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut m = serde_json::Map::new();
        if let Some(u) = self.get(user)? {
            if let Some(d) = u.displayname {
                m.insert("displayname".into(), serde_json::json!(d));
            }
            if let Some(a) = u.avatar_url {
                m.insert("avatar_url".into(), serde_json::json!(a));
            }
        }
        Ok(m)
    }

    pub fn set_profile(
        &self,
        user: &UserId,
        displayname: Option<Option<String>>,
        avatar_url: Option<Option<String>>,
    ) -> Result<()> {
        let mut rec = self
            .get(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        if let Some(d) = displayname {
            rec.displayname = d;
        }
        if let Some(a) = avatar_url {
            rec.avatar_url = a;
        }
        self.db.t.users.put(&user.to_string(), &Json(rec))?;
        Ok(())
    }

    /// Consumes one use of a registration token if it is valid.
    pub fn use_registration_token(&self, token: &str, static_tokens: &[String]) -> Result<bool> {
        if static_tokens
            .iter()
            .any(|t| crate::util::constant_time_eq(t.as_bytes(), token.as_bytes()))
        {
            return Ok(true);
        }
        let key = token.to_owned();
        let Some(Json(mut t)) = self.db.t.registration_tokens.get(&key)? else {
            return Ok(false);
        };
        if t.expiry_time.is_some_and(|e| e < now_ms())
            || t.uses_allowed.is_some_and(|u| t.completed >= u)
        {
            return Ok(false);
        }
        t.completed += 1;
        self.db.t.registration_tokens.put(&key, &Json(t))?;
        Ok(true)
    }

    /// Whether a registration token is currently valid, without using it.
    pub fn registration_token_valid(&self, token: &str, static_tokens: &[String]) -> Result<bool> {
        if static_tokens
            .iter()
            .any(|t| crate::util::constant_time_eq(t.as_bytes(), token.as_bytes()))
        {
            return Ok(true);
        }
        Ok(
            match self.db.t.registration_tokens.get(&token.to_owned())? {
                Some(Json(t)) => {
                    !(t.expiry_time.is_some_and(|e| e < now_ms())
                        || t.uses_allowed.is_some_and(|u| t.completed >= u))
                }
                None => false,
            },
        )
    }
}
