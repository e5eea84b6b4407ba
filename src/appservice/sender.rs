//! Transaction delivery. Each appservice has one task that walks the global event stream from
//! its last acknowledged position, picks the events it is interested in, and pushes them in
//! order, at most one transaction in flight. The transaction is stored before it is sent and
//! resent unchanged (same ID, same content) until acknowledged, across restarts too; then the
//! position moves on. Ephemeral events (typing, receipts) come from an in-memory feed.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ruma::{
    api::appservice::event::push_events, events::StateEventType, OwnedTransactionId, RoomId, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::TryRecvError;

use super::{outbound, Appservice};
use crate::{error::Result, storage::Json, Haven};

/// Events, ephemeral events each, per transaction.
pub const MAX_PER_TXN: usize = 100;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// 2 s doubled eight times: about 8.5 minutes.
const MAX_BACKOFF: Duration = Duration::from_secs(512);
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Delivery progress of one appservice, kept in the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AsState {
    /// Stream position up to which events were delivered (or found uninteresting).
    pub last_pos: u64,
    pub next_txn: u64,
    pub in_flight: Option<InFlight>,
}

/// A transaction sent but not yet acknowledged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InFlight {
    pub txn_id: String,
    pub upto: u64,
    pub events: Vec<Value>,
    #[serde(default)]
    pub ephemeral: Vec<Value>,
    /// To-device messages for the appservice's users' devices (MSC4203).
    #[serde(default)]
    pub to_device: Vec<Value>,
    /// MSC3202 fields (`device_lists`, `device_one_time_keys_count`,
    /// `device_unused_fallback_key_types`), when the registration asks for them.
    #[serde(default)]
    pub device_extensions: Option<Value>,
}

/// MSC3202: device-list changes relevant to the appservice in `(after, upto]`, and the key
/// counts of its users' devices. `None` when there is nothing to report.
fn device_extensions(h: &Haven, asv: &Appservice, after: u64, upto: u64) -> Result<Option<Value>> {
    if !asv.r.device_extensions {
        return Ok(None);
    }
    let mut changed = Vec::new();
    for user in crate::users::keys::changed_between(&h.db, after, upto)? {
        let relevant = asv.owns_user(&user)
            || h.rooms
                .joined_rooms(&user)?
                .iter()
                .any(|r| interested_in_room(h, asv, r).unwrap_or(false));
        if relevant {
            changed.push(user);
        }
    }
    let mut counts = serde_json::Map::new();
    let mut fallback = serde_json::Map::new();
    for item in h.db.t.device_keys.scan_prefix(&[]) {
        let ((user, device), _) = item?;
        let Ok(uid) = ruma::UserId::parse(&user) else {
            continue;
        };
        if !asv.owns_user(&uid) {
            continue;
        }
        let d = ruma::OwnedDeviceId::from(device.clone());
        let c = crate::users::keys::counts(&h.db, &uid, &d)?;
        counts.entry(user.clone()).or_insert_with(|| json!({}))[device.as_str()] = json!(c);
        let f = crate::users::keys::unused_fallback_types(&h.db, &uid, &d)?;
        fallback.entry(user).or_insert_with(|| json!({}))[device.as_str()] = json!(f);
    }
    if changed.is_empty() && counts.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({
        "device_lists": { "changed": changed, "left": [] },
        "device_one_time_keys_count": counts,
        "device_unused_fallback_key_types": fallback,
    })))
}

/// Waits (at most `timeout`) until every appservice's delivery has taken up the stream to
/// `pos`: into a transaction, which is stored and then delivered whatever happens to the
/// events since (a purge), or past it. Answers whether all got there in time.
pub async fn wait_taken_up(h: &Haven, pos: u64, timeout: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut behind = false;
        for asv in h.appservices.list.iter().filter(|a| a.r.reg.url.is_some()) {
            let st = load(h, asv)?;
            if st.last_pos < pos && st.in_flight.as_ref().is_none_or(|f| f.upto < pos) {
                behind = true;
            }
        }
        if !behind {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How far each appservice's delivery is behind the stream (metrics).
pub fn lags(h: &Haven) -> Result<Vec<(String, u64)>> {
    let now = h.stream.current();
    h.appservices
        .list
        .iter()
        .map(|a| Ok((a.id().to_owned(), now.saturating_sub(load(h, a)?.last_pos))))
        .collect()
}

fn load(h: &Haven, asv: &Appservice) -> Result<AsState> {
    Ok(h.db
        .t
        .as_state
        .get(&asv.id().to_owned())?
        .map(|j| j.0)
        .unwrap_or_default())
}

fn save(h: &Haven, asv: &Appservice, st: &AsState) -> Result<()> {
    Ok(h.db
        .t
        .as_state
        .put(&asv.id().to_owned(), &Json(st.clone()))?)
}

/// Starts one delivery task per appservice that has a URL.
pub fn start(h: Arc<Haven>) {
    for asv in h.appservices.list.clone() {
        if asv.r.reg.url.is_none() {
            continue;
        }
        let h = h.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = run(&h, &asv).await {
                    tracing::error!(appservice = asv.id(), error = %e, "transaction sender failed; restarting");
                    tokio::time::sleep(FIRST_BACKOFF).await;
                }
            }
        });
    }
}

/// Whether the appservice cares about events in `room`: one of its users is a member, or the
/// room ID or one of the room's aliases is in its namespaces.
fn interested_in_room(h: &Haven, asv: &Appservice, room: &RoomId) -> Result<bool> {
    if asv.owns_room(room) {
        return Ok(true);
    }
    for (user, m) in h.rooms.members(room)? {
        if matches!(m.membership.as_str(), "join" | "invite") && asv.owns_user(&user) {
            return Ok(true);
        }
    }
    if let Some(ca) = h
        .rooms
        .current_state(room, &StateEventType::RoomCanonicalAlias, "")?
    {
        let c = ca.content_value();
        let aliases = c.get("alias").into_iter().chain(
            c.get("alt_aliases")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten(),
        );
        for a in aliases.filter_map(|a| a.as_str()) {
            if let Ok(alias) = ruma::RoomAliasId::parse(a) {
                if asv.owns_alias(&alias) {
                    return Ok(true);
                }
            }
        }
    }
    for a in h.rooms.room_aliases(room)? {
        if ruma::RoomAliasId::parse(&a).is_ok_and(|alias| asv.owns_alias(&alias)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Up to [`MAX_PER_TXN`] interesting events after `after`, and how far the scan got.
fn collect(h: &Haven, asv: &Appservice, after: u64, upto: u64) -> Result<(Vec<Value>, u64)> {
    let mut out = Vec::new();
    let mut scanned = after;
    let mut rooms: HashMap<String, bool> = HashMap::new();
    crate::storage::blocking(|| {
        for item in h.db.t.stream_events.range(
            &(after + 1).to_be_bytes(),
            &(upto.saturating_add(1)).to_be_bytes(),
            false,
        ) {
            let (pos, event_id) = item?;
            let Some(pdu) = h.rooms.get_pdu(
                &ruma::EventId::parse(&event_id).map_err(crate::error::Error::internal)?,
            )?
            else {
                scanned = pos;
                continue;
            };
            let by_user = asv.owns_user(&pdu.sender)
                || pdu
                    .state_key
                    .as_deref()
                    .and_then(|s| UserId::parse(s).ok())
                    .is_some_and(|u| asv.owns_user(&u));
            let interested = by_user
                || match rooms.get(pdu.room_id.as_str()) {
                    Some(v) => *v,
                    None => {
                        let v = interested_in_room(h, asv, &pdu.room_id)?;
                        rooms.insert(pdu.room_id.to_string(), v);
                        v
                    }
                };
            if interested {
                out.push(h.rooms.format_event(&pdu, None)?);
            }
            scanned = pos;
            if out.len() >= MAX_PER_TXN {
                return Ok((out, scanned));
            }
        }
        Ok((out, upto.max(scanned)))
    })
}

async fn push(
    h: &Haven,
    asv: &Appservice,
    t: &InFlight,
) -> std::result::Result<(), outbound::OutboundError> {
    use crate::events::client::raw;
    let events = t.events.iter().filter_map(|v| raw(v).ok()).collect();
    let mut req = push_events::v1::Request::new(OwnedTransactionId::from(t.txn_id.clone()), events);
    req.ephemeral = t.ephemeral.iter().filter_map(|v| raw(v).ok()).collect();
    req.to_device = t.to_device.iter().filter_map(|v| raw(v).ok()).collect();
    if let Some(ext) = &t.device_extensions {
        if let Ok(v) = serde_json::from_value(ext["device_lists"].clone()) {
            req.device_lists = v;
        }
        if let Ok(v) = serde_json::from_value(ext["device_one_time_keys_count"].clone()) {
            req.device_one_time_keys_count = v;
        }
        if let Ok(v) = serde_json::from_value(ext["device_unused_fallback_key_types"].clone()) {
            req.device_unused_fallback_key_types = v;
        }
    }
    let mut http_req = outbound::build(asv, req)?;
    if !t.ephemeral.is_empty() {
        // Bridges written against MSC2409 read ephemeral events under its unstable name.
        if let Ok(mut body) = serde_json::from_slice::<Value>(http_req.body()) {
            body["de.sorunome.msc2409.ephemeral"] = json!(t.ephemeral);
            if let Ok(bytes) = serde_json::to_vec(&body) {
                *http_req.body_mut() = bytes;
            }
        }
    }
    outbound::send_http(h, asv, http_req, SEND_TIMEOUT)
        .await
        .map(|_| ())
}

/// Keeps an ephemeral event if the appservice asked for them and the room concerns it.
fn wanted_edu(h: &Haven, asv: &Appservice, room: &RoomId, edu: &Value) -> bool {
    if !asv.r.receive_ephemeral || !interested_in_room(h, asv, room).unwrap_or(false) {
        return false;
    }
    if edu["type"] == "m.receipt" {
        // Private receipts only reach the appservice when they belong to one of its users.
        if let Some(private_of) = edu.get("private_of").and_then(|u| u.as_str()) {
            return UserId::parse(private_of).is_ok_and(|u| asv.owns_user(&u));
        }
    }
    true
}

async fn run(h: &Haven, asv: &Appservice) -> Result<()> {
    let mut stream = h.stream.subscribe();
    let mut edus = h.rooms.edus.subscribe();
    let mut pending_edus: Vec<Value> = Vec::new();
    let mut to_device = h.users.to_device_feed.subscribe();
    let mut pending_to_device: Vec<Value> = Vec::new();
    let take_to_device =
        |pending: &mut Vec<Value>,
         (user, device, mut ev): (ruma::OwnedUserId, ruma::OwnedDeviceId, Value)| {
            if asv.owns_user(&user) {
                ev["to_user_id"] = json!(user);
                ev["to_device_id"] = json!(device);
                pending.push(ev);
            }
        };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut st = load(h, asv)?;
        if st.in_flight.is_none() {
            loop {
                match edus.try_recv() {
                    Ok((room, edu)) => {
                        if wanted_edu(h, asv, &room, &edu) {
                            let mut e = edu.clone();
                            e["room_id"] = json!(room);
                            if let Some(o) = e.as_object_mut() {
                                o.remove("private_of");
                            }
                            pending_edus.push(e);
                        }
                    }
                    Err(TryRecvError::Lagged(n)) => tracing::warn!(
                        appservice = asv.id(),
                        dropped = n,
                        "ephemeral events dropped"
                    ),
                    Err(_) => break,
                }
            }
            while let Ok(m) = to_device.try_recv() {
                take_to_device(&mut pending_to_device, m);
            }
            stream.borrow_and_update();
            let current = h.stream.current();
            let (events, scanned) = collect(h, asv, st.last_pos, current)?;
            let n = pending_edus.len().min(MAX_PER_TXN);
            let ephemeral: Vec<Value> = pending_edus.drain(..n).collect();
            let n = pending_to_device.len().min(MAX_PER_TXN);
            let to_device_batch: Vec<Value> = pending_to_device.drain(..n).collect();
            let extensions = device_extensions(h, asv, st.last_pos, scanned)?;
            let only_counts = extensions.as_ref().is_some_and(|e| {
                e["device_lists"]["changed"]
                    .as_array()
                    .is_none_or(|a| a.is_empty())
            });
            let nothing = events.is_empty() && ephemeral.is_empty() && to_device_batch.is_empty();
            // Key counts alone do not make a transaction; they ride along with the next one.
            if nothing && (extensions.is_none() || only_counts) {
                if scanned > st.last_pos {
                    st.last_pos = scanned;
                    save(h, asv, &st)?;
                }
                tokio::select! {
                    _ = stream.changed() => {}
                    r = edus.recv() => {
                        if let Ok((room, edu)) = r {
                            if wanted_edu(h, asv, &room, &edu) {
                                let mut e = edu;
                                e["room_id"] = json!(room);
                                if let Some(o) = e.as_object_mut() {
                                    o.remove("private_of");
                                }
                                pending_edus.push(e);
                            }
                        }
                    }
                    r = to_device.recv() => {
                        if let Ok(m) = r {
                            take_to_device(&mut pending_to_device, m);
                        }
                    }
                    _ = asv.wake.notified() => {}
                }
                continue;
            }
            st.in_flight = Some(InFlight {
                txn_id: st.next_txn.to_string(),
                upto: scanned,
                events,
                ephemeral,
                to_device: to_device_batch,
                device_extensions: extensions,
            });
            save(h, asv, &st)?;
            h.db.durable().await?;
        }
        let Some(t) = st.in_flight.clone() else {
            continue;
        };
        match push(h, asv, &t).await {
            Ok(()) => {
                st.last_pos = st.last_pos.max(t.upto);
                st.in_flight = None;
                st.next_txn += 1;
                save(h, asv, &st)?;
                h.db.durable().await?;
                backoff = FIRST_BACKOFF;
                tracing::debug!(appservice = asv.id(), txn = %t.txn_id, events = t.events.len(), "transaction delivered");
            }
            Err(e) => {
                tracing::warn!(appservice = asv.id(), txn = %t.txn_id, error = %e, retry_in = ?backoff, "transaction not delivered");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    // A successful ping means the appservice is back: retry at once.
                    _ = asv.wake.notified() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
