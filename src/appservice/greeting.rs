//! Direct rooms opened by configured bots with every newly registered user (the intake bot's
//! greeting): the bot creates a private room, invites the user with `is_direct`, and the room
//! is recorded in both users' `m.direct` account data.

use ruma::{OwnedRoomId, UserId};
use serde_json::{json, Map};

use crate::{
    error::Result,
    rooms::create::{CreateRoom, Preset},
    users::account_data,
    Haven,
};

/// Adds `room` under `other` in `user`'s `m.direct` map.
async fn add_direct(h: &Haven, user: &UserId, other: &UserId, room: &OwnedRoomId) -> Result<()> {
    let mut direct = account_data::get(&h.db, user, None, "m.direct")?.unwrap_or_else(|| json!({}));
    let list = direct.as_object_mut().and_then(|m| {
        m.entry(other.to_string())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .map(|a| {
                a.push(json!(room));
            })
    });
    if list.is_none() {
        direct = json!({ other.to_string(): [room] });
    }
    account_data::set(&h.db, &h.stream, user, None, "m.direct", direct).await
}

/// Opens the greeting rooms for `new_user`. Failures are logged: registration still succeeds.
pub async fn greet(h: &Haven, new_user: &UserId) {
    for bot in &h.config.registration.greeting_bots {
        let result: Result<()> = async {
            if !super::user_exists(h, bot).await? {
                tracing::warn!(bot = %bot, "greeting bot does not exist; no greeting room created");
                return Ok(());
            }
            let req = CreateRoom {
                version: h.config.rooms.default_version.clone(),
                preset: Preset::TrustedPrivateChat,
                creation_content: Map::new(),
                power_level_override: None,
                initial_state: Vec::new(),
                name: None,
                topic: None,
                alias: None,
                invite: vec![new_user.to_owned()],
                is_direct: true,
                creator_profile: h.users.member_profile(bot)?,
                invite_profiles: Default::default(),
            };
            let room = h.rooms.create_room(bot, req).await?;
            add_direct(h, bot, new_user, &room).await?;
            add_direct(h, new_user, bot, &room).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(bot = %bot, user = %new_user, error = %e, "greeting room not created");
        }
    }
}
