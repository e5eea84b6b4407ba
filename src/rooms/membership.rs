//! Membership: who is in which room, and the join/invite/leave/kick/ban/unban actions, each of
//! which is an `m.room.member` event checked by the room version's auth rules.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use ruma::{events::StateEventType, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{json, Map, Value};

use super::{MemberRecord, Rooms};
use crate::{
    error::{Error, Result},
    events::{EventTemplate, PduRef},
    storage::Storage,
    stream::Topic,
};

/// Rooms whose joined members are kept in memory (see [`Roster`]).
pub(crate) const ROSTERS_CACHED: usize = 1_000;

/// The joined members of a room at one current state, shared by every reader until the room's
/// state changes (a new state group). The send path reads it for every event (push evaluation,
/// federation destinations): in a big room, reading the member index each time was most of the
/// cost of a send.
pub struct Roster {
    state_group: u64,
    pub joined: Vec<OwnedUserId>,
    local_names: OnceLock<HashMap<OwnedUserId, String>>,
}

impl Roster {
    /// The display names of the room's local joined members that set one, read once per
    /// state.
    pub fn local_display_names(
        &self,
        rooms: &Rooms,
        room: &RoomId,
    ) -> Result<&HashMap<OwnedUserId, String>> {
        if let Some(names) = self.local_names.get() {
            return Ok(names);
        }
        let mut names = HashMap::new();
        for user in self
            .joined
            .iter()
            .filter(|u| u.server_name() == rooms.server_name())
        {
            if let Some(name) = rooms
                .member_displayname(room, user)?
                .filter(|n| !n.is_empty())
            {
                names.insert(user.clone(), name);
            }
        }
        Ok(self.local_names.get_or_init(|| names))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Invite,
    Kick,
    Ban,
    Unban,
}

impl Rooms {
    pub fn membership(&self, room_id: &RoomId, user: &UserId) -> Result<Option<MemberRecord>> {
        Ok(self
            .db
            .t
            .room_members
            .get(&(room_id.to_string(), user.to_string()))?
            .map(|j| j.0))
    }

    /// `user`'s membership just after the event at stream position `pos` (for the event's
    /// `unsigned.membership`): the current membership when it is at least that old, else the
    /// membership it replaced, walking back; `leave` before their first membership event.
    pub fn membership_at(&self, room_id: &RoomId, user: &UserId, pos: u64) -> Result<String> {
        let Some(current) = self.membership(room_id, user)? else {
            return Ok("leave".to_owned());
        };
        if current.pos <= pos {
            return Ok(current.membership);
        }
        let mut cur = self.extras(&current.event_id)?.replaces_state;
        while let Some(id) = cur {
            let Some(at) = self.event_pos(&id)? else {
                break;
            };
            if at <= pos {
                let Some(p) = self.get_pdu(&id)? else { break };
                return Ok(p
                    .content_str("membership")
                    .unwrap_or_else(|| "leave".to_owned()));
            }
            cur = self.extras(&id)?.replaces_state;
        }
        Ok("leave".to_owned())
    }

    pub fn is_joined(&self, room_id: &RoomId, user: &UserId) -> Result<bool> {
        Ok(self
            .membership(room_id, user)?
            .is_some_and(|m| m.membership == "join"))
    }

    /// `M_FORBIDDEN` unless `user` is joined; `M_NOT_FOUND`-free so that room existence does
    /// not leak to outsiders.
    pub fn require_joined(&self, room_id: &RoomId, user: &UserId) -> Result<()> {
        if self.is_joined(room_id, user)? {
            Ok(())
        } else {
            Err(Error::forbidden("You are not joined to this room"))
        }
    }

    /// Rooms of `user` with their current membership.
    pub fn user_rooms(&self, user: &UserId) -> Result<Vec<(OwnedRoomId, MemberRecord)>> {
        user_rooms(&self.db, user)
    }

    pub fn joined_rooms(&self, user: &UserId) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .user_rooms(user)?
            .into_iter()
            .filter(|(_, m)| m.membership == "join")
            .map(|(r, _)| r)
            .collect())
    }

    /// Members of a room with their membership.
    pub fn members(&self, room_id: &RoomId) -> Result<Vec<(OwnedUserId, MemberRecord)>> {
        let prefix = crate::storage::prefix(room_id.as_str());
        let mut out = Vec::new();
        for item in self.db.t.room_members.scan_prefix(&prefix) {
            let ((_, user), rec) = item?;
            out.push((UserId::parse(user).map_err(Error::internal)?, rec.0));
        }
        Ok(out)
    }

    pub fn joined_members(&self, room_id: &RoomId) -> Result<Vec<OwnedUserId>> {
        Ok(self.roster(room_id)?.joined.clone())
    }

    /// The room's joined members at its current state, from memory while the state is
    /// unchanged. The room's metadata is written after its member index (persist.rs), so a
    /// roster is never cached under a state group newer than the members it lists.
    pub fn roster(&self, room_id: &RoomId) -> Result<Arc<Roster>> {
        let group = self.meta(room_id)?.map(|m| m.state_group);
        if let Some(r) = self.rosters.get(room_id) {
            if Some(r.state_group) == group {
                return Ok(r);
            }
        }
        let roster = Arc::new(Roster {
            state_group: group.unwrap_or(0),
            joined: self
                .members(room_id)?
                .into_iter()
                .filter(|(_, m)| m.membership == "join")
                .map(|(u, _)| u)
                .collect(),
            local_names: OnceLock::new(),
        });
        match group {
            Some(_) => self.rosters.insert(room_id.to_owned(), roster.clone()),
            // A room being deleted, or unknown: nothing to keep.
            None => self.rosters.remove(room_id),
        }
        Ok(roster)
    }

    /// Joins `user` to a room this server knows. `profile` holds displayname/avatar_url.
    pub async fn join(
        &self,
        room_id: &RoomId,
        user: &OwnedUserId,
        profile: Map<String, Value>,
        reason: Option<String>,
    ) -> Result<PduRef> {
        self.meta_or_404(room_id)?;
        if self.joined_members(room_id)?.is_empty() {
            // Everyone has left: no server is in the room to join through (Synapse's answer
            // too), and an old invitation does not bring it back.
            return Err(Error::not_found("Nobody is in this room any more"));
        }
        let via = self.restricted_join_voucher(room_id, user)?;
        self.own_membership(room_id, user, "join", profile, reason, via)
            .await
    }

    /// Knocks on a room (versions 7+, join rule `knock` or `knock_restricted`).
    pub async fn knock(
        &self,
        room_id: &RoomId,
        user: &OwnedUserId,
        profile: Map<String, Value>,
        reason: Option<String>,
    ) -> Result<PduRef> {
        self.own_membership(room_id, user, "knock", profile, reason, None)
            .await
    }

    /// The user's own member event (join, knock or leave) with their profile, the reason and, for a
    /// restricted join, who vouches for it; the auth rules decide.
    async fn own_membership(
        &self,
        room_id: &RoomId,
        user: &OwnedUserId,
        membership: &str,
        profile: Map<String, Value>,
        reason: Option<String>,
        via: Option<OwnedUserId>,
    ) -> Result<PduRef> {
        self.meta_or_404(room_id)?;
        let mut content = profile;
        content.insert("membership".into(), json!(membership));
        if let Some(r) = reason {
            content.insert("reason".into(), json!(r));
        }
        if let Some(v) = via {
            content.insert("join_authorised_via_users_server".into(), json!(v));
        }
        let t = EventTemplate::state("m.room.member", user.as_str(), Value::Object(content));
        self.append(room_id, user, t, None).await
    }

    /// For a restricted room (`restricted` / `knock_restricted`) that `user` is not invited
    /// to: a local member who may invite, to vouch for the join, when `user` is in one of the
    /// rooms the rule allows. `None` when the join needs no voucher (the auth rules decide).
    pub fn restricted_join_voucher(
        &self,
        room_id: &RoomId,
        user: &UserId,
    ) -> Result<Option<OwnedUserId>> {
        let Some(rules) = self.current_state(room_id, &StateEventType::RoomJoinRules, "")? else {
            return Ok(None);
        };
        let c = rules.content_value();
        let rule = c["join_rule"].as_str().unwrap_or_default();
        if !matches!(rule, "restricted" | "knock_restricted") {
            return Ok(None);
        }
        let current = self.membership(room_id, user)?.map(|m| m.membership);
        if matches!(current.as_deref(), Some("join" | "invite")) {
            return Ok(None);
        }
        let allowed = c["allow"].as_array().into_iter().flatten().any(|a| {
            a["type"] == "m.room_membership"
                && a["room_id"]
                    .as_str()
                    .and_then(|r| RoomId::parse(r).ok())
                    .is_some_and(|r| self.is_joined(&r, user).unwrap_or(false))
        });
        if !allowed {
            return Err(Error::forbidden(
                "You are not in any of the rooms this room's join rule allows",
            ));
        }
        let meta = self.meta_or_404(room_id)?;
        let rules = super::rules_for(&meta.version)?;
        let view = super::CurrentState {
            rooms: self,
            room_id,
        };
        let pl = super::state::power_levels(&view, &rules)?;
        let voucher = self
            .joined_members(room_id)?
            .into_iter()
            .filter(|m| m.server_name() == self.server_name())
            .find(|m| pl.user_level(m) >= pl.invite);
        voucher
            .map(Some)
            .ok_or_else(|| Error::forbidden("Nobody on this server can vouch for your join"))
    }

    /// Leaves a room, or rejects an invite.
    pub async fn leave(
        &self,
        room_id: &RoomId,
        user: &OwnedUserId,
        reason: Option<String>,
    ) -> Result<PduRef> {
        self.own_membership(room_id, user, "leave", Map::new(), reason, None)
            .await
    }

    /// Acts on another member: invite, kick, ban or unban.
    pub async fn act_on_member(
        &self,
        room_id: &RoomId,
        sender: &OwnedUserId,
        target: &UserId,
        action: Action,
        reason: Option<String>,
        extra: Map<String, Value>,
    ) -> Result<PduRef> {
        self.meta_or_404(room_id)?;
        let current = self.membership(room_id, target)?.map(|m| m.membership);
        let membership = match action {
            Action::Invite => "invite",
            Action::Ban => "ban",
            Action::Kick | Action::Unban => {
                let expected = if action == Action::Kick {
                    // A knock is turned down by kicking the knocker.
                    ["join", "invite", "knock"].as_slice()
                } else {
                    &["ban"]
                };
                if !current.as_deref().is_some_and(|c| expected.contains(&c)) {
                    return Err(Error::forbidden(match action {
                        Action::Kick => "The user is not in the room",
                        _ => "The user is not banned",
                    }));
                }
                "leave"
            }
        };
        if action == Action::Invite && current.as_deref() == Some("join") {
            return Err(Error::forbidden("The user is already in the room"));
        }
        let mut content = extra;
        content.insert("membership".into(), json!(membership));
        if let Some(r) = reason {
            content.insert("reason".into(), json!(r));
        }
        let t = EventTemplate::state("m.room.member", target.as_str(), Value::Object(content));
        self.append(room_id, sender, t, None).await
    }

    /// Forgets a room the user has left: it disappears from their sync and history access.
    pub fn forget(&self, room_id: &RoomId, user: &UserId) -> Result<()> {
        match self.membership(room_id, user)? {
            Some(m) if m.membership == "join" || m.membership == "invite" => {
                Err(Error::bad_request(
                    crate::error::ErrCode::Unknown,
                    "You must leave the room first",
                ))
            }
            Some(_) => {
                self.db
                    .t
                    .forgotten
                    .put(&(user.to_string(), room_id.to_string()), &())?;
                Ok(())
            }
            None => Err(Error::not_found("You were never in this room")),
        }
    }

    pub fn is_forgotten(&self, room_id: &RoomId, user: &UserId) -> Result<bool> {
        Ok(self
            .db
            .t
            .forgotten
            .contains(&(user.to_string(), room_id.to_string()))?)
    }

    /// The user's display name in the room (their member event's), if they have one.
    pub fn member_displayname(&self, room: &RoomId, user: &UserId) -> Result<Option<String>> {
        let ev = self.current_state(
            room,
            &ruma::events::StateEventType::RoomMember,
            user.as_str(),
        )?;
        Ok(ev.and_then(|e| e.content_value()["displayname"].as_str().map(str::to_owned)))
    }

    /// The room's name, if it has one.
    pub fn room_name(&self, room: &RoomId) -> Result<Option<String>> {
        let ev = self.current_state(room, &ruma::events::StateEventType::RoomName, "")?;
        Ok(ev.and_then(|e| e.content_value()["name"].as_str().map(str::to_owned)))
    }

    /// The state an invitee (or knocker) is shown of the room: what identifies it.
    pub fn invite_state_events(&self, room: &RoomId) -> Result<Vec<crate::events::PduRef>> {
        let mut out = Vec::new();
        for kind in [
            StateEventType::RoomCreate,
            StateEventType::RoomJoinRules,
            StateEventType::RoomName,
            StateEventType::RoomAvatar,
            StateEventType::RoomCanonicalAlias,
            StateEventType::RoomEncryption,
            StateEventType::RoomTopic,
        ] {
            if let Some(pdu) = self.current_state(room, &kind, "")? {
                out.push(pdu);
            }
        }
        Ok(out)
    }

    /// [`Self::invite_state_events`] stripped, as clients get them.
    pub fn stripped_invite_state(&self, room: &RoomId) -> Result<Vec<Value>> {
        Ok(self
            .invite_state_events(room)?
            .iter()
            .map(|p| crate::events::client::stripped_state(p))
            .collect())
    }
}

/// The rooms `user` is in, was invited to or left, with their membership.
pub fn user_rooms(db: &Storage, user: &UserId) -> Result<Vec<(OwnedRoomId, MemberRecord)>> {
    let prefix = crate::storage::prefix(user.as_str());
    let mut out = Vec::new();
    for item in db.t.user_rooms.scan_prefix(&prefix) {
        let ((_, room), rec) = item?;
        out.push((RoomId::parse(room).map_err(Error::internal)?, rec.0));
    }
    Ok(out)
}

/// Whose long-polls a change about `user` (presence, device keys) may answer: theirs, and
/// those of everyone in a room with them.
pub fn user_and_room_topics(db: &Storage, user: &UserId) -> Result<Vec<Topic>> {
    let mut topics = vec![Topic::User(user.to_owned())];
    for (room, m) in user_rooms(db, user)? {
        if m.membership == "join" {
            topics.push(Topic::Room(room));
        }
    }
    Ok(topics)
}
