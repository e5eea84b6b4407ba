//! Push: each user's push rules (kept as their `m.push_rules` account data, so clients see
//! changes in /sync), their evaluation for every new event (notification and highlight counts,
//! `/notifications`), and delivery to HTTP pushers ([`gateway`]).

pub mod gateway;

use ruma::{
    events::room::power_levels::{RoomPowerLevels, RoomPowerLevelsSource},
    push::{Action, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    serde::Raw,
    OwnedUserId, RoomId, UInt, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    error::{Error, Result},
    events::PduRef,
    rooms::{rules_for, CurrentState, Rooms},
    storage::{prefix, Json, Storage},
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

/// The user's push rules: their own, or the server defaults.
pub fn ruleset(db: &Storage, user: &UserId) -> Result<Ruleset> {
    if let Some(v) = account_data::get(db, user, None, PUSH_RULES)? {
        if let Ok(r) = serde_json::from_value::<Ruleset>(v["global"].clone()) {
            return Ok(r);
        }
    }
    Ok(Ruleset::server_default(user))
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
    let members = rooms.joined_members(room)?;
    let mut targets: Vec<OwnedUserId> = members
        .iter()
        .filter(|u| u.server_name() == rooms.server_name() && **u != pdu.sender)
        .cloned()
        .collect();
    if pdu.kind.to_string() == "m.room.member" && pdu.content_value()["membership"] == "invite" {
        if let Some(t) = pdu.state_key.as_deref().and_then(|s| UserId::parse(s).ok()) {
            if t.server_name() == rooms.server_name() && !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Raw<Value> = Raw::from_json(
        serde_json::value::to_raw_value(&rooms.format_plain(pdu)?).map_err(Error::internal)?,
    );
    let power = power_ctx(rooms, room)?;
    let mut out = Vec::new();
    for user in targets {
        let rules = ruleset(&rooms.db, &user)?;
        let name = rooms
            .member_displayname(room, &user)?
            .unwrap_or_else(|| user.localpart().to_owned());
        let mut ctx = PushConditionRoomCtx::new(
            room.clone(),
            UInt::try_from(members.len()).unwrap_or_default(),
            user.clone(),
            name,
        );
        ctx.power_levels = power.clone();
        let actions = rules.get_actions(&raw, &ctx).await;
        if !actions.iter().any(|a| matches!(a, Action::Notify)) {
            continue;
        }
        let rec = NotifRecord {
            room_id: room.to_string(),
            event_id: pdu.event_id.to_string(),
            highlight: highlights(actions),
            actions: serde_json::to_value(actions).map_err(Error::internal)?,
            ts: u64::from(pdu.origin_server_ts.get()),
        };
        let t = &rooms.db.t;
        t.notifications
            .put(&(user.to_string(), pos), &Json(rec.clone()))?;
        t.room_notifs.put(
            &(user.to_string(), room.to_string(), pos),
            &u64::from(rec.highlight),
        )?;
        out.push((user, rec));
    }
    Ok(out)
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

/// (notifications, highlights) for `user` in `room` after stream position `after`.
pub fn counts(db: &Storage, user: &UserId, room: &RoomId, after: u64) -> Result<(u64, u64)> {
    use crate::storage::keys::Key;
    let from = (user.to_string(), room.to_string(), after.saturating_add(1)).encode();
    let to = [prefix(user.as_str()), prefix(room.as_str()), vec![0xff; 9]].concat();
    let (mut n, mut hl) = (0, 0);
    for item in db.t.room_notifs.range(&from, &to, false) {
        let (_, h) = item?;
        n += 1;
        hl += h;
    }
    Ok((n, hl))
}

/// The user's notifications, newest first, before stream position `before`.
pub fn list(
    db: &Storage,
    user: &UserId,
    before: Option<u64>,
    limit: usize,
    only_highlight: bool,
) -> Result<Vec<(u64, NotifRecord)>> {
    use crate::storage::keys::Key;
    let from = (user.to_string(), 0u64).encode();
    let to = (user.to_string(), before.unwrap_or(u64::MAX)).encode();
    let mut out = Vec::new();
    for item in db.t.notifications.range(&from, &to, true) {
        let ((_, pos), rec) = item?;
        if only_highlight && !rec.0.highlight {
            continue;
        }
        out.push((pos, rec.0));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
