//! Questions asked of other servers on behalf of local clients.

use ruma::{OwnedRoomId, OwnedServerName, RoomAliasId, UserId};

use crate::{error::Result, Haven};

/// A remote user's display name and avatar, from their server.
pub async fn profile(h: &Haven, user: &UserId) -> Result<(Option<String>, Option<String>)> {
    let path = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        crate::util::encode(user.as_str())
    );
    // The spec knows no "server unreachable" here: the profile is simply not found.
    let v = h
        .federation
        .get(h, user.server_name(), &path)
        .await
        .map_err(|e| match e {
            crate::error::Error::Matrix { status, .. }
                if status == axum::http::StatusCode::BAD_GATEWAY =>
            {
                crate::error::Error::not_found(format!(
                    "Profile not found: {} could not be reached",
                    user.server_name()
                ))
            }
            e => e,
        })?;
    let field = |k: &str| v[k].as_str().map(str::to_owned);
    Ok((field("displayname"), field("avatar_url")))
}

/// A remote alias: the room and the servers in it, from the alias's server.
pub async fn alias(
    h: &Haven,
    alias: &RoomAliasId,
) -> Result<Option<(OwnedRoomId, Vec<OwnedServerName>)>> {
    let path = format!(
        "/_matrix/federation/v1/query/directory?room_alias={}",
        crate::util::encode(alias.as_str())
    );
    let v = match h.federation.get(h, alias.server_name(), &path).await {
        Ok(v) => v,
        Err(crate::error::Error::Matrix { status, .. })
            if status == axum::http::StatusCode::NOT_FOUND
                || status == axum::http::StatusCode::BAD_GATEWAY =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let Some(room) = v["room_id"]
        .as_str()
        .and_then(|r| ruma::RoomId::parse(r).ok())
    else {
        return Ok(None);
    };
    let servers = v["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().and_then(|s| ruma::ServerName::parse(s).ok()))
        .collect();
    Ok(Some((room, servers)))
}

/// A page of another server's public room directory.
pub async fn public_rooms(
    h: &Haven,
    server: &ruma::ServerName,
    since: Option<&str>,
    limit: Option<ruma::UInt>,
    term: Option<&str>,
    types: &[Option<String>],
) -> Result<crate::rooms::directory::DirectoryPage> {
    let mut filter = serde_json::Map::new();
    if let Some(t) = term {
        filter.insert("generic_search_term".into(), t.into());
    }
    if !types.is_empty() {
        filter.insert("room_types".into(), serde_json::json!(types));
    }
    let mut body = serde_json::json!({ "filter": filter });
    if let Some(s) = since {
        body["since"] = s.into();
    }
    if let Some(l) = limit {
        body["limit"] = serde_json::json!(l);
    }
    let v = h
        .federation
        .post(h, server, "/_matrix/federation/v1/publicRooms", &body)
        .await?;
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    let chunk: Vec<ruma::directory::PublicRoomsChunk> = v["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| serde_json::from_value(e.clone()).ok())
        .collect();
    let total = v["total_room_count_estimate"]
        .as_u64()
        .and_then(|n| ruma::UInt::try_from(n).ok())
        .unwrap_or_else(|| ruma::UInt::try_from(chunk.len()).unwrap_or_default());
    Ok(crate::rooms::directory::DirectoryPage {
        chunk,
        next: text("next_batch"),
        prev: text("prev_batch"),
        total,
    })
}

/// The servers to reach a local room through, as alias answers list them: this server first,
/// then every other server with members in the room.
pub fn local_room_servers(h: &Haven, room: &ruma::RoomId) -> Result<Vec<OwnedServerName>> {
    let mut servers = vec![h.key.server_name.clone()];
    for s in h.rooms.outbox.room_servers(&h.rooms, room, None)? {
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    Ok(servers)
}
