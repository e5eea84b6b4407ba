//! Simplified sliding sync (MSC4186, the `org.matrix.simplified_msc3575` path Element X uses).
//!
//! A connection (one per device and `conn_id`) remembers what its client holds of each room:
//! the stream position it has the room up to, the `required_state` it was sent with and the
//! members already sent for `$LAZY`. A request builds only the rooms in its lists' ranges and
//! its subscriptions: in full when the client does not hold the room, otherwise what changed
//! since, so a room that slides into a range is sent even if nothing happened in it. A `pos`
//! names one version of that memory; the previous version stays valid (a client that lost a
//! response retries with it), anything else answers `M_UNKNOWN_POS` and the client starts a new
//! connection. Connections live in memory: after a restart every client starts again.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Mutex,
    time::Instant,
};

use ruma::{
    api::client::{
        filter::RoomEventFilter,
        sync::sync_events::v5::{self, request, response},
    },
    events::StateEventType,
    serde::Raw,
    OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId,
};
use serde_json::{json, Value};

use super::{make_token, parse_token};
use crate::{
    error::{ErrCode, Error, Result},
    events::{client::raw, PduRef},
    users::{account_data, keys, Session},
    Haven,
};

/// Connections kept at most; the least recently used goes first.
const MAX_CONNECTIONS: usize = 10_000;
/// Largest `timeline_limit` honoured.
const MAX_TIMELINE: u64 = 100;

/// What a client holds of one room.
#[derive(Clone)]
struct Held {
    /// Stream position up to which the client has the room.
    pos: u64,
    /// Held as an invite (its stripped state) rather than as a joined room.
    invite: bool,
    /// The `required_state` the room was last sent with: a wider one sends the state again.
    required: Vec<(StateEventType, String)>,
    /// Members sent for `$LAZY`.
    lazy: HashSet<OwnedUserId>,
    /// The user's read position when the room was last sent: counts change without new
    /// events only when it moves (a read receipt), which sends the room again.
    read: u64,
}

/// What a client holds after one response.
#[derive(Clone, Default)]
struct View {
    /// Stream position the response was built at (0: nothing sent yet).
    pos: u64,
    rooms: HashMap<OwnedRoomId, Held>,
    counts: BTreeMap<String, UInt>,
}

struct Conn {
    id: String,
    next_seq: u64,
    /// The version the client last confirmed by sending its `pos`.
    confirmed: (u64, View),
    /// The version of the latest response, until the client confirms it.
    pending: Option<(u64, View)>,
    used: Instant,
}

type ConnKey = (OwnedUserId, OwnedDeviceId, String);

/// Every open sliding-sync connection.
#[derive(Default)]
pub struct Connections(Mutex<HashMap<ConnKey, Conn>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnKey, Conn>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The view a request builds on: empty for a new connection (no `pos`), else the version
    /// `pos` names.
    fn resume(&self, key: &ConnKey, pos: Option<&str>) -> Result<(String, View)> {
        let mut conns = self.lock();
        let Some(pos) = pos else {
            if conns.len() >= MAX_CONNECTIONS {
                let oldest = conns
                    .iter()
                    .min_by_key(|(_, c)| c.used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    conns.remove(&k);
                }
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            conns.insert(
                key.clone(),
                Conn {
                    id: id.clone(),
                    next_seq: 1,
                    confirmed: (0, View::default()),
                    pending: None,
                    used: Instant::now(),
                },
            );
            return Ok((id, View::default()));
        };
        let unknown = || {
            Error::bad_request(
                ErrCode::UnknownPos,
                "Unknown position: start a new connection",
            )
        };
        let (id, seq) = pos
            .split_once('_')
            .and_then(|(id, seq)| Some((id, seq.parse::<u64>().ok()?)))
            .ok_or_else(unknown)?;
        let c = conns
            .get_mut(key)
            .filter(|c| c.id == id)
            .ok_or_else(unknown)?;
        c.used = Instant::now();
        if c.pending.as_ref().is_some_and(|(s, _)| *s == seq) {
            c.confirmed = c.pending.take().ok_or_else(unknown)?;
        } else if c.confirmed.0 == seq {
            c.pending = None;
        } else {
            return Err(unknown());
        }
        Ok((c.id.clone(), c.confirmed.1.clone()))
    }

    /// Keeps the view a response leaves its client with; returns the response's `pos`.
    fn record(&self, key: &ConnKey, id: &str, view: View) -> String {
        let mut conns = self.lock();
        match conns.get_mut(key).filter(|c| c.id == id) {
            Some(c) => {
                let seq = c.next_seq;
                c.next_seq += 1;
                c.pending = Some((seq, view));
                format!("{id}_{seq}")
            }
            // Replaced by a newer connection meanwhile: this position will be refused.
            None => format!("{id}_0"),
        }
    }
}

/// `(event type, state key)` patterns: `*` for any, `$ME` for the user; `$LAZY` is served from
/// the timeline's senders.
fn wanted(required: &[(StateEventType, String)], kind: &str, key: &str, me: &UserId) -> bool {
    required.iter().any(|(t, k)| {
        let t = t.to_string();
        (t == "*" || t == kind)
            && k != "$LAZY"
            && (k == "*" || k == key || (k == "$ME" && key == me.as_str()))
    })
}

/// A room the user is in, was invited to or left.
struct Membership {
    membership: String,
    /// Stream position of the membership event.
    pos: u64,
    event_id: ruma::OwnedEventId,
    /// Latest activity, for ordering and `bump_stamp`.
    bump: u64,
}

/// The user's rooms as of `upto`: joined and invited ones most recently active first, and the
/// others (left, banned) by room.
#[allow(clippy::type_complexity)]
fn memberships(
    h: &Haven,
    user: &UserId,
    upto: u64,
    ignored: &[OwnedUserId],
) -> Result<(
    Vec<(OwnedRoomId, Membership)>,
    HashMap<OwnedRoomId, Membership>,
)> {
    let mut active = Vec::new();
    let mut gone = HashMap::new();
    for (room, m) in h.rooms.user_rooms(user)? {
        if m.pos > upto {
            continue;
        }
        let rec = Membership {
            bump: h
                .rooms
                .meta(&room)?
                .map_or(m.pos, |meta| meta.last_pos.min(upto).max(m.pos)),
            membership: m.membership,
            pos: m.pos,
            event_id: m.event_id,
        };
        match rec.membership.as_str() {
            "join" => active.push((room, rec)),
            "invite" if !super::invited_by_ignored(h, &rec.event_id, ignored)? => {
                active.push((room, rec))
            }
            _ => {
                gone.insert(room, rec);
            }
        }
    }
    active.sort_by(|a, b| b.1.bump.cmp(&a.1.bump).then(a.0.cmp(&b.0)));
    Ok((active, gone))
}

/// Rooms in the user's `m.direct` account data.
fn direct_rooms(h: &Haven, user: &UserId) -> Result<BTreeSet<String>> {
    let v = account_data::get(&h.db, user, None, "m.direct")?;
    Ok(v.and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.values()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The room's name: `m.room.name`, else its canonical alias.
fn room_name(h: &Haven, room: &RoomId) -> Result<Option<String>> {
    if let Some(n) = h.rooms.room_name(room)? {
        return Ok(Some(n));
    }
    Ok(h.rooms
        .current_state(room, &StateEventType::RoomCanonicalAlias, "")?
        .and_then(|e| e.content_value()["alias"].as_str().map(str::to_owned)))
}

/// Whether a room passes a list's filters.
fn passes(
    h: &Haven,
    f: &request::ListFilters,
    room: &RoomId,
    m: &Membership,
    dms: &BTreeSet<String>,
) -> Result<bool> {
    if f.is_dm.is_some_and(|d| d != dms.contains(room.as_str()))
        || f.is_invite.is_some_and(|i| i != (m.membership == "invite"))
    {
        return Ok(false);
    }
    if let Some(e) = f.is_encrypted {
        let enc = h
            .rooms
            .current_state(room, &StateEventType::RoomEncryption, "")?
            .is_some();
        if e != enc {
            return Ok(false);
        }
    }
    if !f.room_types.is_empty() || !f.not_room_types.is_empty() {
        let kind = h
            .rooms
            .current_state(room, &StateEventType::RoomCreate, "")?
            .and_then(|c| c.content_value()["type"].as_str().map(str::to_owned));
        let is = |t: &ruma::directory::RoomTypeFilter| t.as_str() == kind.as_deref();
        if (!f.room_types.is_empty() && !f.room_types.iter().any(is))
            || f.not_room_types.iter().any(is)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What a request asks of one room: the largest timeline and every `required_state` pattern.
#[derive(Default)]
struct Wants {
    timeline: u64,
    required: Vec<(StateEventType, String)>,
}

impl Wants {
    fn add(&mut self, timeline: UInt, required: &[(StateEventType, String)]) {
        self.timeline = self.timeline.max(u64::from(timeline).min(MAX_TIMELINE));
        for r in required {
            if !self.required.contains(r) {
                self.required.push(r.clone());
            }
        }
    }
}

pub async fn sync(h: &Haven, s: &Session, req: &v5::Request) -> Result<v5::Response> {
    let key = (
        s.user_id.clone(),
        s.device_id.clone(),
        req.conn_id.clone().unwrap_or_default(),
    );
    let (id, base) = h.sliding.resume(&key, req.pos.as_deref())?;
    let timeout = req.timeout.unwrap_or_default().min(super::MAX_TIMEOUT);
    let deadline = tokio::time::Instant::now() + timeout;
    // A new connection answers at once, as does a request without a timeout.
    let may_wait = req.pos.is_some() && !timeout.is_zero();
    loop {
        let waiter = may_wait.then(|| super::waiter(h, &s.user_id)).transpose()?;
        let upto = h.stream.current();
        let (mut resp, view) = crate::storage::blocking(|| build(h, s, req, &base, upto))?;
        let news = view.counts != base.counts || has_news(&resp);
        let waiter = waiter.filter(|_| !news);
        let _waiting = waiter.is_some().then(crate::metrics::SyncWaiter::start);
        let woken = match &waiter {
            Some(w) => tokio::time::timeout_at(deadline, w.changed()).await.is_ok(),
            None => false,
        };
        if !woken {
            resp.pos = h.sliding.record(&key, &id, view);
            resp.txn_id = req.txn_id.clone();
            return Ok(resp);
        }
    }
}

fn has_news(r: &v5::Response) -> bool {
    let e = &r.extensions;
    !r.rooms.is_empty()
        || e.to_device.as_ref().is_some_and(|t| !t.events.is_empty())
        || !e.e2ee.device_lists.changed.is_empty()
        || !e.e2ee.device_lists.left.is_empty()
        || !e.account_data.global.is_empty()
        || !e.account_data.rooms.is_empty()
        || !e.receipts.rooms.is_empty()
        || !e.typing.rooms.is_empty()
}

fn build(
    h: &Haven,
    s: &Session,
    req: &v5::Request,
    base: &View,
    upto: u64,
) -> Result<(v5::Response, View)> {
    let user = &s.user_id;
    let ignored = account_data::ignored_users(&h.db, user)?;
    let (active, gone) = memberships(h, user, upto, &ignored)?;
    let dms = direct_rooms(h, user)?;
    let mut view = View {
        pos: upto,
        rooms: base.rooms.clone(),
        counts: BTreeMap::new(),
    };
    let mut resp = v5::Response::new(String::new());

    // The rooms in each list's ranges, then the subscriptions.
    let mut wants: BTreeMap<OwnedRoomId, Wants> = BTreeMap::new();
    let mut list_rooms: BTreeMap<&str, Vec<OwnedRoomId>> = BTreeMap::new();
    for (name, list) in &req.lists {
        let mut matching = Vec::new();
        for (room, m) in &active {
            if list
                .filters
                .as_ref()
                .map_or(Ok(true), |f| passes(h, f, room, m, &dms))?
            {
                matching.push(room);
            }
        }
        let count = UInt::try_from(matching.len()).unwrap_or_default();
        view.counts.insert(name.clone(), count);
        let mut l = response::List::default();
        l.count = count;
        resp.lists.insert(name.clone(), l);
        let in_range = list_rooms.entry(name.as_str()).or_default();
        for (start, end) in &list.ranges {
            let (start, end) = (u64::from(*start) as usize, u64::from(*end) as usize);
            for room in matching
                .iter()
                .skip(start)
                .take(end.saturating_sub(start) + 1)
            {
                let d = &list.room_details;
                wants
                    .entry((*room).clone())
                    .or_default()
                    .add(d.timeline_limit, &d.required_state);
                in_range.push((*room).clone());
            }
        }
    }
    let by_room: HashMap<&OwnedRoomId, &Membership> = active.iter().map(|(r, m)| (r, m)).collect();
    for (room, sub) in &req.room_subscriptions {
        if by_room.contains_key(room) {
            wants
                .entry(room.clone())
                .or_default()
                .add(sub.timeline_limit, &sub.required_state);
        }
    }

    let mut fresh: HashMap<OwnedRoomId, HashSet<String>> = HashMap::new();
    for (room, w) in &wants {
        let Some(m) = by_room.get(room) else { continue };
        let held = base.rooms.get(room);
        let built = if m.membership == "invite" {
            match held {
                Some(x) if x.invite && x.pos >= m.pos => None,
                _ => Some(invited(h, room, m)?),
            }
        } else {
            joined(h, s, room, held, w, upto, base.pos, &ignored)?
        };
        if let Some((mut out, now_held)) = built {
            out.bump_stamp = UInt::new(m.bump);
            out.is_dm = Some(dms.contains(room.as_str()));
            if out.initial == Some(true) {
                fresh.insert(room.clone(), event_ids(&out.timeline));
            }
            resp.rooms.insert(room.clone(), out);
            view.rooms.insert(room.clone(), now_held);
        }
    }
    // Rooms the client holds that the user has left (or that are gone) since.
    for (room, held) in &base.rooms {
        if by_room.contains_key(room) {
            continue;
        }
        view.rooms.remove(room);
        if let Some(m) = gone.get(room).filter(|m| m.pos > held.pos) {
            resp.rooms
                .insert(room.clone(), left(h, s, room, held, m, &wants)?);
        }
    }

    extensions(h, s, req, base, upto, &view, &list_rooms, &fresh, &mut resp)?;
    Ok((resp, view))
}

fn event_ids(timeline: &[Raw<ruma::events::AnySyncTimelineEvent>]) -> HashSet<String> {
    timeline
        .iter()
        .filter_map(|e| e.get_field::<String>("event_id").ok().flatten())
        .collect()
}

/// A joined room: in full when the client does not hold it, else what changed since; `None`
/// when nothing did.
#[allow(clippy::too_many_arguments)]
fn joined(
    h: &Haven,
    s: &Session,
    room: &OwnedRoomId,
    held: Option<&Held>,
    w: &Wants,
    upto: u64,
    prev: u64,
    ignored: &[OwnedUserId],
) -> Result<Option<(response::Room, Held)>> {
    let Some(meta) = h.rooms.meta(room)? else {
        return Ok(None);
    };
    let held = held.filter(|x| !x.invite);
    let after = held.map_or(0, |x| x.pos);
    let widened = held.is_some_and(|x| w.required.iter().any(|r| !x.required.contains(r)));
    let changed = meta.last_pos > after;
    let read = h.rooms.read_pos(room, &s.user_id)?;
    if let Some(x) = held.filter(|_| !changed && !widened) {
        if x.read == read {
            return Ok(None);
        }
        // Only the read position moved (the user read it elsewhere): the new counts, nothing
        // else.
        let mut out = response::Room::new();
        out.unread_notifications = super::unread_counts(h, room, &s.user_id)?;
        let mut now = x.clone();
        now.read = read;
        return Ok(Some((out, now)));
    }
    let (events, limited) = if changed && w.timeline > 0 {
        let mut tf = RoomEventFilter::default();
        tf.limit = Some(UInt::from(w.timeline as u32));
        tf.not_senders = ignored.to_vec();
        // A room new to the client may have history from before the user joined.
        let vis = match held {
            None => h.rooms.visible_range(room, &s.user_id)?,
            Some(_) => None,
        };
        super::window(h, room, after, upto, &tf, vis.as_ref())?
    } else {
        (Vec::new(), changed)
    };
    let user = &s.user_id;
    let mut out = response::Room::new();
    if held.is_none() {
        out.initial = Some(true);
    }
    for (_, pdu) in &events {
        out.timeline.push(raw(&h
            .rooms
            .format_event(pdu, Some((user, &s.device_id)))?)?);
    }
    out.limited = limited;
    if prev > 0 {
        let live = events.iter().filter(|(p, _)| *p > prev).count();
        out.num_live = Some(UInt::try_from(live).unwrap_or_default());
    }
    out.prev_batch = events.first().map(|(p, _)| make_token(p - 1));

    // Required state: all of it that matches when the client lacks the room, asks for more or
    // missed events; otherwise the matching state events of the timeline.
    let mut state: Vec<PduRef> = if held.is_none() || widened || limited {
        required_state(h, room, &w.required, user)?
    } else {
        events
            .iter()
            .filter(|(_, e)| {
                e.state_key
                    .as_deref()
                    .is_some_and(|k| wanted(&w.required, &e.kind.to_string(), k, user))
            })
            .map(|(_, e)| e.clone())
            .collect()
    };
    let mut lazy = held.map(|x| x.lazy.clone()).unwrap_or_default();
    let lazy_wanted = w
        .required
        .iter()
        .any(|(t, k)| *t == StateEventType::RoomMember && k == "$LAZY");
    if lazy_wanted {
        for (_, e) in &events {
            if lazy.insert(e.sender.clone()) {
                state.extend(h.rooms.current_state(
                    room,
                    &StateEventType::RoomMember,
                    e.sender.as_str(),
                )?);
            }
        }
    }
    let mut seen = HashSet::new();
    for pdu in state {
        if seen.insert(pdu.event_id.clone()) {
            out.required_state.push(raw(&h.rooms.format_plain(&pdu)?)?);
        }
    }

    out.name = room_name(h, room)?;
    out.unread_notifications = super::unread_counts(h, room, user)?;
    let members_moved = held.is_none()
        || events
            .iter()
            .any(|(_, e)| e.kind.to_string() == "m.room.member");
    if members_moved {
        let summary = super::summary(h, room, user)?;
        out.joined_count = summary.joined_member_count;
        out.invited_count = summary.invited_member_count;
        if out.name.is_none() {
            out.heroes = Some(heroes(h, room, summary.heroes)?);
        }
    }
    if held.is_none() {
        if let Some(url) = h
            .rooms
            .current_state(room, &StateEventType::RoomAvatar, "")?
            .and_then(|a| a.content_value()["url"].as_str().map(str::to_owned))
        {
            out.avatar = ruma::JsOption::Some(url.into());
        }
    }
    Ok(Some((
        out,
        Held {
            pos: upto,
            invite: false,
            required: w.required.clone(),
            lazy,
            read,
        },
    )))
}

/// The room's current state events matching the patterns.
fn required_state(
    h: &Haven,
    room: &RoomId,
    required: &[(StateEventType, String)],
    me: &UserId,
) -> Result<Vec<PduRef>> {
    if required.iter().any(|(t, _)| t.to_string() == "*") {
        return Ok(h
            .rooms
            .current_state_all(room)?
            .into_iter()
            .filter(|p| {
                p.state_key
                    .as_deref()
                    .is_some_and(|k| wanted(required, &p.kind.to_string(), k, me))
            })
            .collect());
    }
    let mut out = Vec::new();
    for (kind, key) in required {
        match key.as_str() {
            "$LAZY" => {}
            "*" => out.extend(h.rooms.current_state_of_type(room, &kind.to_string())?),
            "$ME" => out.extend(h.rooms.current_state(room, kind, me.as_str())?),
            key => out.extend(h.rooms.current_state(room, kind, key)?),
        }
    }
    Ok(out)
}

/// Up to five other members, with their names and avatars, for naming an unnamed room.
fn heroes(h: &Haven, room: &RoomId, users: Vec<OwnedUserId>) -> Result<Vec<response::Hero>> {
    let mut out = Vec::new();
    for u in users {
        let member = h
            .rooms
            .current_state(room, &StateEventType::RoomMember, u.as_str())?
            .map(|m| m.content_value());
        let mut hero = response::Hero::new(u);
        if let Some(c) = member {
            hero.name = c["displayname"].as_str().map(str::to_owned);
            hero.avatar = c["avatar_url"].as_str().map(Into::into);
        }
        out.push(hero);
    }
    Ok(out)
}

fn invited(h: &Haven, room: &RoomId, m: &Membership) -> Result<(response::Room, Held)> {
    let mut out = response::Room::new();
    out.initial = Some(true);
    out.invite_state = Some(
        super::invited_room(h, room, &m.event_id)?
            .invite_state
            .events,
    );
    out.name = room_name(h, room)?;
    Ok((
        out,
        Held {
            pos: m.pos,
            invite: true,
            required: Vec::new(),
            lazy: HashSet::new(),
            read: 0,
        },
    ))
}

/// A room the client holds and the user has left: what happened up to the leave (for a
/// refused or withdrawn invite, the leave itself).
fn left(
    h: &Haven,
    s: &Session,
    room: &RoomId,
    held: &Held,
    m: &Membership,
    wants: &BTreeMap<OwnedRoomId, Wants>,
) -> Result<response::Room> {
    let mut out = response::Room::new();
    out.bump_stamp = UInt::new(m.bump);
    let viewer = Some((&*s.user_id, &*s.device_id));
    // Clients learn the room's membership from `required_state` alone (matrix-rust-sdk takes
    // a room without the user's member event there for joined): the state as of the leave
    // that the client asked for, and always the user's own member event.
    for ((kind, key), id) in &h.rooms.state_after_pos(room, m.pos)? {
        let own = kind == "m.room.member" && key == s.user_id.as_str();
        if own || wanted(&held.required, kind, key, &s.user_id) {
            if let Some(pdu) = h.rooms.get_pdu(id)? {
                out.required_state.push(raw(&h.rooms.format_plain(&pdu)?)?);
            }
        }
    }
    if held.invite {
        if let Some(pdu) = h.rooms.get_pdu(&m.event_id)? {
            out.timeline
                .push(raw(&h.rooms.format_event(&pdu, viewer)?)?);
        }
        return Ok(out);
    }
    let limit = wants.get(room).map_or(1, |w| w.timeline.max(1));
    let mut tf = RoomEventFilter::default();
    tf.limit = Some(UInt::from(limit as u32));
    let (events, limited) = super::window(h, room, held.pos, m.pos, &tf, None)?;
    for (_, pdu) in &events {
        out.timeline.push(raw(&h.rooms.format_event(pdu, viewer)?)?);
    }
    out.limited = limited;
    out.prev_batch = events.first().map(|(p, _)| make_token(p - 1));
    Ok(out)
}

/// The rooms a room extension covers: those of the named lists (all lists when none are
/// named) and the named subscriptions (all when none are named), that the client holds.
fn covered(
    lists: Option<&Vec<String>>,
    rooms: Option<&Vec<request::ExtensionRoomConfig>>,
    req: &v5::Request,
    list_rooms: &BTreeMap<&str, Vec<OwnedRoomId>>,
    view: &View,
) -> BTreeSet<OwnedRoomId> {
    let mut out = BTreeSet::new();
    for (name, rs) in list_rooms {
        if lists.is_none_or(|l| l.iter().any(|n| n == name)) {
            out.extend(rs.iter().cloned());
        }
    }
    for room in req.room_subscriptions.keys() {
        let named = rooms.is_none_or(|rs| {
            rs.iter().any(|c| match c {
                request::ExtensionRoomConfig::AllSubscribed => true,
                request::ExtensionRoomConfig::Room(r) => r == room,
                _ => false,
            })
        });
        if named {
            out.insert(room.clone());
        }
    }
    for c in rooms.into_iter().flatten() {
        if let request::ExtensionRoomConfig::Room(r) = c {
            out.insert(r.clone());
        }
    }
    out.retain(|r| view.rooms.get(r).is_some_and(|x| !x.invite));
    out
}

#[allow(clippy::too_many_arguments)]
fn extensions(
    h: &Haven,
    s: &Session,
    req: &v5::Request,
    base: &View,
    upto: u64,
    view: &View,
    list_rooms: &BTreeMap<&str, Vec<OwnedRoomId>>,
    fresh: &HashMap<OwnedRoomId, HashSet<String>>,
    resp: &mut v5::Response,
) -> Result<()> {
    let user = &s.user_id;
    let ext = &req.extensions;
    let prev = base.pos;
    if ext.to_device.enabled == Some(true) {
        let since = ext
            .to_device
            .since
            .as_deref()
            .map(parse_token)
            .transpose()?;
        let mut td = response::ToDevice::default();
        td.next_batch = make_token(upto);
        for ev in crate::users::to_device::take(&h.db, user, &s.device_id, since, upto)? {
            td.events.push(raw(&ev)?);
        }
        resp.extensions.to_device = Some(td);
    }
    if ext.e2ee.enabled == Some(true) {
        let e2ee = &mut resp.extensions.e2ee;
        if prev > 0 {
            let (changed, left) = keys::changes(&h.rooms, &h.db, user, prev, upto)?;
            e2ee.device_lists.changed = changed;
            e2ee.device_lists.left = left;
        }
        for (alg, n) in keys::counts(&h.db, user, &s.device_id)? {
            e2ee.device_one_time_keys_count
                .insert(alg.as_str().into(), UInt::try_from(n).unwrap_or(UInt::MAX));
        }
        e2ee.device_unused_fallback_key_types = Some(
            keys::unused_fallback_types(&h.db, user, &s.device_id)?
                .iter()
                .map(|a| a.as_str().into())
                .collect(),
        );
    }
    if ext.account_data.enabled == Some(true) {
        let a = &ext.account_data;
        let rooms = covered(a.lists.as_ref(), a.rooms.as_ref(), req, list_rooms, view);
        let out = &mut resp.extensions.account_data;
        let mut add = |room: &str, kind: String, content: Value| -> Result<()> {
            if room.is_empty() {
                out.global
                    .push(raw(&super::global_account_event(h, user, kind, content)?)?);
                return Ok(());
            }
            if let Ok(r) = RoomId::parse(room) {
                let e = json!({ "type": kind, "content": content });
                out.rooms.entry(r).or_default().push(raw(&e)?);
            }
            Ok(())
        };
        for (room, kind, content) in account_data::since(&h.db, user, prev)? {
            let held_before = RoomId::parse(&room)
                .ok()
                .is_some_and(|r| rooms.contains(&r) && !fresh.contains_key(&r));
            if room.is_empty() || held_before {
                add(&room, kind, content)?;
            }
        }
        // Rooms new to the client get all their account data.
        if fresh.keys().any(|r| rooms.contains(r)) {
            for (room, kind, content) in account_data::since(&h.db, user, 0)? {
                if RoomId::parse(&room)
                    .ok()
                    .is_some_and(|r| rooms.contains(&r) && fresh.contains_key(&r))
                {
                    add(&room, kind, content)?;
                }
            }
        }
        if prev == 0 {
            if let Some(e) = super::default_push_rules(h, user)? {
                resp.extensions.account_data.global.push(raw(&e)?);
            }
        }
    }
    if ext.receipts.enabled == Some(true) {
        let r = &ext.receipts;
        for room in covered(r.lists.as_ref(), r.rooms.as_ref(), req, list_rooms, view) {
            let receipts = match fresh.get(&room) {
                // New to the client: the receipts on what it is sent, and the user's own.
                Some(ids) => h
                    .rooms
                    .receipts_since(&room, 0)?
                    .into_iter()
                    .filter(|(_, u, rec)| ids.contains(rec.event_id.as_str()) || u == user.as_str())
                    .collect(),
                None => h.rooms.receipts_since(&room, prev)?,
            };
            if let Some(e) = super::receipt_event(receipts, user) {
                resp.extensions
                    .receipts
                    .rooms
                    .insert(room, Raw::from_json(raw::<Value>(&e)?.into_json()));
            }
        }
    }
    if ext.typing.enabled == Some(true) {
        let t = &ext.typing;
        for room in covered(t.lists.as_ref(), t.rooms.as_ref(), req, list_rooms, view) {
            let (pos, users) = h.rooms.typing.get(&room);
            let show = if fresh.contains_key(&room) {
                !users.is_empty()
            } else {
                pos > prev
            };
            if show {
                let e = json!({ "type": "m.typing", "content": { "user_ids": users } });
                resp.extensions
                    .typing
                    .rooms
                    .insert(room, Raw::from_json(raw::<Value>(&e)?.into_json()));
            }
        }
    }
    Ok(())
}
