//! Push rules, pushers and `/notifications`: thin handlers over [`crate::push`].

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    api::client::push::{
        delete_pushrule, get_notifications, get_pushers, get_pushrule, get_pushrule_actions,
        get_pushrule_enabled, get_pushrules_all, get_pushrules_global_scope, set_pusher,
        set_pushrule, set_pushrule_actions, set_pushrule_enabled,
    },
    push::Ruleset,
    RoomId, UserId,
};

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    events::client::raw,
    push, Haven,
};

fn rule_not_found() -> Error {
    Error::not_found("Push rule not found")
}

/// Changes the user's rules with `f` and stores them.
async fn change(
    h: &Haven,
    user: &UserId,
    f: impl FnOnce(&mut Ruleset) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rules = (*push::ruleset(&h.db, user)?).clone();
    f(&mut rules)?;
    push::save_ruleset(&h.db, &h.stream, user, &rules).await
}

pub async fn all(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_pushrules_all::v3::Request>,
) -> ApiResult<get_pushrules_all::v3::Response> {
    let rules = push::ruleset(&h.db, r.user()?)?;
    Ok(RumaResponse(get_pushrules_all::v3::Response::new(
        (*rules).clone(),
    )))
}

pub async fn global(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_pushrules_global_scope::v3::Request>,
) -> ApiResult<get_pushrules_global_scope::v3::Response> {
    let rules = push::ruleset(&h.db, r.user()?)?;
    Ok(RumaResponse(get_pushrules_global_scope::v3::Response::new(
        (*rules).clone(),
    )))
}

pub async fn get(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_pushrule::v3::Request>,
) -> ApiResult<get_pushrule::v3::Response> {
    let rules = push::ruleset(&h.db, r.user()?)?;
    let rule = rules
        .get(r.body.kind.clone(), &r.body.rule_id)
        .ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule::v3::Response::new(
        rule.to_owned().into(),
    )))
}

pub async fn set(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_pushrule::v3::Request>,
) -> ApiResult<set_pushrule::v3::Response> {
    let b = &r.body;
    change(&h, r.user()?, |rules| {
        rules
            .insert(b.rule.clone(), b.after.as_deref(), b.before.as_deref())
            .map_err(|e| match e {
                ruma::push::InsertPushRuleError::UnknownRuleId => Error::not_found(e.to_string()),
                _ => Error::invalid_param(e.to_string()),
            })
    })
    .await?;
    Ok(RumaResponse(set_pushrule::v3::Response::new()))
}

pub async fn delete(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_pushrule::v3::Request>,
) -> ApiResult<delete_pushrule::v3::Response> {
    let b = &r.body;
    change(&h, r.user()?, |rules| {
        rules
            .remove(b.kind.clone(), &b.rule_id)
            .map_err(|e| match e {
                ruma::push::RemovePushRuleError::NotFound => rule_not_found(),
                _ => Error::forbidden(e.to_string()),
            })
    })
    .await?;
    Ok(RumaResponse(delete_pushrule::v3::Response::new()))
}

pub async fn enabled(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_pushrule_enabled::v3::Request>,
) -> ApiResult<get_pushrule_enabled::v3::Response> {
    let rules = push::ruleset(&h.db, r.user()?)?;
    let rule = rules
        .get(r.body.kind.clone(), &r.body.rule_id)
        .ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule_enabled::v3::Response::new(
        rule.enabled(),
    )))
}

pub async fn set_enabled(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_pushrule_enabled::v3::Request>,
) -> ApiResult<set_pushrule_enabled::v3::Response> {
    let b = &r.body;
    change(&h, r.user()?, |rules| {
        rules
            .set_enabled(b.kind.clone(), &b.rule_id, b.enabled)
            .map_err(|_| rule_not_found())
    })
    .await?;
    Ok(RumaResponse(set_pushrule_enabled::v3::Response::new()))
}

pub async fn actions(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_pushrule_actions::v3::Request>,
) -> ApiResult<get_pushrule_actions::v3::Response> {
    let rules = push::ruleset(&h.db, r.user()?)?;
    let rule = rules
        .get(r.body.kind.clone(), &r.body.rule_id)
        .ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule_actions::v3::Response::new(
        rule.actions().to_vec(),
    )))
}

pub async fn set_actions(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_pushrule_actions::v3::Request>,
) -> ApiResult<set_pushrule_actions::v3::Response> {
    let b = &r.body;
    change(&h, r.user()?, |rules| {
        rules
            .set_actions(b.kind.clone(), &b.rule_id, b.actions.clone())
            .map_err(|_| rule_not_found())
    })
    .await?;
    Ok(RumaResponse(set_pushrule_actions::v3::Response::new()))
}

pub async fn pushers(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_pushers::v3::Request>,
) -> ApiResult<get_pushers::v3::Response> {
    let list = h
        .rooms
        .push_queue
        .pushers(&h.db, r.user()?)?
        .iter()
        .filter_map(|p| serde_json::from_value(p.clone()).ok())
        .collect();
    Ok(RumaResponse(get_pushers::v3::Response::new(list)))
}

pub async fn set_pusher(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_pusher::v3::Request>,
) -> ApiResult<set_pusher::v3::Response> {
    let user = r.user()?;
    match &r.body.action {
        set_pusher::v3::PusherAction::Post(post) => {
            let mut p = serde_json::to_value(&post.pusher).map_err(Error::internal)?;
            if p["kind"] == "http" {
                let url = p["data"]["url"].as_str().unwrap_or_default();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(Error::invalid_param("data.url must be an http(s) URL"));
                }
            }
            p["pushkey_ts"] = serde_json::json!(crate::util::now_ms() / 1000);
            h.rooms.push_queue.set(&h.db, user, p, post.append)?;
        }
        set_pusher::v3::PusherAction::Delete(ids) => {
            h.rooms
                .push_queue
                .delete(&h.db, user, &ids.app_id, &ids.pushkey)?;
        }
        _ => return Err(Error::invalid_param("unknown pusher action")),
    }
    h.db.durable().await?;
    Ok(RumaResponse(set_pusher::v3::Response::new()))
}

pub async fn notifications(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_notifications::v3::Request>,
) -> ApiResult<get_notifications::v3::Response> {
    let s = r.session()?;
    let before = match &r.body.from {
        Some(f) => Some(
            f.parse::<u64>()
                .map_err(|_| Error::invalid_param("Unknown pagination token"))?,
        ),
        None => None,
    };
    let limit = r
        .body
        .limit
        .map_or(20, |l| u64::from(l).clamp(1, 100) as usize);
    let only_highlight = r.body.only.as_deref() == Some("highlight");
    let rooms = h.rooms.joined_rooms(&s.user_id)?;
    let list = push::list(&h.db, &s.user_id, &rooms, before, limit + 1, only_highlight)?;
    let more = list.len() > limit;
    let mut out = Vec::new();
    let mut last = None;
    for (pos, n) in list.into_iter().take(limit) {
        let (Ok(room), Ok(id)) = (RoomId::parse(&n.room_id), ruma::EventId::parse(&n.event_id))
        else {
            continue;
        };
        let Some(pdu) = h.rooms.get_pdu(&id)? else {
            continue;
        };
        let read = h.rooms.read_pos(&room, &s.user_id)? >= pos;
        let actions = serde_json::from_value(n.actions.clone()).unwrap_or_default();
        let event: ruma::serde::Raw<ruma::events::AnySyncTimelineEvent> = raw(&h
            .rooms
            .format_event(&pdu, Some((&s.user_id, &s.device_id)))?)?;
        let ts = ruma::MilliSecondsSinceUnixEpoch(ruma::UInt::new(n.ts).unwrap_or_default());
        out.push(get_notifications::v3::Notification::new(
            actions, event, read, room, ts,
        ));
        last = Some(pos);
    }
    let mut resp = get_notifications::v3::Response::new(out);
    resp.next_token = if more {
        last.map(|p| p.to_string())
    } else {
        None
    };
    Ok(RumaResponse(resp))
}
