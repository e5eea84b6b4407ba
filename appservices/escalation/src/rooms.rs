//! The programs' staff rooms (queue, supervisor, staff notes): found or created at start with
//! the configured staff invited and their roles written into the power levels; the queue board;
//! direct rooms with on-call supervisors.

use std::collections::HashMap;

use appservice_runtime::{AsClient, BoxError, Store};
use ruma::{
    api::client::{alias::get_alias, room::create_room},
    OwnedRoomAliasId, OwnedRoomId, RoomId, UserId,
};
use serde_json::json;

use crate::config::{Program, Role};

const BOARDS: &str = "boards";
const DMS: &str = "dms";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Queue,
    Supervisor,
    Staff,
}

/// The resolved rooms of one program.
#[derive(Debug, Clone)]
pub struct ProgramRooms {
    pub queue: OwnedRoomId,
    pub supervisor: OwnedRoomId,
    pub staff: OwnedRoomId,
}

/// Which program and kind each staff room is.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    pub programs: HashMap<String, ProgramRooms>,
    pub rooms: HashMap<OwnedRoomId, Vec<(String, Kind)>>,
}

/// Power level per role in staff rooms.
fn level(role: Role) -> i64 {
    match role {
        Role::Responder => 0,
        Role::Supervisor => 50,
        Role::Admin => 100,
    }
}

/// Finds (joining) or creates the room `reference` names, with `invite` invited.
async fn ensure_room(
    client: &AsClient,
    reference: &str,
    name: &str,
    invite: &[&str],
) -> Result<OwnedRoomId, BoxError> {
    if reference.starts_with('!') {
        let room = OwnedRoomId::try_from(reference)?;
        client.join(&room).await?;
        return Ok(room);
    }
    let alias = OwnedRoomAliasId::try_from(reference)?;
    match client
        .send(get_alias::v3::Request::new(alias.clone()))
        .await
    {
        Ok(r) => {
            client.join(&r.room_id).await?;
            Ok(r.room_id)
        }
        Err(e) if e.errcode() == Some("M_NOT_FOUND") => {
            let mut req = create_room::v3::Request::new();
            req.room_alias_name = Some(alias.alias().to_owned());
            req.name = Some(name.to_owned());
            req.preset = Some(create_room::v3::RoomPreset::PrivateChat);
            req.invite = invite
                .iter()
                .filter_map(|u| UserId::parse(*u).ok())
                .collect();
            Ok(client.send(req).await?.room_id)
        }
        Err(e) => Err(e.into()),
    }
}

/// Invites those of `users` the room has never seen (staff are invited once: not again at
/// each start, nor after leaving on purpose) and writes their roles into the power levels.
async fn sync_staff(
    client: &AsClient,
    room: &RoomId,
    program: &Program,
    users: &[&str],
) -> Result<(), BoxError> {
    for u in users {
        let Ok(user) = UserId::parse(*u) else {
            continue;
        };
        if client
            .state(room, "m.room.member", user.as_str())
            .await?
            .is_some()
        {
            continue;
        }
        if let Err(e) = client.invite(room, &user).await {
            // Left on purpose, or unknown: not worth stopping for.
            tracing::debug!(%room, user = %user, error = %e, "invite not sent");
        }
    }
    let mut pl = client
        .state(room, "m.room.power_levels", "")
        .await?
        .unwrap_or_else(|| json!({}));
    let before = pl.clone();
    for u in users {
        if let Some(role) = program.role(u) {
            let want = level(role);
            let have = pl["users"][*u].as_i64().unwrap_or(0);
            if have != want {
                if want == 0 {
                    if let Some(m) = pl["users"].as_object_mut() {
                        m.remove(*u);
                    }
                } else {
                    pl["users"][*u] = want.into();
                }
            }
        }
    }
    if pl != before {
        if let Err(e) = client
            .send_state(room, "m.room.power_levels", "", &pl)
            .await
        {
            tracing::warn!(%room, error = %e, "staff power levels not written");
        }
    }
    Ok(())
}

/// Resolves (or creates) every program's rooms and brings their staff and power levels in
/// line with the configuration.
pub async fn setup(client: &AsClient, programs: &[Program]) -> Result<Directory, BoxError> {
    let mut dir = Directory::default();
    for p in programs {
        let staff = p.staff();
        let seniors: Vec<&str> = staff
            .iter()
            .copied()
            .filter(|u| p.role(u).is_some_and(|r| r >= Role::Supervisor))
            .collect();
        let queue = ensure_room(
            client,
            &p.queue_room,
            &format!("{} · queue", p.name),
            &staff,
        )
        .await?;
        sync_staff(client, &queue, p, &staff).await?;
        let supervisor = ensure_room(
            client,
            &p.supervisor_room,
            &format!("{} · supervisors", p.name),
            &seniors,
        )
        .await?;
        sync_staff(client, &supervisor, p, &seniors).await?;
        let staff_room = if p.staff_room() == p.supervisor_room {
            supervisor.clone()
        } else {
            let r = ensure_room(
                client,
                p.staff_room(),
                &format!("{} · staff notes", p.name),
                &staff,
            )
            .await?;
            sync_staff(client, &r, p, &staff).await?;
            r
        };
        for (room, kind) in [
            (&queue, Kind::Queue),
            (&supervisor, Kind::Supervisor),
            (&staff_room, Kind::Staff),
        ] {
            dir.rooms
                .entry(room.clone())
                .or_default()
                .push((p.id.clone(), kind));
        }
        dir.programs.insert(
            p.id.clone(),
            ProgramRooms {
                queue,
                supervisor,
                staff: staff_room,
            },
        );
    }
    Ok(dir)
}

/// Shows `text` as the program's queue board: one message, edited in place.
pub async fn show_board(
    client: &AsClient,
    store: &Store,
    program: &str,
    room: &RoomId,
    text: &str,
) -> Result<(), BoxError> {
    let previous: Option<String> = store.get(BOARDS, program)?;
    let content = match &previous {
        Some(event_id) => json!({
            "msgtype": "m.notice",
            "body": format!("* {text}"),
            "m.new_content": { "msgtype": "m.notice", "body": text },
            "m.relates_to": { "rel_type": "m.replace", "event_id": event_id },
        }),
        None => json!({ "msgtype": "m.notice", "body": text }),
    };
    let id = client.send_message(room, &content, None).await?;
    if previous.is_none() {
        store.put(BOARDS, program, &id.to_string())?;
    }
    Ok(())
}

/// The direct room with `user` (created the first time).
pub async fn direct_room(
    client: &AsClient,
    store: &Store,
    user: &str,
) -> Result<OwnedRoomId, BoxError> {
    if let Some(r) = store.get::<String>(DMS, user)? {
        return Ok(OwnedRoomId::try_from(r)?);
    }
    let mut req = create_room::v3::Request::new();
    req.is_direct = true;
    req.preset = Some(create_room::v3::RoomPreset::TrustedPrivateChat);
    req.invite = vec![UserId::parse(user)?];
    req.name = Some("Escalations".into());
    let room = client.send(req).await?.room_id;
    store.put(DMS, user, &room.to_string())?;
    Ok(room)
}
