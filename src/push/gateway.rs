//! HTTP pushers: users register them with `/pushers/set`; each notification is POSTed to the
//! pusher's push gateway in the Push Gateway API format, retried with backoff; pushkeys the
//! gateway rejects are removed.

use std::{sync::Arc, time::Duration};

use ruma::{OwnedUserId, UserId};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::NotifRecord;
use crate::{
    cache::Cache,
    error::Result,
    storage::{prefix, Json, Storage},
    Haven,
};

const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A pusher as the client set it (the `/pushers/set` body without `append`).
pub type Pusher = Value;

/// Users whose pushers are kept in memory.
const PUSHER_LISTS_CACHED: usize = 10_000;

/// Notifications waiting to be pushed, and who has pushers.
pub struct Queue {
    tx: mpsc::UnboundedSender<(OwnedUserId, NotifRecord)>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<(OwnedUserId, NotifRecord)>>>,
    /// Each user's pushers, read for every notification (every member of a room, for each
    /// message sent there), and mostly empty: from memory instead of a scan of the table.
    pushers: Cache<OwnedUserId, Arc<Vec<Pusher>>>,
    /// Held while a list is read into `pushers` and while pushers are written, so that a list
    /// read before a write is never cached after it.
    pushers_fill: std::sync::Mutex<()>,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            pushers: Cache::new("pushers", PUSHER_LISTS_CACHED),
            pushers_fill: std::sync::Mutex::new(()),
        }
    }
}

impl Queue {
    pub fn push(&self, user: OwnedUserId, n: NotifRecord) {
        let _ = self.tx.send((user, n));
    }
}

impl Queue {
    /// The user's pushers.
    pub fn pushers(&self, db: &Storage, user: &UserId) -> Result<Arc<Vec<Pusher>>> {
        if let Some(list) = self.pushers.get(user) {
            return Ok(list);
        }
        let _filling = self.fill_lock();
        let mut out = Vec::new();
        for item in db.t.pushers.scan_prefix(&prefix(user.as_str())) {
            let (_, p) = item?;
            out.push(p.0);
        }
        let list = Arc::new(out);
        self.pushers.insert(user.to_owned(), list.clone());
        Ok(list)
    }

    fn fill_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.pushers_fill.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a pusher (by app ID and pushkey); without `append`, the same pushkey
    /// for other apps is replaced too, as the spec asks.
    pub fn set(&self, db: &Storage, user: &UserId, pusher: Pusher, append: bool) -> Result<()> {
        let app = pusher["app_id"].as_str().unwrap_or_default().to_owned();
        let key = pusher["pushkey"].as_str().unwrap_or_default().to_owned();
        let existing = self.pushers(db, user)?;
        let _writing = self.fill_lock();
        self.pushers.remove(user);
        if !append {
            for p in existing.iter() {
                if p["pushkey"] == key.as_str() {
                    let other = p["app_id"].as_str().unwrap_or_default().to_owned();
                    db.t.pushers
                        .remove(&(user.to_string(), other, key.clone()))?;
                }
            }
        }
        db.t.pushers
            .put(&(user.to_string(), app, key), &Json(pusher))?;
        Ok(())
    }

    pub fn delete(&self, db: &Storage, user: &UserId, app_id: &str, pushkey: &str) -> Result<()> {
        let _writing = self.fill_lock();
        self.pushers.remove(user);
        db.t.pushers
            .remove(&(user.to_string(), app_id.to_owned(), pushkey.to_owned()))?;
        Ok(())
    }
}

/// The Push Gateway API body for one notification to one pusher.
fn payload(h: &Haven, user: &UserId, n: &NotifRecord, p: &Pusher) -> Result<Value> {
    let room = ruma::RoomId::parse(&n.room_id).map_err(crate::error::Error::internal)?;
    let unread: u64 = h
        .rooms
        .joined_rooms(user)?
        .iter()
        .map(|r| {
            let pos = h.rooms.read_pos(r, user).unwrap_or(0);
            super::counts(&h.db, user, r, pos).map(|c| c.0).unwrap_or(0)
        })
        .sum();
    let tweaks: serde_json::Map<String, Value> = n
        .actions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let t = a.get("set_tweak")?.as_str()?;
            Some((t.to_owned(), a.get("value").cloned().unwrap_or(json!(true))))
        })
        .collect();
    let mut data = p["data"].clone();
    if let Some(d) = data.as_object_mut() {
        d.remove("url");
    }
    let device = json!({
        "app_id": p["app_id"], "pushkey": p["pushkey"], "pushkey_ts": p["pushkey_ts"],
        "data": data, "tweaks": tweaks,
    });
    let mut notification = json!({
        "event_id": n.event_id, "room_id": n.room_id,
        "counts": { "unread": unread },
        "prio": if n.highlight { "high" } else { "low" },
        "devices": [device],
    });
    if p["data"]["format"] != "event_id_only" {
        if let Some(ev) = ruma::EventId::parse(&n.event_id)
            .ok()
            .and_then(|id| h.rooms.get_pdu(&id).ok().flatten())
        {
            notification["type"] = json!(ev.kind.to_string());
            notification["sender"] = json!(ev.sender);
            notification["content"] = ev.content_value();
            if let Some(name) = h.rooms.member_displayname(&room, &ev.sender)? {
                notification["sender_display_name"] = json!(name);
            }
            if let Some(name) = h.rooms.room_name(&room)? {
                notification["room_name"] = json!(name);
            }
            if ev.state_key.as_deref() == Some(user.as_str()) {
                notification["user_is_target"] = json!(true);
            }
        }
    }
    Ok(json!({ "notification": notification }))
}

async fn deliver(h: Arc<Haven>, user: OwnedUserId, n: NotifRecord) {
    let Ok(list) = h.rooms.push_queue.pushers(&h.db, &user) else {
        return;
    };
    for p in list.iter() {
        if p["kind"] != "http" {
            continue;
        }
        let Some(url) = p["data"]["url"].as_str().map(str::to_owned) else {
            continue;
        };
        let body = match payload(&h, &user, &n, p) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "push payload not built");
                continue;
            }
        };
        // A user names the gateway: it must not be on this server's own network.
        let allowed = reqwest::Url::parse(&url).is_ok_and(|u| h.outbound.allows_url(&u));
        if !allowed {
            tracing::warn!(%url, "push gateway not contacted: {}", crate::outbound::DENIED);
            continue;
        }
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match h.guarded_http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    let rejected = v["rejected"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|k| *k == p["pushkey"]));
                    if rejected {
                        let app = p["app_id"].as_str().unwrap_or_default();
                        let key = p["pushkey"].as_str().unwrap_or_default();
                        tracing::info!(%user, app, "push gateway rejected the pushkey; pusher removed");
                        let _ = h.rooms.push_queue.delete(&h.db, &user, app, key);
                    }
                    break;
                }
                Ok(r) if r.status().is_client_error() => {
                    tracing::warn!(%url, status = %r.status(), "push gateway refused a notification");
                    break;
                }
                outcome => {
                    let why = match outcome {
                        Ok(r) => r.status().to_string(),
                        Err(e) => e.to_string(),
                    };
                    if attempt == ATTEMPTS {
                        tracing::warn!(%url, %why, "push not delivered; giving up");
                    } else {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        }
    }
}

/// Pushes queued notifications for ever, each on its own task so a slow gateway holds up
/// nobody else.
pub fn start(h: Arc<Haven>) {
    let rx = h.rooms.push_queue.rx.lock().ok().and_then(|mut r| r.take());
    let Some(mut rx) = rx else {
        return;
    };
    tokio::spawn(async move {
        while let Some((user, n)) = rx.recv().await {
            // Most members have no pusher: no task for them.
            let has_pushers = h.rooms.push_queue.pushers(&h.db, &user);
            if has_pushers.is_ok_and(|l| l.is_empty()) {
                continue;
            }
            tokio::spawn(deliver(h.clone(), user, n));
        }
    });
}
