//! Server administration, at the paths Synapse's admin API uses so tools written for it (and
//! Haven's own appservices) work with either server. Allowed to server admins and to
//! appservices whose registration grants it (`org.haven.admin: true`).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, State},
    Json,
};
use ruma::OwnedRoomId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{api::extract::Authed, error::Error, users::Session, Haven};

/// Whether the session may use the admin API.
pub fn is_admin(h: &Haven, s: &Session) -> Result<bool, Error> {
    if let Some(asv) = &s.appservice {
        if asv.r.admin {
            return Ok(true);
        }
    }
    h.users.is_admin(&s.user_id)
}

fn require_admin(h: &Haven, s: &Session) -> Result<(), Error> {
    if is_admin(h, s)? {
        Ok(())
    } else {
        Err(Error::forbidden("You are not a server admin"))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteRoom {
    /// Synapse's flag; Haven always removes the room's data once its members are out.
    purge: Option<bool>,
}

/// `DELETE /_synapse/admin/v1/rooms/{roomId}`: local members leave, then the room and its
/// history are removed.
pub async fn delete_room(
    State(h): State<Arc<Haven>>,
    Authed(s): Authed,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    require_admin(&h, &s)?;
    let req: DeleteRoom = if body.is_empty() {
        DeleteRoom::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::bad_json(e.to_string()))?
    };
    if req.purge == Some(false) {
        return Err(Error::invalid_param(
            "Haven deletes rooms only with their history (purge: true)",
        ));
    }
    let room = OwnedRoomId::try_from(room).map_err(|e| Error::invalid_param(e.to_string()))?;
    let purged = h.rooms.purge(&room).await?;
    tracing::info!(by = %s.user_id, %room, "room deleted through the admin API");
    Ok(Json(json!({
        "kicked_users": purged.kicked_users,
        "failed_to_kick_users": [],
        "local_aliases": purged.local_aliases,
        "new_room_id": null,
    })))
}
