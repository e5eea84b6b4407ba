//! `/sync`: initial and incremental, with long-polling that sleeps until the stream position
//! moves (a [`tokio::sync::watch`] channel, no polling loop) and rebuilds only then.

pub mod filter;
pub mod history;
pub mod sliding;

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use ruma::{
    api::client::{
        filter::{FilterDefinition, RoomEventFilter},
        sync::sync_events::{
            self,
            v3::{
                Ephemeral, GlobalAccountData, InviteState, InvitedRoom, JoinedRoom, LeftRoom,
                RoomAccountData, RoomSummary, Rooms, State, StateEvents, Timeline,
            },
            UnreadNotificationsCount,
        },
    },
    events::StateEventType,
    EventId, OwnedRoomId, RoomId, UInt,
};
use serde_json::{json, Value};

use crate::events::client::raw;
use crate::{
    error::{Error, Result},
    events::{client::stripped_state, PduRef},
    rooms::{state::load_group, timeline::Dir, visibility::Visible},
    users::{account_data, Session},
    Haven,
};

/// Timeline events per room when the filter sets no limit.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// Longest long-poll honoured.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SyncParams {
    pub since: Option<u64>,
    pub full_state: bool,
    pub timeout: Duration,
    pub filter: FilterDefinition,
}

/// Sync tokens are `s<position>`.
pub fn parse_token(t: &str) -> Result<u64> {
    t.strip_prefix('s')
        .or_else(|| t.strip_prefix('t'))
        .unwrap_or(t)
        .parse()
        .map_err(|_| Error::invalid_param("Invalid sync token"))
}

pub fn make_token(pos: u64) -> String {
    format!("s{pos}")
}

pub async fn sync(
    h: &Haven,
    session: &Session,
    params: SyncParams,
) -> Result<sync_events::v3::Response> {
    let deadline = tokio::time::Instant::now() + params.timeout.min(MAX_TIMEOUT);
    // Only an incremental sync with a timeout waits; the others answer at once.
    let may_wait = params.since.is_some() && !params.full_state && !params.timeout.is_zero();
    loop {
        let waiter = may_wait.then(|| waiter(h, &session.user_id)).transpose()?;
        let upto = h.stream.current();
        let resp = {
            let h2 = h;
            crate::storage::blocking(|| build(h2, session, &params, upto))?
        };
        let Some(waiter) = waiter.filter(|_| is_empty(&resp)) else {
            return Ok(resp);
        };
        let _waiting = crate::metrics::SyncWaiter::start();
        if tokio::time::timeout_at(deadline, waiter.changed())
            .await
            .is_err()
        {
            return Ok(resp);
        }
    }
}

/// A long-poll of `user`, woken only by what its answer could contain: changes about the
/// user (their account data, to-device messages, memberships, presence and keys) and changes
/// in the rooms they are in. Registered before the answer is built, so nothing published
/// meanwhile is missed.
pub(crate) fn waiter<'a>(h: &'a Haven, user: &ruma::UserId) -> Result<crate::stream::Waiter<'a>> {
    let topics = crate::rooms::membership::user_and_room_topics(&h.db, user)?;
    Ok(h.stream.wait_for(topics))
}

fn is_empty(r: &sync_events::v3::Response) -> bool {
    r.rooms.join.is_empty()
        && r.rooms.knock.is_empty()
        && r.rooms.invite.is_empty()
        && r.rooms.leave.is_empty()
        && r.account_data.events.is_empty()
        && r.to_device.events.is_empty()
        && r.device_lists.changed.is_empty()
        && r.device_lists.left.is_empty()
        && r.presence.events.is_empty()
}

fn build(
    h: &Haven,
    session: &Session,
    p: &SyncParams,
    upto: u64,
) -> Result<sync_events::v3::Response> {
    let user = &session.user_id;
    let since = if p.full_state { None } else { p.since };
    let since_pos = p.since.unwrap_or(0);
    let mut rooms = Rooms::new();
    let room_filter = &p.filter.room;

    let ignored = account_data::ignored_users(&h.db, user)?;
    for (room_id, m) in h.rooms.user_rooms(user)? {
        if !filter::room_allowed(room_filter, &room_id) || m.pos > upto {
            continue;
        }
        match m.membership.as_str() {
            "join" => {
                let newly = match p.since {
                    Some(s) => m.pos > s && !was_joined_at(h, &room_id, user, s)?,
                    None => false,
                };
                let room_since = if newly { None } else { since };
                if let Some(jr) = joined_room(
                    h,
                    session,
                    &room_id,
                    room_since,
                    since_pos,
                    upto,
                    &room_filter.timeline,
                    p,
                )? {
                    rooms.join.insert(room_id, jr);
                }
            }
            "invite"
                if (p.since.is_none_or(|s| m.pos > s) || p.full_state)
                    && !invited_by_ignored(h, &m.event_id, &ignored)? =>
            {
                rooms
                    .invite
                    .insert(room_id.clone(), invited_room(h, &room_id, &m.event_id)?);
            }
            "knock" if (p.since.is_none_or(|s| m.pos > s) || p.full_state) => {
                let mut kr = ruma::api::client::sync::sync_events::v3::KnockedRoom::new();
                kr.knock_state.events = invited_room(h, &room_id, &m.event_id)?.invite_state.events;
                rooms.knock.insert(room_id, kr);
            }
            "leave" | "ban" => {
                let show = match p.since {
                    Some(s) => m.pos > s,
                    None => room_filter.include_leave,
                };
                if show && h.rooms.meta(&room_id)?.is_none() {
                    // Deleted (purged) after the user left: left, with nothing more to show.
                    rooms.leave.insert(room_id, Default::default());
                } else if show && !h.rooms.is_forgotten(&room_id, user)? {
                    if let Some(lr) = left_room(h, &room_id, since, m.pos, p, session)? {
                        rooms.leave.insert(room_id, lr);
                    }
                } else if show && p.since.is_some() {
                    // Left and already forgotten since the last sync (a rejected invite, say):
                    // reported once with the leave itself, as Synapse does, so the client
                    // learns of it at once (instead of waiting out its timeout) and keeps a
                    // pagination token should it come back to the room.
                    rooms
                        .leave
                        .insert(room_id, forgotten_leave(h, &m.event_id, m.pos, session)?);
                }
            }
            _ => {}
        }
    }

    let mut account = GlobalAccountData::new();
    for (room, kind, content) in account_data::since(&h.db, user, since.unwrap_or(0))? {
        if room.is_empty()
            && filter::type_allowed(
                p.filter.account_data.types.as_ref(),
                &p.filter.account_data.not_types,
                &kind,
            )
        {
            account
                .events
                .push(raw(&global_account_event(h, user, kind, content)?)?);
        }
    }
    // Clients read the push rules from account data: an initial sync always has them (the
    // server defaults until the user changes one).
    if since.is_none()
        && filter::type_allowed(
            p.filter.account_data.types.as_ref(),
            &p.filter.account_data.not_types,
            crate::push::PUSH_RULES,
        )
    {
        if let Some(e) = default_push_rules(h, user)? {
            account.events.push(raw(&e)?);
        }
    }

    let mut resp = sync_events::v3::Response::new(make_token(upto));
    resp.rooms = rooms;
    resp.account_data = account;
    for ev in crate::users::presence::events(&h.db, &h.rooms, user, p.since, upto)? {
        resp.presence.events.push(raw(&ev)?);
    }
    for ev in crate::users::to_device::take(&h.db, user, &session.device_id, p.since, upto)? {
        resp.to_device.events.push(raw(&ev)?);
    }
    use crate::users::keys;
    if let Some(since) = p.since {
        let (changed, left) = keys::changes(&h.rooms, &h.db, user, since, upto)?;
        resp.device_lists.changed = changed;
        resp.device_lists.left = left;
    }
    for (alg, n) in keys::counts(&h.db, user, &session.device_id)? {
        resp.device_one_time_keys_count
            .insert(alg.as_str().into(), UInt::try_from(n).unwrap_or(UInt::MAX));
    }
    resp.device_unused_fallback_key_types = Some(
        keys::unused_fallback_types(&h.db, user, &session.device_id)?
            .iter()
            .map(|a| a.as_str().into())
            .collect(),
    );
    Ok(resp)
}

/// A global account data event as clients see it: the push rules are the ones evaluation
/// uses (stored ones brought up to the current server defaults, or the defaults), whatever
/// `content` was stored.
fn global_account_event(
    h: &Haven,
    user: &ruma::UserId,
    kind: String,
    content: Value,
) -> Result<Value> {
    if kind == crate::push::PUSH_RULES {
        let rules = crate::push::ruleset(&h.db, user)?;
        return Ok(json!({ "type": kind, "content": { "global": &*rules } }));
    }
    Ok(json!({ "type": kind, "content": content }))
}

/// The server's default push rules as an account data event, for a first sync of a user who
/// never changed them (clients read the rules from account data).
fn default_push_rules(h: &Haven, user: &ruma::UserId) -> Result<Option<Value>> {
    let kind = crate::push::PUSH_RULES;
    if account_data::get(&h.db, user, None, kind)?.is_some() {
        return Ok(None);
    }
    global_account_event(h, user, kind.to_owned(), Value::Null).map(Some)
}

/// Whether `user` was joined to the room at stream position `pos`.
fn was_joined_at(h: &Haven, room: &RoomId, user: &ruma::UserId, pos: u64) -> Result<bool> {
    let Some(m) = h.rooms.membership(room, user)? else {
        return Ok(false);
    };
    let mut cur = Some(m.event_id);
    while let Some(id) = cur {
        let Some(at) = h.rooms.event_pos(&id)? else {
            break;
        };
        if at <= pos {
            let pdu = h.rooms.get_pdu(&id)?;
            return Ok(pdu.and_then(|p| p.content_str("membership")).as_deref() == Some("join"));
        }
        cur = h.rooms.extras(&id)?.replaces_state;
    }
    Ok(false)
}

fn timeline_limit(f: &RoomEventFilter) -> usize {
    f.limit
        .map(|l| u64::from(l) as usize)
        .unwrap_or(DEFAULT_TIMELINE_LIMIT)
        .clamp(1, 1000)
}

/// The latest events of `room` with `after < pos <= upto` that pass the filter, at most the
/// filter's limit, and whether more were left out. `vis`: what the user may see, for a window
/// that may reach back before they joined (a room new to the client); `None` when they were
/// joined throughout.
fn window(
    h: &Haven,
    room: &RoomId,
    after: u64,
    upto: u64,
    f: &RoomEventFilter,
    vis: Option<&Visible>,
) -> Result<(Vec<(u64, PduRef)>, bool)> {
    let after = vis.map_or(after, |v| after.max(v.from.saturating_sub(1)));
    let limit = timeline_limit(f);
    let mut out = Vec::new();
    let mut limited = false;
    let mut cursor = upto;
    // Page backwards so filtered-out events do not starve the window.
    'outer: loop {
        let batch = h
            .rooms
            .timeline_range(room, after, cursor, limit * 2 + 1, Dir::Backward)?;
        if batch.is_empty() {
            break;
        }
        for (pos, pdu) in batch {
            cursor = pos - 1;
            if !filter::event_matches(f, &pdu) || vis.is_some_and(|v| !v.contains(pos)) {
                continue;
            }
            if out.len() == limit {
                limited = true;
                break 'outer;
            }
            out.push((pos, pdu));
        }
        if cursor <= after {
            break;
        }
    }
    out.reverse();
    Ok((out, limited))
}

#[allow(clippy::too_many_arguments)]
fn joined_room(
    h: &Haven,
    session: &Session,
    room: &OwnedRoomId,
    since: Option<u64>,
    since_pos: u64,
    upto: u64,
    tf: &RoomEventFilter,
    p: &SyncParams,
) -> Result<Option<JoinedRoom>> {
    let meta = h.rooms.meta_or_404(room)?;
    let after = since.unwrap_or(0);
    let (typing_pos, typing_users) = h.rooms.typing.get(room);
    let receipts = h.rooms.receipts_since(room, since.unwrap_or(0))?;
    let room_ad: Vec<_> = account_data::since(&h.db, &session.user_id, since.unwrap_or(0))?
        .into_iter()
        .filter(|(r, _, _)| r == room.as_str())
        .collect();
    let changed =
        meta.last_pos > after || typing_pos > after || !receipts.is_empty() || !room_ad.is_empty();
    if since.is_some() && !changed {
        return Ok(None);
    }

    let (events, limited) = if meta.last_pos > after {
        // A room new to the client may have history from before the user joined.
        let vis = match since {
            None => h.rooms.visible_range(room, &session.user_id)?,
            Some(_) => None,
        };
        window(h, room, after, upto, tf, vis.as_ref())?
    } else {
        (Vec::new(), false)
    };
    let mut jr = JoinedRoom::new();

    let first_pos = events.first().map(|(p, _)| *p);
    let state = state_section(
        h,
        room,
        since,
        &events,
        limited,
        upto,
        meta.state_group,
        p,
        session,
    )?;
    let mut st = StateEvents::new();
    for pdu in &state {
        st.events.push(raw(&h
            .rooms
            .format_event(pdu, Some((&session.user_id, &session.device_id)))?)?);
    }
    jr.state = State::Before(st);

    let mut tl = Timeline::new();
    tl.limited = limited
        || (since.is_none()
            && first_pos.is_some_and(|f| f > 1)
            && events.len() >= timeline_limit(tf));
    tl.prev_batch = Some(make_token(first_pos.map(|f| f - 1).unwrap_or(upto)));
    for (_, pdu) in &events {
        tl.events.push(raw(&h
            .rooms
            .format_event(pdu, Some((&session.user_id, &session.device_id)))?)?);
    }
    jr.timeline = tl;

    let mut eph = Ephemeral::new();
    if since.is_none() || typing_pos > after {
        eph.events.push(raw(
            &json!({ "type": "m.typing", "content": { "user_ids": typing_users } }),
        )?);
    }
    if let Some(e) = receipt_event(receipts, &session.user_id) {
        eph.events.push(raw(&e)?);
    }
    jr.ephemeral = eph;

    let mut ad = RoomAccountData::new();
    for (_, kind, content) in room_ad {
        ad.events
            .push(raw(&json!({ "type": kind, "content": content }))?);
    }
    jr.account_data = ad;

    jr.unread_notifications = unread_counts(h, room, &session.user_id)?;
    if since.is_none()
        || state.iter().any(|e| e.kind.to_string() == "m.room.member")
        || events
            .iter()
            .any(|(_, e)| e.kind.to_string() == "m.room.member")
    {
        jr.summary = summary(h, room, &session.user_id)?;
    }
    let _ = since_pos;
    Ok(Some(jr))
}

/// The `m.receipt` event for receipts read from storage; others' private receipts left out.
fn receipt_event(
    receipts: Vec<(String, String, crate::rooms::receipts::ReceiptRecord)>,
    me: &ruma::UserId,
) -> Option<Value> {
    let mut content: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>> = BTreeMap::new();
    for (rtype, user, rec) in receipts {
        if rtype == "m.read.private" && user != me.as_str() {
            continue;
        }
        let mut r = json!({ "ts": rec.ts });
        if let Some(t) = rec.thread_id {
            r["thread_id"] = json!(t);
        }
        content
            .entry(rec.event_id.to_string())
            .or_default()
            .entry(rtype)
            .or_default()
            .insert(user, r);
    }
    (!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content }))
}

/// Whether the invite `event` came from someone the user ignores (such invites are not sent).
fn invited_by_ignored(
    h: &Haven,
    event: &ruma::EventId,
    ignored: &[ruma::OwnedUserId],
) -> Result<bool> {
    if ignored.is_empty() {
        return Ok(false);
    }
    Ok(h.rooms
        .get_pdu(event)?
        .is_some_and(|p| ignored.contains(&p.sender)))
}

/// Notifications (by the user's push rules) after their latest read receipt.
fn unread_counts(
    h: &Haven,
    room: &RoomId,
    user: &ruma::UserId,
) -> Result<UnreadNotificationsCount> {
    let read = h.rooms.read_pos(room, user)?;
    let (n, hl) = crate::push::counts(&h.db, user, room, read)?;
    let mut c = UnreadNotificationsCount::new();
    c.notification_count = Some(UInt::from(n as u32));
    c.highlight_count = Some(UInt::from(hl as u32));
    Ok(c)
}

fn summary(h: &Haven, room: &RoomId, user: &ruma::UserId) -> Result<RoomSummary> {
    let mut s = RoomSummary::new();
    let members = h.rooms.members(room)?;
    let joined = members
        .iter()
        .filter(|(_, m)| m.membership == "join")
        .count();
    let invited = members
        .iter()
        .filter(|(_, m)| m.membership == "invite")
        .count();
    s.joined_member_count = Some(UInt::from(joined as u32));
    s.invited_member_count = Some(UInt::from(invited as u32));
    let has_name = h
        .rooms
        .current_state(room, &StateEventType::RoomName, "")?
        .is_some()
        || h.rooms
            .current_state(room, &StateEventType::RoomCanonicalAlias, "")?
            .is_some();
    if !has_name {
        s.heroes = members
            .iter()
            .filter(|(u, m)| u != user && (m.membership == "join" || m.membership == "invite"))
            .take(5)
            .map(|(u, _)| u.clone())
            .collect();
    }
    Ok(s)
}

fn invited_room(h: &Haven, room: &RoomId, invite_event: &EventId) -> Result<InvitedRoom> {
    let mut events = Vec::new();
    if h.rooms.meta(room)?.is_none() {
        // An invite from another server to a room this server is not in: the state it sent.
        if let Some(pdu) = h.rooms.get_pdu(invite_event)? {
            if let Some(user) = pdu
                .state_key
                .as_deref()
                .and_then(|u| ruma::UserId::parse(u).ok())
            {
                let stored = h.rooms.remote_invite(&user, room)?.unwrap_or_default();
                for e in stored["invite_state"].as_array().into_iter().flatten() {
                    events.push(raw(e)?);
                }
            }
            events.push(raw(&stripped_state(&pdu))?);
        }
        let mut state = InviteState::new();
        state.events = events;
        return Ok(InvitedRoom::from(state));
    }
    for e in h.rooms.stripped_invite_state(room)? {
        events.push(raw(&e)?);
    }
    if let Some(pdu) = h.rooms.get_pdu(invite_event)? {
        // The inviter's member event lets clients show who invited them.
        let inviter = pdu.sender.clone();
        if let Some(m) =
            h.rooms
                .current_state(room, &StateEventType::RoomMember, inviter.as_str())?
        {
            events.push(raw(&stripped_state(&m))?);
        }
        events.push(raw(&stripped_state(&pdu))?);
    }
    let mut state = InviteState::new();
    state.events = events;
    Ok(InvitedRoom::from(state))
}

/// A room left and forgotten since the last sync: only the leave event, which the user
/// sent or was told of (a forgotten room's history is no longer theirs to read).
fn forgotten_leave(
    h: &Haven,
    leave: &ruma::EventId,
    leave_pos: u64,
    session: &Session,
) -> Result<LeftRoom> {
    let mut lr = LeftRoom::new();
    lr.timeline.prev_batch = Some(make_token(leave_pos.saturating_sub(1)));
    if let Some(pdu) = h.rooms.get_pdu(leave)? {
        lr.timeline.events.push(raw(&h
            .rooms
            .format_event(&pdu, Some((&session.user_id, &session.device_id)))?)?);
    }
    Ok(lr)
}

fn left_room(
    h: &Haven,
    room: &OwnedRoomId,
    since: Option<u64>,
    leave_pos: u64,
    p: &SyncParams,
    session: &Session,
) -> Result<Option<LeftRoom>> {
    let vis = match since {
        None => h.rooms.visible_range(room, &session.user_id)?,
        Some(_) => None,
    };
    let (events, limited) = window(
        h,
        room,
        since.unwrap_or(0),
        leave_pos,
        &p.filter.room.timeline,
        vis.as_ref(),
    )?;
    let mut lr = LeftRoom::new();
    let state = state_section(h, room, since, &events, limited, leave_pos, 0, p, session)?;
    let mut st = StateEvents::new();
    for pdu in &state {
        st.events.push(raw(&h
            .rooms
            .format_event(pdu, Some((&session.user_id, &session.device_id)))?)?);
    }
    lr.state = State::Before(st);
    let mut tl = Timeline::new();
    tl.limited = limited;
    tl.prev_batch = Some(make_token(
        events.first().map(|(p, _)| p - 1).unwrap_or(leave_pos),
    ));
    for (_, pdu) in &events {
        tl.events.push(raw(&h
            .rooms
            .format_event(pdu, Some((&session.user_id, &session.device_id)))?)?);
    }
    lr.timeline = tl;
    Ok(Some(lr))
}

/// The `state` section: everything at the start of the timeline for a fresh view, otherwise
/// the changes between `since` and the timeline's start when events were skipped. Members are
/// lazy-loaded when the filter asks for it.
#[allow(clippy::too_many_arguments)]
fn state_section(
    h: &Haven,
    room: &RoomId,
    since: Option<u64>,
    events: &[(u64, PduRef)],
    limited: bool,
    upto: u64,
    current_group: u64,
    p: &SyncParams,
    session: &Session,
) -> Result<Vec<PduRef>> {
    let lazy = !p.filter.room.state.lazy_load_options.is_disabled();
    let senders: HashSet<&ruma::UserId> = events.iter().map(|(_, e)| &*e.sender).collect();
    let first_pos = events.first().map(|(p, _)| *p);
    let mut state = Vec::new();
    match since {
        None => {
            let group = match events.first() {
                Some((_, e)) => {
                    h.db.t
                        .event_state_before
                        .get(&e.event_id.to_string())?
                        .unwrap_or(current_group)
                }
                None => current_group,
            };
            for ((kind, sk), id) in load_group(&h.db, group)? {
                if lazy
                    && kind == "m.room.member"
                    && sk != session.user_id.as_str()
                    && !senders.iter().any(|s| s.as_str() == sk)
                {
                    continue;
                }
                if let Some(pdu) = h.rooms.get_pdu(&id)? {
                    if filter::event_matches(&p.filter.room.state, &pdu) {
                        state.push(pdu);
                    }
                }
            }
        }
        Some(s) if limited => {
            let gap_end = first_pos.map(|f| f - 1).unwrap_or(upto);
            let mut latest: BTreeMap<(String, String), PduRef> = BTreeMap::new();
            for (_, pdu) in h
                .rooms
                .timeline_range(room, s, gap_end, usize::MAX, Dir::Forward)?
            {
                if let Some(sk) = &pdu.state_key {
                    latest.insert((pdu.kind.to_string(), sk.clone()), pdu);
                }
            }
            state.extend(
                latest
                    .into_values()
                    .filter(|e| filter::event_matches(&p.filter.room.state, e)),
            );
        }
        Some(_) => {}
    }
    Ok(state)
}
