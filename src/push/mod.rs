//! Push: each user's push rules (kept as their `m.push_rules` account data, so clients see
//! changes in /sync), their evaluation for every new event (notification and highlight counts,
//! `/notifications`), and delivery to HTTP pushers ([`gateway`]).

pub mod defaults;
pub mod gateway;

use std::sync::{Arc, LazyLock};

use ruma::{
    events::room::power_levels::{RoomPowerLevels, RoomPowerLevelsSource},
    push::{Action, FlattenedJson, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    serde::Raw,
    OwnedUserId, RoomId, UInt, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    cache::Cache,
    error::{Error, Result},
    events::PduRef,
    rooms::{rules_for, CurrentState, Rooms},
    storage::Storage,
    stream::Stream,
    users::account_data,
};

pub const PUSH_RULES: &str = "m.push_rules";

/// A notification kept for `/notifications` and the unread counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifRecord {
    pub room_id: String,
    pub event_id: String,
    pub highlight: bool,
    pub actions: Value,
    pub ts: u64,
}

/// Who an event notified: one record per event (one write, however many are notified).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventNotifs {
    pub event_id: String,
    pub ts: u64,
    /// (user, highlight, actions)
    pub users: Vec<(String, bool, Value)>,
}

/// Users whose parsed push rules are kept in memory (a default rule set is a few KB).
const RULESETS_CACHED: usize = 1_000;

/// Parsed rule sets by user: evaluating every event for every member must not parse JSON
/// each time. Emptied for a user whenever their `m.push_rules` is written.
static RULES: LazyLock<Cache<OwnedUserId, UserRules>> =
    LazyLock::new(|| Cache::new("push_rules", RULESETS_CACHED));

/// Forgets the cached rules of `user` (their account data changed).
pub fn forget(user: &UserId) {
    RULES.remove(user);
}

/// A user's parsed push rules.
#[derive(Clone)]
struct UserRules {
    rules: Arc<Ruleset>,
    /// The server defaults: the user never stored rules of their own.
    server_default: bool,
}

/// The user's push rules: their own, or the server defaults.
pub fn ruleset(db: &Storage, user: &UserId) -> Result<Arc<Ruleset>> {
    Ok(user_rules(db, user)?.rules)
}

fn user_rules(db: &Storage, user: &UserId) -> Result<UserRules> {
    if let Some(r) = RULES.get(user) {
        return Ok(r);
    }
    let mut stored = None;
    if let Some(v) = account_data::get(db, user, None, PUSH_RULES)? {
        stored = serde_json::from_value::<Ruleset>(v["global"].clone()).ok();
    }
    let entry = UserRules {
        server_default: stored.is_none(),
        rules: Arc::new(match stored {
            Some(stored) => defaults::upgrade(stored, user),
            None => defaults::server_default(user),
        }),
    };
    RULES.insert(user.to_owned(), entry.clone());
    Ok(entry)
}

/// What of an event can single out one member under the server-default rules: its
/// `m.mentions.user_ids`, its body (matched against the member's user name and display name)
/// and the user an invite is for.
struct Personal {
    mentioned: Vec<String>,
    body: Option<String>,
    state_key: Option<String>,
}

impl Personal {
    fn of(content: &Value, state_key: Option<&str>) -> Self {
        Self {
            mentioned: content["m.mentions"]["user_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect(),
            body: content["body"].as_str().map(str::to_lowercase),
            state_key: state_key.map(str::to_owned),
        }
    }

    /// Whether a server-default rule could treat `user` (named `name`) apart from other
    /// members: mentioned, named in the body (any substring, case-insensitively: wider than
    /// the rules' word match), or the event is about them. Members who are not, all keeping the
    /// server defaults, get the same actions, so those are evaluated once per event.
    fn singles_out(&self, user: &UserId, name: &str) -> bool {
        let named = |n: &str| {
            self.body
                .as_deref()
                .is_some_and(|b| !n.is_empty() && b.contains(&n.to_lowercase()))
        };
        self.mentioned.iter().any(|m| m == user.as_str())
            || self.state_key.as_deref() == Some(user.as_str())
            || named(user.localpart())
            || named(name)
    }
}

/// Stores the user's push rules (as account data, which sync delivers).
pub async fn save_ruleset(db: &Storage, stream: &Stream, user: &UserId, r: &Ruleset) -> Result<()> {
    let v = json!({ "global": serde_json::to_value(r).map_err(Error::internal)? });
    account_data::set(db, stream, user, None, PUSH_RULES, v).await
}

/// The actions' highlight tweak.
fn highlights(actions: &[Action]) -> bool {
    actions.iter().any(Action::is_highlight)
}

/// Evaluates `pdu` (at stream position `pos`) for the room's local members and the target of
/// an invite, recording each notification. Returns who was notified, for pushers.
pub async fn evaluate(
    rooms: &Rooms,
    pdu: &PduRef,
    pos: u64,
) -> Result<Vec<(OwnedUserId, NotifRecord)>> {
    let room = &pdu.room_id;
    let roster = rooms.roster(room)?;
    let mut targets: Vec<&UserId> = roster
        .joined
        .iter()
        .filter(|u| u.server_name() == rooms.server_name() && **u != pdu.sender)
        .map(|u| &**u)
        .collect();
    let invited = (pdu.kind.to_string() == "m.room.member"
        && pdu.content_value()["membership"] == "invite")
        .then(|| pdu.state_key.as_deref().and_then(|s| UserId::parse(s).ok()))
        .flatten();
    if let Some(t) = &invited {
        if t.server_name() == rooms.server_name() && !targets.contains(&&**t) {
            targets.push(t);
        }
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Raw<Value> = Raw::from_json(
        serde_json::value::to_raw_value(&rooms.format_plain(pdu)?).map_err(Error::internal)?,
    );
    // Flattened once for all members (ruma's `Ruleset::get_actions` flattens the event again
    // for each one: most of the cost of a send in a big room).
    let event = FlattenedJson::from_raw(&raw);
    let power = power_ctx(rooms, room)?;
    // Only the legacy `contains_display_name` condition reads a member's display name, and
    // it never matches an event with `m.mentions` (which current clients always send) or
    // without a body: the names are not read for those.
    let content = pdu.content_value();
    let may_match_display_name = content.get("m.mentions").is_none() && content["body"].is_string();
    let names = match may_match_display_name {
        true => Some(roster.local_display_names(rooms, room)?),
        false => None,
    };
    let member_count = UInt::try_from(roster.joined.len()).unwrap_or_default();
    let personal = Personal::of(&content, pdu.state_key.as_deref());
    // The outcome for members with the server-default rules whom the event does not single out.
    let mut common: Option<Option<(bool, Value)>> = None;
    let mut out = Vec::new();
    for user in targets {
        let entry = user_rules(&rooms.db, user)?;
        let name = names
            .and_then(|n| n.get(user))
            .cloned()
            .unwrap_or_else(|| user.localpart().to_owned());
        let shared = entry.server_default && !personal.singles_out(user, &name);
        let outcome = match (&common, shared) {
            (Some(known), true) => known.clone(),
            _ => {
                let mut ctx =
                    PushConditionRoomCtx::new(room.clone(), member_count, user.to_owned(), name);
                ctx.power_levels = power.clone();
                let actions = first_match(&entry.rules, &event, &ctx).await;
                let outcome = match actions.iter().any(|a| matches!(a, Action::Notify)) {
                    true => Some((
                        highlights(actions),
                        serde_json::to_value(actions).map_err(Error::internal)?,
                    )),
                    false => None,
                };
                if shared {
                    common = Some(outcome.clone());
                }
                outcome
            }
        };
        let Some((highlight, actions)) = outcome else {
            continue;
        };
        let rec = NotifRecord {
            room_id: room.to_string(),
            event_id: pdu.event_id.to_string(),
            highlight,
            actions,
            ts: u64::from(pdu.origin_server_ts.get()),
        };
        out.push((user.to_owned(), rec));
    }
    if !out.is_empty() {
        let record = EventNotifs {
            event_id: pdu.event_id.to_string(),
            ts: u64::from(pdu.origin_server_ts.get()),
            users: out
                .iter()
                .map(|(u, r)| (u.to_string(), r.highlight, r.actions.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&record).map_err(Error::internal)?;
        rooms
            .db
            .t
            .push_actions
            .put(&(room.to_string(), pos), &bytes)?;
    }
    Ok(out)
}

/// The actions of the first of `rules` that applies to `event` (none for the user's own
/// events), as `Ruleset::get_actions` but on an event flattened once for every member.
async fn first_match<'r>(
    rules: &'r Ruleset,
    event: &FlattenedJson,
    ctx: &PushConditionRoomCtx,
) -> &'r [Action] {
    if event.get_str("sender") == Some(ctx.user_id.as_str()) {
        return &[];
    }
    for rule in rules {
        if rule.applies(event, ctx).await {
            return rule.actions();
        }
    }
    &[]
}

fn power_ctx(rooms: &Rooms, room: &RoomId) -> Result<Option<PushConditionPowerLevelsCtx>> {
    let Some(meta) = rooms.meta(room)? else {
        return Ok(None);
    };
    let rules = rules_for(&meta.version)?;
    let view = CurrentState {
        rooms,
        room_id: room,
    };
    let ours = crate::rooms::state::power_levels(&view, &rules)?;
    let source =
        match rooms.current_state(room, &ruma::events::StateEventType::RoomPowerLevels, "")? {
            Some(p) => match serde_json::from_str(p.content.get()) {
                Ok(c) => RoomPowerLevelsSource::Original(c),
                Err(_) => RoomPowerLevelsSource::None,
            },
            None => RoomPowerLevelsSource::None,
        };
    let pl = RoomPowerLevels::new(source, &rules.authorization, ours.creators.clone());
    Ok(Some(pl.into()))
}

/// Counting stops here: clients show "99+" beyond it, and a sync must stay cheap however
/// much is unread.
pub const MAX_COUNT: usize = 100;

/// (notifications, highlights) for `user` in `room` after stream position `after`, counting
/// at most [`MAX_COUNT`] notifying events. Reads only who was notified, without copying.
pub fn counts(db: &Storage, user: &UserId, room: &RoomId, after: u64) -> Result<(u64, u64)> {
    #[derive(Deserialize)]
    struct Who<'a> {
        #[serde(borrow)]
        users: Vec<(&'a str, bool, serde::de::IgnoredAny)>,
    }
    let (mut n, mut hl) = (0, 0);
    for (_, bytes) in room_range(db, room, after, MAX_COUNT)? {
        let who: Who<'_> = serde_json::from_slice(&bytes).map_err(Error::internal)?;
        if let Some((_, h, _)) = who.users.iter().find(|(u, _, _)| *u == user.as_str()) {
            n += 1;
            hl += u64::from(*h);
        }
    }
    Ok((n, hl))
}

/// The notification records of `room` after stream position `after`, oldest first.
fn room_range(
    db: &Storage,
    room: &RoomId,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>> {
    use crate::storage::keys::Key;
    let from = (room.to_string(), after.saturating_add(1)).encode();
    let to = (room.to_string(), u64::MAX).encode();
    let mut out = Vec::new();
    for item in db.t.push_actions.range(&from, &to, false).take(limit) {
        let ((_, pos), bytes) = item?;
        out.push((pos, bytes));
    }
    Ok(out)
}

/// The user's notifications in `rooms`, newest first, before stream position `before`.
pub fn list(
    db: &Storage,
    user: &UserId,
    rooms: &[ruma::OwnedRoomId],
    before: Option<u64>,
    limit: usize,
    only_highlight: bool,
) -> Result<Vec<(u64, NotifRecord)>> {
    let mut all = Vec::new();
    for room in rooms {
        for (pos, bytes) in room_range(db, room, 0, usize::MAX)? {
            if before.is_some_and(|b| pos >= b) {
                continue;
            }
            let rec: EventNotifs = serde_json::from_slice(&bytes).map_err(Error::internal)?;
            if let Some((_, h, actions)) = rec.users.iter().find(|(u, _, _)| u == user.as_str()) {
                if only_highlight && !h {
                    continue;
                }
                all.push((
                    pos,
                    NotifRecord {
                        room_id: room.to_string(),
                        event_id: rec.event_id.clone(),
                        highlight: *h,
                        actions: actions.clone(),
                        ts: rec.ts,
                    },
                ));
            }
        }
    }
    all.sort_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    all.truncate(limit);
    Ok(all)
}
