//! Room creation and membership endpoints.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    api::client::{
        membership::{
            ban_user, forget_room, invite_user, join_room_by_id, join_room_by_id_or_alias,
            joined_rooms, kick_user, leave_room, unban_user,
        },
        room::{create_room, Visibility},
    },
    room::RoomType,
    OwnedRoomId, OwnedUserId, RoomAliasId, RoomOrAliasId,
};
use serde_json::{json, Map, Value};

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::{ErrCode, Error},
    events::EventTemplate,
    ratelimit::Action as Limited,
    rooms::{
        create::{CreateRoom, Preset},
        membership::Action,
    },
    Haven,
};

fn raw_object<T>(raw: &ruma::serde::Raw<T>, what: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str::<Value>(raw.json().get()) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::bad_json(format!("{what} must be a JSON object"))),
    }
}

pub async fn create_room(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_room::v3::Request>,
) -> ApiResult<create_room::v3::Response> {
    let user = r.user()?.clone();
    h.users.require_not_suspended(&user)?;
    h.limit(Limited::RoomCreation, r.session()?)?;
    let b = &r.body;
    let version = b
        .room_version
        .clone()
        .unwrap_or_else(|| h.config.rooms.default_version.clone());
    let preset = match b.preset.as_ref().map(|p| p.as_str()) {
        Some("private_chat") => Preset::PrivateChat,
        Some("trusted_private_chat") => Preset::TrustedPrivateChat,
        Some("public_chat") => Preset::PublicChat,
        Some(other) => return Err(Error::bad_json(format!("unknown preset {other}"))),
        None if b.visibility == Visibility::Public => Preset::PublicChat,
        None => Preset::PrivateChat,
    };
    let creation_content = match &b.creation_content {
        Some(c) => {
            let mut m = raw_object(c, "creation_content")?;
            m.remove("room_version");
            if let Some(t) = m.get("type") {
                if !t.is_string() {
                    return Err(Error::bad_json("creation_content.type must be a string"));
                }
                let _ = RoomType::from(t.as_str().unwrap_or_default());
            }
            m
        }
        None => Map::new(),
    };
    let power_level_override = b
        .power_level_content_override
        .as_ref()
        .map(|p| raw_object(p, "power_level_content_override"))
        .transpose()?;
    let mut initial_state = Vec::new();
    for ev in &b.initial_state {
        let v: Value =
            serde_json::from_str(ev.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| Error::bad_json("initial_state event without type"))?;
        let sk = v
            .get("state_key")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let content = v.get("content").cloned().unwrap_or_else(|| json!({}));
        initial_state.push(EventTemplate::state(kind, sk, content));
    }
    let alias = match &b.room_alias_name {
        Some(name) => {
            if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
                return Err(Error::bad_request(
                    ErrCode::InvalidParam,
                    "Invalid room_alias_name",
                ));
            }
            Some(
                RoomAliasId::parse(format!("#{name}:{}", h.config.server_name))
                    .map_err(|_| Error::invalid_param("Invalid room_alias_name"))?,
            )
        }
        None => None,
    };
    if let Some(a) = &alias {
        crate::appservice::check_alias_allowed(&h, a, r.session()?)?;
    }
    for u in &b.invite {
        if u.server_name() == h.config.server_name && !crate::appservice::user_exists(&h, u).await?
        {
            return Err(Error::not_found(format!("Unknown user {u}")));
        }
    }
    let (local_invites, remote_invites): (Vec<_>, Vec<_>) = b
        .invite
        .iter()
        .cloned()
        .partition(|u| u.server_name() == h.config.server_name);
    let req = CreateRoom {
        version,
        preset,
        creation_content,
        power_level_override,
        initial_state,
        name: b.name.clone(),
        topic: b.topic.clone(),
        alias,
        invite_profiles: local_invites
            .iter()
            .map(|u| Ok((u.clone(), h.users.member_profile(u)?)))
            .collect::<Result<_, Error>>()?,
        invite: local_invites,
        is_direct: b.is_direct,
        creator_profile: h.users.member_profile(&user)?,
    };
    let room_id = h.rooms.create_room(&user, req).await?;
    for u in &remote_invites {
        if let Err(e) =
            crate::federation::membership::invite_remote(&h, &room_id, &user, u, None).await
        {
            tracing::info!(room = %room_id, user = %u, error = %e, "remote invite failed");
        }
    }
    if b.visibility == Visibility::Public {
        h.rooms.set_published(&room_id, true)?;
        h.db.durable().await?;
    }
    Ok(RumaResponse(create_room::v3::Response::new(room_id)))
}

async fn join(
    h: &Haven,
    user: &OwnedUserId,
    room_id: &ruma::RoomId,
    reason: Option<String>,
    via: &[ruma::OwnedServerName],
) -> Result<(), Error> {
    h.users.require_not_suspended(user)?;
    crate::admin::rooms::require_not_blocked(h, room_id)?;
    let profile = h.users.member_profile(user)?;
    if h.rooms.meta(room_id)?.is_none() {
        // A room this server is not in: join through a server that is.
        let via = crate::federation::membership::join_candidates(h, room_id, user, via)?;
        return crate::federation::membership::join_remote(h, room_id, user, &via, profile, reason)
            .await;
    }
    h.rooms.join(room_id, user, profile, reason).await?;
    let _ =
        h.db.t
            .forgotten
            .remove(&(user.to_string(), room_id.to_string()));
    Ok(())
}

pub async fn join_by_id(
    State(h): State<Arc<Haven>>,
    r: Ruma<join_room_by_id::v3::Request>,
) -> ApiResult<join_room_by_id::v3::Response> {
    h.limit(Limited::Join, r.session()?)?;
    join(&h, r.user()?, &r.body.room_id, r.body.reason.clone(), &[]).await?;
    Ok(RumaResponse(join_room_by_id::v3::Response::new(
        r.body.room_id.clone(),
    )))
}

pub async fn resolve_room(h: &Haven, target: &RoomOrAliasId) -> Result<OwnedRoomId, Error> {
    match <&ruma::RoomId>::try_from(target) {
        Ok(id) => Ok(id.to_owned()),
        Err(alias) => crate::appservice::resolve_alias(h, alias)
            .await?
            .ok_or_else(|| Error::not_found("Room alias not found")),
    }
}

/// The servers a client named for reaching a room, and the alias's server (it knows the room).
fn servers_named(
    target: &ruma::RoomOrAliasId,
    via: &[ruma::OwnedServerName],
) -> Vec<ruma::OwnedServerName> {
    let mut out = via.to_vec();
    if let Ok(alias) = <&ruma::RoomAliasId>::try_from(target) {
        out.push(alias.server_name().to_owned());
    }
    out
}

pub async fn join_by_id_or_alias(
    State(h): State<Arc<Haven>>,
    r: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> ApiResult<join_room_by_id_or_alias::v3::Response> {
    h.limit(Limited::Join, r.session()?)?;
    let room_id = resolve_room(&h, &r.body.room_id_or_alias).await?;
    let via = servers_named(&r.body.room_id_or_alias, &r.body.via);
    join(&h, r.user()?, &room_id, r.body.reason.clone(), &via).await?;
    Ok(RumaResponse(join_room_by_id_or_alias::v3::Response::new(
        room_id,
    )))
}

pub async fn leave(
    State(h): State<Arc<Haven>>,
    r: Ruma<leave_room::v3::Request>,
) -> ApiResult<leave_room::v3::Response> {
    let user = r.user()?;
    if h.rooms.meta(&r.body.room_id)?.is_none() {
        // Refusing an invite from another server to a room this server is not in.
        crate::federation::membership::reject_remote_invite(
            &h,
            &r.body.room_id,
            user,
            r.body.reason.clone(),
        )
        .await?;
        return Ok(RumaResponse(leave_room::v3::Response::new()));
    }
    h.rooms
        .leave(&r.body.room_id, user, r.body.reason.clone())
        .await?;
    Ok(RumaResponse(leave_room::v3::Response::new()))
}

pub async fn invite(
    State(h): State<Arc<Haven>>,
    r: Ruma<invite_user::v3::Request>,
) -> ApiResult<invite_user::v3::Response> {
    h.limit(Limited::Invite, r.session()?)?;
    let invite_user::v3::InvitationRecipient::UserId(invitee) = &r.body.recipient else {
        return Err(Error::bad_request(
            ErrCode::Unknown,
            "Third-party invites are not supported",
        ));
    };
    let user_id = &invitee.user_id;
    h.users.require_not_suspended(r.user()?)?;
    crate::admin::rooms::require_not_blocked(&h, &r.body.room_id)?;
    if user_id.server_name() != h.config.server_name {
        h.rooms.meta_or_404(&r.body.room_id)?;
        crate::federation::membership::invite_remote(
            &h,
            &r.body.room_id,
            r.user()?,
            user_id,
            invitee.reason.clone(),
        )
        .await?;
        return Ok(RumaResponse(invite_user::v3::Response::new()));
    }
    if !crate::appservice::user_exists(&h, user_id).await? {
        return Err(Error::not_found("Unknown user"));
    }
    let reason = invitee.reason.clone();
    h.rooms
        .act_on_member(
            &r.body.room_id,
            r.user()?,
            user_id,
            Action::Invite,
            reason,
            // The invitee's name and picture, so clients show who was invited.
            h.users.member_profile(user_id)?,
        )
        .await?;
    Ok(RumaResponse(invite_user::v3::Response::new()))
}

pub async fn kick(
    State(h): State<Arc<Haven>>,
    r: Ruma<kick_user::v3::Request>,
) -> ApiResult<kick_user::v3::Response> {
    h.rooms
        .act_on_member(
            &r.body.room_id,
            r.user()?,
            &r.body.user_id,
            Action::Kick,
            r.body.reason.clone(),
            Map::new(),
        )
        .await?;
    Ok(RumaResponse(kick_user::v3::Response::new()))
}

pub async fn ban(
    State(h): State<Arc<Haven>>,
    r: Ruma<ban_user::v3::Request>,
) -> ApiResult<ban_user::v3::Response> {
    h.rooms
        .act_on_member(
            &r.body.room_id,
            r.user()?,
            &r.body.user_id,
            Action::Ban,
            r.body.reason.clone(),
            Map::new(),
        )
        .await?;
    Ok(RumaResponse(ban_user::v3::Response::new()))
}

pub async fn unban(
    State(h): State<Arc<Haven>>,
    r: Ruma<unban_user::v3::Request>,
) -> ApiResult<unban_user::v3::Response> {
    h.rooms
        .act_on_member(
            &r.body.room_id,
            r.user()?,
            &r.body.user_id,
            Action::Unban,
            r.body.reason.clone(),
            Map::new(),
        )
        .await?;
    Ok(RumaResponse(unban_user::v3::Response::new()))
}

pub async fn forget(
    State(h): State<Arc<Haven>>,
    r: Ruma<forget_room::v3::Request>,
) -> ApiResult<forget_room::v3::Response> {
    h.rooms.forget(&r.body.room_id, r.user()?)?;
    h.db.durable().await?;
    Ok(RumaResponse(forget_room::v3::Response::new()))
}

pub async fn joined(
    State(h): State<Arc<Haven>>,
    r: Ruma<joined_rooms::v3::Request>,
) -> ApiResult<joined_rooms::v3::Response> {
    Ok(RumaResponse(joined_rooms::v3::Response::new(
        h.rooms.joined_rooms(r.user()?)?,
    )))
}

/// `POST /rooms/{roomId}/upgrade`
pub async fn upgrade(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::room::upgrade_room::v3::Request>,
) -> ApiResult<ruma::api::client::room::upgrade_room::v3::Response> {
    let user = r.user()?.clone();
    let version = r.body.new_version.clone();
    if !crate::rooms::SUPPORTED_VERSIONS.contains(&version) {
        return Err(Error::bad_request(
            ErrCode::UnsupportedRoomVersion,
            format!("Room version {version} is not supported"),
        ));
    }
    let profile = h.users.member_profile(&user)?;
    let new = h
        .rooms
        .upgrade(&r.body.room_id, &user, version, profile)
        .await?;
    Ok(RumaResponse(
        ruma::api::client::room::upgrade_room::v3::Response::new(new),
    ))
}

/// `POST /knock/{roomIdOrAlias}`
pub async fn knock(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::knock::knock_room::v3::Request>,
) -> ApiResult<ruma::api::client::knock::knock_room::v3::Response> {
    h.limit(Limited::Join, r.session()?)?;
    let room_id = resolve_room(&h, &r.body.room_id_or_alias).await?;
    let user = r.user()?;
    h.users.require_not_suspended(user)?;
    if h.rooms.meta(&room_id)?.is_none() {
        // A room this server is not in: knock through a server that is.
        let via = servers_named(&r.body.room_id_or_alias, &r.body.via);
        let via = crate::federation::membership::join_candidates(&h, &room_id, user, &via)?;
        crate::federation::membership::knock_remote(
            &h,
            &room_id,
            user,
            &via,
            h.users.member_profile(user)?,
            r.body.reason.clone(),
        )
        .await?;
        return Ok(RumaResponse(
            ruma::api::client::knock::knock_room::v3::Response::new(room_id),
        ));
    }
    h.rooms
        .knock(
            &room_id,
            user,
            h.users.member_profile(user)?,
            r.body.reason.clone(),
        )
        .await?;
    Ok(RumaResponse(
        ruma::api::client::knock::knock_room::v3::Response::new(room_id),
    ))
}
