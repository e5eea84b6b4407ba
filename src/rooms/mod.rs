//! Rooms: the event graph of each room, its state, membership, and the one path by which an
//! event is added ([`Rooms::append`]), for local events today and federated ones later.

pub mod acl;
pub mod alias;
pub mod backfill;
pub mod create;
pub mod directory;
pub mod hierarchy;
pub mod membership;
mod persist;
pub mod purge;
pub mod receipts;
pub mod relations;
pub mod remote;
pub mod state;
pub mod timeline;
pub mod typing;
pub mod upgrade;
pub mod visibility;

use std::sync::Arc;

use ruma::{
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
    EventId, OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    events::{auth, builder, EventTemplate, Pdu, PduRef},
    signing::ServerKey,
    storage::Storage,
    stream::{Stream, Topic},
    util::KeyedGuard,
};

/// Room versions this server creates and joins.
pub const SUPPORTED_VERSIONS: [RoomVersionId; 3] =
    [RoomVersionId::V10, RoomVersionId::V11, RoomVersionId::V12];

/// Per-room bookkeeping kept beside the events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMeta {
    pub version: RoomVersionId,
    pub create_event_id: OwnedEventId,
    /// Events with no children yet: the `prev_events` of the next event.
    pub forward_extremities: Vec<OwnedEventId>,
    pub max_depth: u64,
    /// State group holding the current state.
    pub state_group: u64,
    /// Stream position of the room's latest event.
    pub last_pos: u64,
    /// Events in the room's timeline on this server (schema 2; for admins).
    #[serde(default)]
    pub event_count: u64,
}

/// A user's current membership in a room.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberRecord {
    pub membership: String,
    pub event_id: OwnedEventId,
    pub pos: u64,
}

/// Server-side data about an event that is not part of the PDU.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventExtras {
    /// The state event this one replaced, for `unsigned.prev_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_state: Option<OwnedEventId>,
    /// The device and transaction ID that sent it, for `unsigned.transaction_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<(OwnedDeviceId, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted_because: Option<OwnedEventId>,
}

/// A client's transaction: the device that sent it, the request it was sent to and the ID
/// the client chose. Retries of the same request answer the first event; the same ID on another
/// path is another transaction (issue 16); the client gets its own ID back, unchanged, in
/// `unsigned.transaction_id`, to match the event with its local echo.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub device: OwnedDeviceId,
    /// The request, e.g. `send/{room}/{type}` or `redact/{room}/{event}`.
    pub scope: String,
    pub id: String,
}

impl Transaction {
    /// The `txn_ids` key of this transaction of `sender`.
    fn key(&self, sender: &ruma::UserId) -> (String, String, String) {
        (
            sender.to_string(),
            self.device.to_string(),
            format!("{}/{}", self.scope, self.id),
        )
    }
}

/// Whose long-polls a new room event may answer: the room's members, and the user a
/// membership event is about (an invitee or a joiner is not among the members yet).
pub(crate) fn event_topics(pdu: &crate::events::Pdu) -> Vec<Topic> {
    let mut topics = vec![Topic::Room(pdu.room_id.clone())];
    if pdu.kind == ruma::events::TimelineEventType::RoomMember {
        if let Some(user) = pdu
            .state_key
            .as_deref()
            .and_then(|k| ruma::UserId::parse(k).ok())
        {
            topics.push(Topic::User(user));
        }
    }
    topics
}

/// An event ready to persist, with the client transaction that sent it.
pub type PendingEvent = (PduRef, Option<Transaction>);

/// A view of room state that new events are authorised against.
pub trait StateView {
    fn get(&self, kind: &StateEventType, state_key: &str) -> Result<Option<PduRef>>;

    /// Events not yet stored that this view holds (a room being created).
    fn pending_event(&self, _event_id: &EventId) -> Option<PduRef> {
        None
    }
}

/// The rules of a room version Haven supports.
pub fn rules_for(version: &RoomVersionId) -> Result<RoomVersionRules> {
    if !SUPPORTED_VERSIONS.contains(version) {
        return Err(Error::bad_request(
            crate::error::ErrCode::UnsupportedRoomVersion,
            format!("room version {version} is not supported"),
        ));
    }
    version
        .rules()
        .ok_or_else(|| Error::internal("room version without rules"))
}

pub struct Rooms {
    pub db: Arc<Storage>,
    pub key: Arc<ServerKey>,
    pub stream: Arc<Stream>,
    locks: RoomLocks,
    /// One backfill at a time per room (apart from `locks`: it waits on other servers).
    backfill_locks: RoomLocks,
    pub(crate) ids: state::IdAllocator,
    pub typing: typing::Typing,
    /// Ephemeral events (typing, receipts) as they happen, for appservices.
    pub edus: tokio::sync::broadcast::Sender<(OwnedRoomId, serde_json::Value)>,
    /// Notifications for HTTP pushers.
    pub push_queue: crate::push::gateway::Queue,
    /// What must be sent to other servers.
    pub outbox: crate::federation::sender::Outbox,
    /// Joined members by room, while the room's state is unchanged.
    rosters: crate::cache::Cache<OwnedRoomId, Arc<membership::Roster>>,
}

impl Rooms {
    pub fn new(db: Arc<Storage>, key: Arc<ServerKey>, stream: Arc<Stream>) -> Result<Self> {
        let ids = state::IdAllocator::load(&db)?;
        let edus = tokio::sync::broadcast::Sender::new(4096);
        let outbox = crate::federation::sender::Outbox::new(db.clone())?;
        Ok(Self {
            typing: typing::Typing::new(stream.clone(), db.clone(), edus.clone()),
            edus,
            db,
            key,
            stream,
            locks: RoomLocks::default(),
            backfill_locks: RoomLocks::default(),
            ids,
            push_queue: Default::default(),
            outbox,
            rosters: crate::cache::Cache::new("room_members", membership::ROSTERS_CACHED),
        })
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.key.server_name
    }

    /// Holds the room's write lock (one appender at a time per room).
    async fn room_lock(&self, room_id: &RoomId) -> KeyedGuard<'_, OwnedRoomId> {
        self.locks.lock(&room_id.to_owned()).await
    }

    /// Holds the room's backfill lock (one backfill at a time per room).
    pub async fn backfill_lock(&self, room_id: &RoomId) -> KeyedGuard<'_, OwnedRoomId> {
        self.backfill_locks.lock(&room_id.to_owned()).await
    }

    pub fn meta(&self, room_id: &RoomId) -> Result<Option<RoomMeta>> {
        Ok(self.db.t.rooms.get(&room_id.to_string())?.map(|j| j.0))
    }

    /// The room's metadata, or `M_NOT_FOUND` when this server does not know the room.
    pub fn meta_or_404(&self, room_id: &RoomId) -> Result<RoomMeta> {
        self.meta(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))
    }

    pub fn get_pdu(&self, event_id: &EventId) -> Result<Option<PduRef>> {
        match self.db.t.pdus.get(&event_id.to_string())? {
            Some(b) => Ok(Some(Arc::new(Pdu::from_bytes(event_id.as_str(), &b)?))),
            None => Ok(None),
        }
    }

    pub fn extras(&self, event_id: &EventId) -> Result<EventExtras> {
        Ok(self
            .db
            .t
            .event_extras
            .get(&event_id.to_string())?
            .map(|j| j.0)
            .unwrap_or_default())
    }

    /// The current state event `(kind, state_key)` of a room.
    pub fn current_state(
        &self,
        room_id: &RoomId,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Option<PduRef>> {
        let key = (room_id.to_string(), kind.to_string(), state_key.to_owned());
        match self.db.t.current_state.get(&key)? {
            Some(id) => self.get_pdu(&EventId::parse(&id).map_err(Error::internal)?),
            None => Ok(None),
        }
    }

    /// Every current state event of a room.
    pub fn current_state_all(&self, room_id: &RoomId) -> Result<Vec<PduRef>> {
        self.current_state_prefix(crate::storage::prefix(room_id.as_str()))
    }

    /// The room's current state events of one type.
    pub fn current_state_of_type(&self, room_id: &RoomId, kind: &str) -> Result<Vec<PduRef>> {
        let mut prefix = crate::storage::prefix(room_id.as_str());
        crate::storage::keys::KeyPart::encode_into(&kind, &mut prefix);
        self.current_state_prefix(prefix)
    }

    fn current_state_prefix(&self, prefix: Vec<u8>) -> Result<Vec<PduRef>> {
        let mut out = Vec::new();
        for item in self.db.t.current_state.scan_prefix(&prefix) {
            let (_, id) = item?;
            if let Some(p) = self.get_pdu(&EventId::parse(&id).map_err(Error::internal)?)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Builds, authorises and persists a new local event in an existing room, and waits until
    /// it is durable. This is the only way local events enter a room after its creation.
    pub async fn append(
        &self,
        room_id: &RoomId,
        sender: &OwnedUserId,
        template: EventTemplate,
        txn: Option<Transaction>,
    ) -> Result<PduRef> {
        self.append_signed_by(room_id, sender, template, txn, |p, _| async move { Ok(p) })
            .await
    }

    /// [`Rooms::append`] for an event another server must sign before it enters the room (an
    /// invite of one of its users): `countersign` gets the built event and answers the signed
    /// one; nothing is stored if it fails.
    pub async fn append_countersigned<F, Fut>(
        &self,
        room_id: &RoomId,
        sender: &OwnedUserId,
        template: EventTemplate,
        countersign: F,
    ) -> Result<PduRef>
    where
        F: FnOnce(PduRef, RoomVersionId) -> Fut,
        Fut: std::future::Future<Output = Result<PduRef>>,
    {
        self.append_signed_by(room_id, sender, template, None, countersign)
            .await
    }

    async fn append_signed_by<F, Fut>(
        &self,
        room_id: &RoomId,
        sender: &OwnedUserId,
        template: EventTemplate,
        txn: Option<Transaction>,
        countersign: F,
    ) -> Result<PduRef>
    where
        F: FnOnce(PduRef, RoomVersionId) -> Fut,
        Fut: std::future::Future<Output = Result<PduRef>>,
    {
        let _guard = self.room_lock(room_id).await;
        let meta = self.meta_or_404(room_id)?;
        if let Some(txn) = &txn {
            if let Some(id) = self.db.t.txn_ids.get(&txn.key(sender))? {
                // A retried request: answer with the event the first attempt created.
                let id = EventId::parse(id).map_err(Error::internal)?;
                return self
                    .get_pdu(&id)?
                    .ok_or_else(|| Error::internal("transaction event missing"));
            }
        }
        self.check_annotation_unique(room_id, sender, &template)?;
        let rules = rules_for(&meta.version)?;
        let view = CurrentState {
            rooms: self,
            room_id,
        };
        let pdu = self.build_checked(
            Some(&room_id.to_owned()),
            sender,
            &template,
            &rules,
            &view,
            meta.forward_extremities.clone(),
            meta.max_depth + 1,
        )?;
        self.check_redaction_allowed(&pdu, &rules, &view)?;
        let pdu = countersign(Arc::new(pdu), meta.version.clone()).await?;
        let pos = self.persist(vec![(pdu.clone(), txn)], meta, &rules).await?;
        let remote = self.outbox.queue_pdu(self, &pdu)?;
        drop(_guard);
        self.publish_new(&pdu, pos).await?;
        self.outbox.wake(remote);
        Ok(pdu)
    }

    /// After a new timeline event is persisted: push rules evaluated while it is made durable
    /// and before it is published, so the counts a client syncs with it already include it.
    pub(crate) async fn publish_new(&self, pdu: &PduRef, pos: u64) -> Result<()> {
        let (notified, durable) =
            tokio::join!(crate::push::evaluate(self, pdu, pos), self.db.durable());
        durable?;
        let notified = notified.unwrap_or_else(|e| {
            tracing::error!(event = %pdu.event_id, error = %e, "push rules not evaluated");
            Vec::new()
        });
        self.stream.publish_to(pos, &event_topics(pdu));
        for (user, n) in notified {
            self.push_queue.push(user, n);
        }
        Ok(())
    }

    /// Builds a PDU on top of `view` and runs the room version's authorisation rules.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build_checked(
        &self,
        room_id: Option<&OwnedRoomId>,
        sender: &OwnedUserId,
        template: &EventTemplate,
        rules: &RoomVersionRules,
        view: &dyn StateView,
        prev_events: Vec<OwnedEventId>,
        depth: u64,
    ) -> Result<Pdu> {
        let kind = TimelineEventType::from(template.kind.as_str());
        let content_raw =
            serde_json::value::to_raw_value(&template.content).map_err(Error::internal)?;
        let mut auth_events = Vec::new();
        for (k, sk) in auth::auth_types(
            &kind,
            sender,
            template.state_key.as_deref(),
            &content_raw,
            rules,
        )? {
            if let Some(p) = view.get(&k, &sk)? {
                auth_events.push(p.event_id.clone());
            }
        }
        let graph = builder::GraphFields {
            room_id,
            sender,
            prev_events,
            auth_events,
            depth,
        };
        let pdu = builder::build_pdu(template, graph, rules, &self.key)?;
        auth::check(
            &pdu,
            rules,
            |id| {
                view.pending_event(id)
                    .or_else(|| self.get_pdu(id).ok().flatten())
            },
            |k, sk| view.get(k, sk).ok().flatten(),
        )?;
        Ok(pdu)
    }

    /// Room versions 3+ accept any redaction event at the graph level; the server must still
    /// only let a sender redact their own events unless their power level allows it.
    fn check_redaction_allowed(
        &self,
        pdu: &Pdu,
        rules: &RoomVersionRules,
        view: &dyn StateView,
    ) -> Result<()> {
        if pdu.kind != TimelineEventType::RoomRedaction {
            return Ok(());
        }
        let Some(target) = &pdu.redacts else {
            return Err(Error::bad_json("redaction without a target"));
        };
        let original = self.get_pdu(target)?;
        if let Some(original) = &original {
            if original.room_id != pdu.room_id {
                return Err(Error::not_found("Event not found in this room"));
            }
            if original.sender == pdu.sender {
                return Ok(());
            }
        }
        let levels = state::power_levels(view, rules)?;
        if levels.user_level(&pdu.sender) >= levels.redact {
            Ok(())
        } else {
            Err(Error::forbidden("You may only redact your own events"))
        }
    }
}

type RoomLocks = crate::util::KeyedLocks<OwnedRoomId>;

/// The current state of a stored room.
pub struct CurrentState<'a> {
    pub rooms: &'a Rooms,
    pub room_id: &'a RoomId,
}

impl StateView for CurrentState<'_> {
    fn get(&self, kind: &StateEventType, state_key: &str) -> Result<Option<PduRef>> {
        self.rooms.current_state(self.room_id, kind, state_key)
    }
}
