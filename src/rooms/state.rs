//! Room state over time, stored as state groups: each group is its parent plus a delta of
//! `(short state key, short event id)` pairs, with a full snapshot every
//! [`MAX_CHAIN`] deltas. A state event therefore costs one 16-byte entry, not a copy of the
//! room's state, while reading state at any event stays bounded.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use ruma::{
    events::StateEventType, room_version_rules::RoomVersionRules, EventId, OwnedEventId,
    OwnedUserId, UserId,
};
use serde::Deserialize;

use super::StateView;
use crate::{
    error::{Error, Result},
    storage::{Json, Storage},
};

/// Longest delta chain before a snapshot is written.
const MAX_CHAIN: u32 = 100;
const COUNTER_KEY: &str = "id_counter";

/// Allocates short ids and state group ids, and owns the interning tables.
pub struct IdAllocator {
    next: Mutex<u64>,
}

/// A full state map: (type, state_key) -> event id.
pub type StateMap = BTreeMap<(String, String), OwnedEventId>;

impl IdAllocator {
    pub fn load(db: &Storage) -> Result<Self> {
        let n = db.meta_u64(COUNTER_KEY)?;
        Ok(Self {
            next: Mutex::new(n),
        })
    }

    fn alloc(&self, db: &Storage, next: &mut u64) -> Result<u64> {
        *next += 1;
        db.put_meta_u64(COUNTER_KEY, *next)?;
        Ok(*next)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn short_state_key(&self, db: &Storage, kind: &str, state_key: &str) -> Result<u64> {
        let key = (kind.to_owned(), state_key.to_owned());
        if let Some(id) = db.t.short_state_key.get(&key)? {
            return Ok(id);
        }
        let mut next = self.lock();
        if let Some(id) = db.t.short_state_key.get(&key)? {
            return Ok(id);
        }
        let id = self.alloc(db, &mut next)?;
        db.t.short_state_key_rev.put(&id, &Json(key.clone()))?;
        db.t.short_state_key.put(&key, &id)?;
        Ok(id)
    }

    pub fn short_event_id(&self, db: &Storage, event_id: &EventId) -> Result<u64> {
        let key = event_id.to_string();
        if let Some(id) = db.t.short_event_id.get(&key)? {
            return Ok(id);
        }
        let mut next = self.lock();
        if let Some(id) = db.t.short_event_id.get(&key)? {
            return Ok(id);
        }
        let id = self.alloc(db, &mut next)?;
        db.t.short_event_id_rev.put(&id, &key)?;
        db.t.short_event_id.put(&key, &id)?;
        Ok(id)
    }

    /// A new group: `parent` with `(kind, state_key)` set to `event_id`.
    pub fn add_to_group(
        &self,
        db: &Storage,
        parent: u64,
        kind: &str,
        state_key: &str,
        event_id: &EventId,
    ) -> Result<u64> {
        let ssk = self.short_state_key(db, kind, state_key)?;
        let sei = self.short_event_id(db, event_id)?;
        let (parent_chain, _) = match parent {
            0 => (0, Vec::new()),
            p => read_group(db, p).map(|g| (g.chain, g.delta))?,
        };
        let group = if parent != 0 && parent_chain + 1 >= MAX_CHAIN {
            let mut full = load_short(db, parent)?;
            full.insert(ssk, sei);
            let mut delta: Vec<_> = full.into_iter().collect();
            delta.sort_unstable();
            Group {
                parent: 0,
                chain: 0,
                delta,
            }
        } else {
            let chain = if parent == 0 { 0 } else { parent_chain + 1 };
            Group {
                parent,
                chain,
                delta: vec![(ssk, sei)],
            }
        };
        let id = {
            let mut next = self.lock();
            self.alloc(db, &mut next)?
        };
        db.t.state_groups.put(&id, &group.encode())?;
        Ok(id)
    }
}

impl IdAllocator {
    /// A new snapshot group holding exactly `map` (the result of state resolution).
    pub fn snapshot(&self, db: &Storage, map: &StateMap) -> Result<u64> {
        let mut delta = Vec::with_capacity(map.len());
        for ((kind, sk), id) in map {
            delta.push((
                self.short_state_key(db, kind, sk)?,
                self.short_event_id(db, id)?,
            ));
        }
        delta.sort_unstable();
        let group = Group {
            parent: 0,
            chain: 0,
            delta,
        };
        let id = {
            let mut next = self.lock();
            self.alloc(db, &mut next)?
        };
        db.t.state_groups.put(&id, &group.encode())?;
        Ok(id)
    }
}

struct Group {
    parent: u64,
    chain: u32,
    delta: Vec<(u64, u64)>,
}

impl Group {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + self.delta.len() * 16);
        v.extend_from_slice(&self.parent.to_be_bytes());
        v.extend_from_slice(&self.chain.to_be_bytes());
        for (a, b) in &self.delta {
            v.extend_from_slice(&a.to_be_bytes());
            v.extend_from_slice(&b.to_be_bytes());
        }
        v
    }

    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < 12 || !(b.len() - 12).is_multiple_of(16) {
            return Err(Error::internal("corrupt state group"));
        }
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let parent = u64_at(0);
        let chain = u32::from_be_bytes(b[8..12].try_into().unwrap_or([0; 4]));
        let delta = (12..b.len())
            .step_by(16)
            .map(|i| (u64_at(i), u64_at(i + 8)))
            .collect();
        Ok(Self {
            parent,
            chain,
            delta,
        })
    }
}

fn read_group(db: &Storage, id: u64) -> Result<Group> {
    let b =
        db.t.state_groups
            .get(&id)?
            .ok_or_else(|| Error::internal("missing state group"))?;
    Group::decode(&b)
}

/// A group's parent (0 for a snapshot), `None` when the group does not exist.
pub fn group_parent(db: &Storage, id: u64) -> Result<Option<u64>> {
    match db.t.state_groups.get(&id)? {
        Some(b) => Ok(Some(Group::decode(&b)?.parent)),
        None => Ok(None),
    }
}

/// The full state of a group as short ids.
fn load_short(db: &Storage, group: u64) -> Result<HashMap<u64, u64>> {
    let mut chain = Vec::new();
    let mut cur = group;
    while cur != 0 {
        let g = read_group(db, cur)?;
        cur = g.parent;
        chain.push(g);
    }
    let mut full = HashMap::new();
    for g in chain.into_iter().rev() {
        full.extend(g.delta);
    }
    Ok(full)
}

/// The full state of a group as `(type, state_key) -> event id`.
pub fn load_group(db: &Storage, group: u64) -> Result<StateMap> {
    let mut out = StateMap::new();
    if group == 0 {
        return Ok(out);
    }
    for (ssk, sei) in load_short(db, group)? {
        let key =
            db.t.short_state_key_rev
                .get(&ssk)?
                .ok_or_else(|| Error::internal("state key id"))?;
        let eid =
            db.t.short_event_id_rev
                .get(&sei)?
                .ok_or_else(|| Error::internal("event id"))?;
        out.insert(key.0, EventId::parse(eid).map_err(Error::internal)?);
    }
    Ok(out)
}

/// A state map read as a [`StateView`] (the state before some event).
pub struct MapView<'a> {
    pub rooms: &'a super::Rooms,
    pub map: &'a StateMap,
}

impl StateView for MapView<'_> {
    fn get(&self, kind: &StateEventType, state_key: &str) -> Result<Option<crate::events::PduRef>> {
        match self.map.get(&(kind.to_string(), state_key.to_owned())) {
            Some(id) => self.rooms.get_pdu(id),
            None => Ok(None),
        }
    }
}

/// Power levels with the spec's defaults, enough for server-side permission decisions.
#[derive(Debug, Clone)]
pub struct PowerLevels {
    pub users: BTreeMap<OwnedUserId, i64>,
    pub users_default: i64,
    pub events: BTreeMap<String, i64>,
    pub events_default: i64,
    pub state_default: i64,
    pub ban: i64,
    pub kick: i64,
    pub redact: i64,
    pub invite: i64,
    /// Creators in room versions 12+: above every power level.
    pub creators: Vec<OwnedUserId>,
}

#[derive(Deserialize, Default)]
struct PlContent {
    #[serde(default)]
    users: BTreeMap<OwnedUserId, serde_json::Value>,
    users_default: Option<serde_json::Value>,
    #[serde(default)]
    events: BTreeMap<String, serde_json::Value>,
    events_default: Option<serde_json::Value>,
    state_default: Option<serde_json::Value>,
    ban: Option<serde_json::Value>,
    kick: Option<serde_json::Value>,
    redact: Option<serde_json::Value>,
    invite: Option<serde_json::Value>,
}

fn int(v: Option<&serde_json::Value>, default: i64) -> i64 {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

impl PowerLevels {
    pub fn user_level(&self, user: &UserId) -> i64 {
        if self.creators.iter().any(|c| c == user) {
            return i64::MAX;
        }
        self.users.get(user).copied().unwrap_or(self.users_default)
    }

    /// Level needed to send an event of `kind` (state or not).
    pub fn event_level(&self, kind: &str, is_state: bool) -> i64 {
        self.events.get(kind).copied().unwrap_or(if is_state {
            self.state_default
        } else {
            self.events_default
        })
    }
}

/// The room's power levels as `view` sees them, with defaults when there is no event.
pub fn power_levels(view: &dyn StateView, rules: &RoomVersionRules) -> Result<PowerLevels> {
    let create = view.get(&StateEventType::RoomCreate, "")?;
    let mut creators = Vec::new();
    if let Some(create) = &create {
        if rules.authorization.explicitly_privilege_room_creators {
            creators.push(create.sender.clone());
            if let Some(extra) = create
                .content_value()
                .get("additional_creators")
                .and_then(|v| v.as_array())
            {
                creators.extend(
                    extra
                        .iter()
                        .filter_map(|u| u.as_str())
                        .filter_map(|u| UserId::parse(u).ok()),
                );
            }
        }
    }
    let Some(pl) = view.get(&StateEventType::RoomPowerLevels, "")? else {
        // Without a power levels event the creator has 100 and everyone else 0.
        let mut users = BTreeMap::new();
        if let Some(create) = create {
            users.insert(create.sender.clone(), 100);
        }
        return Ok(PowerLevels {
            users,
            users_default: 0,
            events: BTreeMap::new(),
            events_default: 0,
            state_default: 0,
            ban: 50,
            kick: 50,
            redact: 50,
            invite: 0,
            creators,
        });
    };
    let c: PlContent = serde_json::from_str(pl.content.get()).unwrap_or_default();
    Ok(PowerLevels {
        users: c
            .users
            .iter()
            .map(|(u, v)| (u.clone(), int(Some(v), 0)))
            .collect(),
        users_default: int(c.users_default.as_ref(), 0),
        events: c
            .events
            .iter()
            .map(|(k, v)| (k.clone(), int(Some(v), 0)))
            .collect(),
        events_default: int(c.events_default.as_ref(), 0),
        state_default: int(c.state_default.as_ref(), 50),
        ban: int(c.ban.as_ref(), 50),
        kick: int(c.kick.as_ref(), 50),
        redact: int(c.redact.as_ref(), 50),
        invite: int(c.invite.as_ref(), 0),
        creators,
    })
}

impl super::Rooms {
    /// The room state after its latest event at or before stream position `pos`.
    pub fn state_after_pos(&self, room: &ruma::RoomId, pos: u64) -> Result<StateMap> {
        let last = self.timeline_range(room, 0, pos, 1, super::timeline::Dir::Backward)?;
        let Some((_, pdu)) = last.into_iter().next() else {
            return Ok(StateMap::new());
        };
        let group = self
            .db
            .t
            .event_state_before
            .get(&pdu.event_id.to_string())?
            .unwrap_or(0);
        let mut map = load_group(&self.db, group)?;
        if let Some(sk) = &pdu.state_key {
            map.insert((pdu.kind.to_string(), sk.clone()), pdu.event_id.clone());
        }
        Ok(map)
    }
}
