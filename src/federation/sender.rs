//! Sending to other servers: a persistent queue per destination, drained by one worker per
//! destination into `/send/{txnId}` transactions of up to 50 PDUs and 100 EDUs, one in flight
//! at a time, retried with exponential backoff until the server takes it. The queue survives
//! restarts; items leave it only once a transaction carrying them succeeded, so nothing is lost
//! or reordered.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use ruma::{OwnedServerName, RoomId, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

use crate::{
    error::{Error, Result},
    events::Pdu,
    storage::{Json, Storage},
    util::now_ms,
    Haven,
};

const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;
const SEQ_KEY: &str = "federation_queue_seq";
const MAX_RETRY: Duration = Duration::from_secs(600);

/// One queued item: a PDU (by event ID) or an EDU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Queued {
    Pdu(String),
    Edu(Value),
}

/// The sending side of the queue, held by the room layer: it records what must go where and
/// wakes the workers.
pub struct Outbox {
    db: Arc<Storage>,
    seq: Mutex<u64>,
    wake: mpsc::UnboundedSender<(OwnedServerName, Wake)>,
    woken: Mutex<Option<mpsc::UnboundedReceiver<(OwnedServerName, Wake)>>>,
}

/// Why a destination's worker is woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Something new is queued (it waits out any backoff).
    Queued,
    /// The server reached us: it is up, so stop waiting.
    Up,
}

impl Outbox {
    pub fn new(db: Arc<Storage>) -> Result<Self> {
        let seq = db.meta_u64(SEQ_KEY)?;
        let (wake, rx) = mpsc::unbounded_channel();
        Ok(Self {
            db,
            seq: Mutex::new(seq),
            wake,
            woken: Mutex::new(Some(rx)),
        })
    }

    /// Other servers with members joined to the room (and `also`, when remote).
    pub fn room_servers(
        &self,
        rooms: &crate::rooms::Rooms,
        room: &RoomId,
        also: Option<&ServerName>,
    ) -> Result<BTreeSet<OwnedServerName>> {
        let ours = rooms.server_name();
        let mut out: BTreeSet<OwnedServerName> = rooms
            .joined_members(room)?
            .iter()
            .map(|u| u.server_name().to_owned())
            .filter(|s| s != ours)
            .collect();
        if let Some(s) = also.filter(|s| *s != ours) {
            out.insert(s.to_owned());
        }
        // The room's server ACL: nothing goes to servers it denies.
        let mut allowed = BTreeSet::new();
        for s in out {
            if rooms.server_allowed(room, &s)? {
                allowed.insert(s);
            }
        }
        Ok(allowed)
    }

    /// Queues `items` for each destination (written with the caller's next durable flush);
    /// returns the destinations to wake once that flush is done.
    pub fn enqueue(
        &self,
        dests: &BTreeSet<OwnedServerName>,
        item: &Queued,
    ) -> Result<Vec<OwnedServerName>> {
        if dests.is_empty() {
            return Ok(Vec::new());
        }
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        for d in dests {
            *seq += 1;
            self.db
                .t
                .federation_queue
                .put(&(d.to_string(), *seq), &Json(item.clone()))?;
        }
        self.db.put_meta_u64(SEQ_KEY, *seq)?;
        Ok(dests.iter().cloned().collect())
    }

    /// Starts (or nudges) the workers of these destinations.
    pub fn wake(&self, dests: Vec<OwnedServerName>) {
        for d in dests {
            let _ = self.wake.send((d, Wake::Queued));
        }
    }

    /// A server reached us: its worker retries now rather than after its backoff.
    pub fn server_up(&self, dest: OwnedServerName) {
        let _ = self.wake.send((dest, Wake::Up));
    }

    /// Queues a new local PDU for the other servers in its room (and the server of a member
    /// event's subject, who must learn of a kick or ban); returns whom to wake.
    pub fn queue_pdu(
        &self,
        rooms: &crate::rooms::Rooms,
        pdu: &Pdu,
    ) -> Result<Vec<OwnedServerName>> {
        let subject = match (&pdu.state_key, pdu.kind.to_string().as_str()) {
            (Some(sk), "m.room.member") => ruma::UserId::parse(sk.as_str())
                .ok()
                .map(|u| u.server_name().to_owned()),
            _ => None,
        };
        let dests = self.room_servers(rooms, &pdu.room_id, subject.as_deref())?;
        self.enqueue(&dests, &Queued::Pdu(pdu.event_id.to_string()))
    }

    /// Queues an EDU about a room for its other servers, and wakes them.
    pub fn send_edu(&self, rooms: &crate::rooms::Rooms, room: &RoomId, edu: Value) -> Result<()> {
        let dests = self.room_servers(rooms, room, None)?;
        let woken = self.enqueue(&dests, &Queued::Edu(edu))?;
        self.wake(woken);
        Ok(())
    }

    /// The next transaction's items for `dest`, oldest first.
    fn batch(&self, dest: &ServerName) -> Result<Vec<((String, u64), Queued)>> {
        let (mut pdus, mut edus) = (0, 0);
        let mut out = Vec::new();
        for item in self
            .db
            .t
            .federation_queue
            .scan_prefix(&crate::storage::prefix(dest.as_str()))
        {
            let (key, Json(q)) = item?;
            match &q {
                Queued::Pdu(_) if pdus == MAX_PDUS => break,
                Queued::Edu(_) if edus == MAX_EDUS => break,
                Queued::Pdu(_) => pdus += 1,
                Queued::Edu(_) => edus += 1,
            }
            out.push((key, q));
        }
        Ok(out)
    }

    /// Destinations with something queued (for the workers to start with).
    fn pending(&self) -> Result<BTreeSet<OwnedServerName>> {
        let mut out = BTreeSet::new();
        for item in self.db.t.federation_queue.scan_prefix(&[]) {
            let ((dest, _), _) = item?;
            if let Ok(s) = ServerName::parse(&dest) {
                out.insert(s);
            }
        }
        Ok(out)
    }

    /// How many items wait, for every destination with something queued (metrics).
    pub fn depths(&self) -> Result<std::collections::BTreeMap<String, usize>> {
        let mut out = std::collections::BTreeMap::new();
        for item in self.db.t.federation_queue.scan_prefix(&[]) {
            let ((dest, _), _) = item?;
            *out.entry(dest).or_default() += 1;
        }
        Ok(out)
    }

    /// How many items wait for each destination (metrics, tests).
    pub fn depth(&self, dest: &ServerName) -> Result<usize> {
        Ok(self
            .db
            .t
            .federation_queue
            .scan_prefix(&crate::storage::prefix(dest.as_str()))
            .count())
    }
}

/// Starts the workers: one per destination with queued items now, and one for each
/// destination woken later.
pub fn start(h: Arc<Haven>) {
    let rx = h
        .rooms
        .outbox
        .woken
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(mut rx) = rx else { return };
    let pending = h.rooms.outbox.pending().unwrap_or_else(|e| {
        tracing::error!(error = %e, "federation queue unreadable at start");
        BTreeSet::new()
    });
    tracing::debug!(destinations = pending.len(), "federation sender started");
    tokio::spawn(async move {
        let mut workers: HashMap<OwnedServerName, Signals> = HashMap::new();
        let mut nudge = |h: &Arc<Haven>, dest: OwnedServerName, why: Wake| {
            let s = workers.entry(dest.clone()).or_insert_with(|| {
                let s = Signals::default();
                tokio::spawn(worker(h.clone(), dest, s.clone()));
                s
            });
            match why {
                Wake::Queued => s.queued.notify_one(),
                Wake::Up => s.up.notify_one(),
            }
        };
        for d in pending {
            nudge(&h, d, Wake::Queued);
        }
        while let Some((dest, why)) = rx.recv().await {
            nudge(&h, dest, why);
        }
    });
}

/// How a worker is woken: new items, or its server being up again.
#[derive(Clone, Default)]
struct Signals {
    queued: Arc<Notify>,
    up: Arc<Notify>,
}

async fn worker(h: Arc<Haven>, dest: OwnedServerName, signals: Signals) {
    let mut failures: u32 = 0;
    loop {
        let batch = match h.rooms.outbox.batch(&dest) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%dest, error = %e, "federation queue unreadable");
                tokio::time::sleep(MAX_RETRY).await;
                continue;
            }
        };
        if batch.is_empty() {
            signals.queued.notified().await;
            continue;
        }
        match send(&h, &dest, &batch).await {
            Ok(()) => {
                failures = 0;
                for (key, _) in &batch {
                    if let Err(e) = h.db.t.federation_queue.remove(key) {
                        tracing::error!(%dest, error = %e, "federation queue not trimmed");
                    }
                }
                // Durably, so that a restart does not send them again.
                if let Err(e) = h.db.durable().await {
                    tracing::error!(%dest, error = %e, "federation queue trim not flushed");
                }
            }
            Err(e) => {
                failures += 1;
                let wait = Duration::from_secs(1u64 << failures.min(10)).min(MAX_RETRY);
                tracing::info!(%dest, error = %e, retry_in = ?wait, "transaction not delivered");
                // A request from the server (it is back) ends the wait early.
                let _ = tokio::time::timeout(wait, signals.up.notified()).await;
                h.federation.forgive(&dest);
            }
        }
    }
}

async fn send(h: &Haven, dest: &ServerName, batch: &[((String, u64), Queued)]) -> Result<()> {
    let mut pdus = Vec::new();
    let mut edus = Vec::new();
    for (_, q) in batch {
        match q {
            Queued::Pdu(id) => {
                let id = ruma::EventId::parse(id).map_err(Error::internal)?;
                if let Some(p) = h.rooms.get_pdu(&id)? {
                    pdus.push(
                        serde_json::from_str::<Value>(p.json.get()).map_err(Error::internal)?,
                    );
                }
            }
            Queued::Edu(e) => edus.push(e.clone()),
        }
    }
    // The first and last items' sequence numbers name the transaction: a retry of the same
    // items reuses it, so the receiver can tell a repeat; a batch that grew meanwhile (items
    // queued after it, or after a restart) is a new transaction, never mistaken for the old.
    let first = batch.first().map(|((_, seq), _)| *seq).unwrap_or(0);
    let last = batch.last().map(|((_, seq), _)| *seq).unwrap_or(0);
    let txn = format!("{first}-{last}");
    let body = json!({
        "origin": h.key.server_name,
        "origin_server_ts": now_ms(),
        "pdus": pdus,
        "edus": edus,
    });
    let resp = h
        .federation
        .put(
            h,
            dest,
            &format!("/_matrix/federation/v1/send/{txn}"),
            &body,
        )
        .await?;
    for (id, r) in resp["pdus"].as_object().into_iter().flatten() {
        if let Some(err) = r.get("error") {
            tracing::info!(%dest, event = %id, error = %err, "the server refused an event");
        }
    }
    Ok(())
}
