//! Every table Haven keeps, in one place. Keys are composite where a scan needs them
//! (`(room, position)` for a room's timeline, `(user, device)` for a user's devices).

use super::{engine::KvEngine, table::Json, StorageError, Table};
use crate::{
    rooms::{alias::AliasRecord, receipts::ReceiptRecord, MemberRecord, RoomMeta},
    users::{account_data::AccountDataRecord, DeviceRecord, TokenRecord, UserRecord},
};

/// (user, device, transaction id)
pub type TxnKey = (String, String, String);

pub struct Tables {
    /// Server-wide values: schema version, signing key, stream position, id counters.
    pub meta: Table<String, Vec<u8>>,

    pub users: Table<String, Json<UserRecord>>,
    /// Keyed by the SHA-256 of the access token; the token itself is never stored.
    pub access_tokens: Table<String, Json<TokenRecord>>,
    pub devices: Table<(String, String), Json<DeviceRecord>>,
    pub filters: Table<(String, String), Json<serde_json::Value>>,
    /// (user, room or "", event type)
    pub account_data: Table<(String, String, String), Json<AccountDataRecord>>,
    /// Idempotency of `send` per device: -> event id.
    pub txn_ids: Table<TxnKey, String>,
    pub registration_tokens: Table<String, Json<crate::users::RegistrationToken>>,
    /// (user, device) -> the device's identity keys, as uploaded.
    pub device_keys: Table<(String, String), Json<serde_json::Value>>,
    /// (user, device, "algorithm:key id") -> an unclaimed one-time key.
    pub one_time_keys: Table<(String, String, String), Json<serde_json::Value>>,
    /// (user, device, algorithm) -> the device's fallback key.
    pub fallback_keys: Table<(String, String, String), Json<crate::users::keys::FallbackKey>>,
    /// user -> stream position of the last change to their device list.
    pub key_changes: Table<String, u64>,
    /// stream position -> user whose device list changed then (range scans for /sync).
    pub key_changes_by_pos: Table<u64, String>,
    /// (user, device, stream position) -> a send-to-device message awaiting delivery.
    pub to_device: Table<(String, String, u64), Json<crate::users::to_device::ToDeviceRecord>>,

    /// event id -> the PDU as canonical JSON (redacted if it was redacted).
    pub pdus: Table<String, Vec<u8>>,
    /// event id -> the original, for events that were redacted (never served to clients).
    pub redacted_originals: Table<String, Vec<u8>>,
    /// event id -> stream position of the event in its room's timeline.
    pub event_pos: Table<String, u64>,
    /// (room, stream position) -> event id, sender and type.
    pub timeline: Table<(String, u64), crate::rooms::timeline::TimelineEntry>,
    /// event id -> server-side extras (replaced state, sending transaction, redaction).
    pub event_extras: Table<String, Json<crate::rooms::EventExtras>>,
    /// event id -> the state group holding the room state before the event.
    pub event_state_before: Table<String, u64>,
    /// stream position -> event id, across all rooms (appservice delivery walks it).
    pub stream_events: Table<u64, String>,
    /// appservice id -> delivery progress and the transaction in flight.
    pub as_state: Table<String, Json<crate::appservice::sender::AsState>>,
    /// (room, relates-to event id, event id) -> relation type, for redaction and aggregation.
    pub relations: Table<(String, String, String), String>,

    pub rooms: Table<String, Json<RoomMeta>>,
    /// (room, event type, state key) -> event id of the current state.
    pub current_state: Table<(String, String, String), String>,
    /// (event type, state key) <-> short id, so state groups store 16-byte entries.
    pub short_state_key: Table<(String, String), u64>,
    pub short_state_key_rev: Table<u64, Json<(String, String)>>,
    pub short_event_id: Table<String, u64>,
    pub short_event_id_rev: Table<u64, String>,
    /// state group id -> parent and delta (see `rooms::state`).
    pub state_groups: Table<u64, Vec<u8>>,
    /// (room, user) -> current membership.
    pub room_members: Table<(String, String), Json<MemberRecord>>,
    /// (user, room) -> current membership, for a user's room list.
    pub user_rooms: Table<(String, String), Json<MemberRecord>>,
    /// (user, room) -> present when the user forgot the room.
    pub forgotten: Table<(String, String), ()>,
    pub aliases: Table<String, Json<AliasRecord>>,
    /// media id -> metadata of a local upload (the content is on disk, by hash).
    pub media: Table<String, Json<crate::media::MediaRecord>>,
    /// (word, u64::MAX - stream position, room) -> present: the full-text search index,
    /// newest first within a word.
    pub search_postings: Table<(String, u64, String), ()>,
    /// word -> how many events contain it (the count estimate, and which word to walk).
    pub search_df: Table<String, u64>,
    /// user -> their presence.
    pub presence: Table<String, Json<crate::users::presence::Presence>>,
    /// stream position -> user whose presence changed then.
    pub presence_by_pos: Table<u64, String>,
    /// room -> present when published in the public room directory.
    pub published_rooms: Table<String, ()>,
    /// (room, report id) -> a content report, for admins.
    pub reports: Table<(String, u64), Json<serde_json::Value>>,
    /// (user, version) -> a room-key backup version.
    pub backup_versions: Table<(String, u64), Json<crate::users::key_backup::Version>>,
    /// (user, version, room, session) -> the encrypted session key.
    pub backup_keys: Table<(String, u64, String, String), Json<serde_json::Value>>,
    /// (user, "master" | "self_signing" | "user_signing") -> the cross-signing key.
    pub cross_signing_keys: Table<(String, String), Json<serde_json::Value>>,
    /// (room, stream position) -> whom the event notified, by their push rules (unread
    /// counts, `/notifications`).
    /// (JSON of [`crate::push::EventNotifs`], read partially when counting.)
    pub push_actions: Table<(String, u64), Vec<u8>>,
    /// event id -> present when some event relates to it (spares a scan per formatted event).
    pub has_relations: Table<String, ()>,
    /// (user, app id, pushkey) -> the pusher.
    pub pushers: Table<(String, String, String), Json<serde_json::Value>>,
    /// (room, receipt type, user) -> receipt.
    pub receipts: Table<(String, String, String), Json<ReceiptRecord>>,
    /// (server, key id) -> another server's verify key and until when it is trusted.
    pub server_keys: Table<(String, String), Json<crate::federation::keys::KnownKey>>,
    /// server -> its latest key document as fetched (served again by the notary endpoint).
    pub server_key_docs: Table<String, Json<serde_json::Value>>,
    /// (destination, sequence) -> a PDU or EDU waiting to be sent there.
    pub federation_queue: Table<(String, u64), Json<crate::federation::sender::Queued>>,
    /// (origin, transaction id) -> present once a received transaction was processed.
    pub federation_txns: Table<(String, String), ()>,
    /// (user, room) -> an invite from another server to a room this server is not in:
    /// `{ "via": server, "invite_state": [...] }`.
    pub remote_invites: Table<(String, String), Json<serde_json::Value>>,
    /// (room, n) -> the n-th event of the room's history before this server's part of it,
    /// counting back in time (see `rooms::backfill`).
    pub backfill: Table<(String, u64), crate::rooms::timeline::TimelineEntry>,
    /// event id -> its n in `backfill`.
    pub backfill_index: Table<String, u64>,
    /// room -> what is still missing of its older history.
    pub backfill_edges: Table<String, Json<crate::rooms::backfill::BackfillEdge>>,
    /// sequence -> an admin API call: who, what, on what, with what result.
    pub audit_log: Table<u64, Json<serde_json::Value>>,
    /// room -> present when an admin blocked it (no local user may join).
    pub blocked_rooms: Table<String, ()>,
    /// media id -> present while an admin has the upload quarantined.
    pub quarantined_media: Table<String, ()>,
    /// user -> their server notices room.
    pub notice_rooms: Table<String, String>,
}

impl Tables {
    pub fn open(engine: &dyn KvEngine) -> Result<Self, StorageError> {
        let t = |name: &str| engine.open_tree(name);
        Ok(Self {
            meta: Table::new(t("meta")?),
            users: Table::new(t("users")?),
            access_tokens: Table::new(t("access_tokens")?),
            devices: Table::new(t("devices")?),
            filters: Table::new(t("filters")?),
            account_data: Table::new(t("account_data")?),
            txn_ids: Table::new(t("txn_ids")?),
            registration_tokens: Table::new(t("registration_tokens")?),
            to_device: Table::new(t("to_device")?),
            device_keys: Table::new(t("device_keys")?),
            one_time_keys: Table::new(t("one_time_keys")?),
            fallback_keys: Table::new(t("fallback_keys")?),
            key_changes: Table::new(t("key_changes")?),
            key_changes_by_pos: Table::new(t("key_changes_by_pos")?),
            pdus: Table::new(t("pdus")?),
            redacted_originals: Table::new(t("redacted_originals")?),
            event_pos: Table::new(t("event_pos")?),
            timeline: Table::new(t("timeline")?),
            event_extras: Table::new(t("event_extras")?),
            event_state_before: Table::new(t("event_state_before")?),
            stream_events: Table::new(t("stream_events")?),
            as_state: Table::new(t("as_state")?),
            relations: Table::new(t("relations")?),
            rooms: Table::new(t("rooms")?),
            current_state: Table::new(t("current_state")?),
            short_state_key: Table::new(t("short_state_key")?),
            short_state_key_rev: Table::new(t("short_state_key_rev")?),
            short_event_id: Table::new(t("short_event_id")?),
            short_event_id_rev: Table::new(t("short_event_id_rev")?),
            state_groups: Table::new(t("state_groups")?),
            room_members: Table::new(t("room_members")?),
            user_rooms: Table::new(t("user_rooms")?),
            forgotten: Table::new(t("forgotten")?),
            aliases: Table::new(t("aliases")?),
            media: Table::new(t("media")?),
            receipts: Table::new(t("receipts")?),
            has_relations: Table::new(t("has_relations")?),
            cross_signing_keys: Table::new(t("cross_signing_keys")?),
            backup_versions: Table::new(t("backup_versions")?),
            published_rooms: Table::new(t("published_rooms")?),
            presence: Table::new(t("presence")?),
            search_postings: Table::new(t("search_postings")?),
            search_df: Table::new(t("search_df")?),
            presence_by_pos: Table::new(t("presence_by_pos")?),
            reports: Table::new(t("reports")?),
            backup_keys: Table::new(t("backup_keys")?),
            push_actions: Table::new(t("push_actions")?),
            pushers: Table::new(t("pushers")?),
            server_keys: Table::new(t("server_keys")?),
            server_key_docs: Table::new(t("server_key_docs")?),
            federation_queue: Table::new(t("federation_queue")?),
            federation_txns: Table::new(t("federation_txns")?),
            remote_invites: Table::new(t("remote_invites")?),
            backfill: Table::new(t("backfill")?),
            backfill_index: Table::new(t("backfill_index")?),
            backfill_edges: Table::new(t("backfill_edges")?),
            audit_log: Table::new(t("audit_log")?),
            blocked_rooms: Table::new(t("blocked_rooms")?),
            quarantined_media: Table::new(t("quarantined_media")?),
            notice_rooms: Table::new(t("notice_rooms")?),
        })
    }
}
