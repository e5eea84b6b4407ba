//! `/presence/{userId}/status`.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    api::client::presence::{get_presence, set_presence},
    presence::PresenceState,
    UInt,
};

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    users::presence,
    Haven,
};

pub async fn set(
    State(h): State<Arc<Haven>>,
    r: Ruma<set_presence::v3::Request>,
) -> ApiResult<set_presence::v3::Response> {
    let user = r.user()?;
    if *user != r.body.user_id {
        return Err(Error::forbidden("You may only set your own presence"));
    }
    let state = r.body.presence.to_string();
    if !matches!(state.as_str(), "online" | "unavailable" | "offline") {
        return Err(Error::invalid_param(
            "presence must be online, unavailable or offline",
        ));
    }
    presence::set(
        &h.db,
        &h.stream,
        user,
        &state,
        Some(r.body.status_msg.clone()),
    )
    .await?;
    Ok(RumaResponse(set_presence::v3::Response::new()))
}

pub async fn get(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_presence::v3::Request>,
) -> ApiResult<get_presence::v3::Response> {
    let viewer = r.user()?;
    let user = &r.body.user_id;
    if !presence::may_see(&h.rooms, viewer, user)? {
        return Err(Error::forbidden("You do not share a room with this user"));
    }
    let p = presence::get(&h.db, user)?;
    let state = p.as_ref().map_or(PresenceState::Offline, |p| {
        PresenceState::from(p.presence.as_str())
    });
    let mut resp = get_presence::v3::Response::new(state);
    if let Some(p) = p {
        let c = presence::content(&p);
        resp.status_msg = p.status_msg.clone();
        resp.currently_active = c["currently_active"].as_bool();
        resp.last_active_ago = c["last_active_ago"]
            .as_u64()
            .and_then(UInt::new)
            .map(|ms| std::time::Duration::from_millis(ms.into()));
    }
    Ok(RumaResponse(resp))
}
