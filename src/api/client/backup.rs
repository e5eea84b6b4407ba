//! `/room_keys`: key backup versions and keys, thin handlers over
//! [`crate::users::key_backup`].

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::client::backup::{
        add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session,
        create_backup_version, delete_backup_keys, delete_backup_keys_for_room,
        delete_backup_keys_for_session, delete_backup_version, get_backup_info, get_backup_keys,
        get_backup_keys_for_room, get_backup_keys_for_session, get_latest_backup_info,
        update_backup_version, RoomKeyBackup,
    },
    serde::Raw,
    OwnedRoomId, UInt, UserId,
};
use serde_json::Value;

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    events::client::raw,
    users::key_backup as kb,
    Haven,
};

fn value<T>(r: &Raw<T>) -> Result<Value, Error> {
    serde_json::from_str(r.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

fn uint(n: u64) -> UInt {
    UInt::try_from(n).unwrap_or(UInt::MAX)
}

pub async fn create_version(
    State(h): State<Arc<Haven>>,
    r: Ruma<create_backup_version::v3::Request>,
) -> ApiResult<create_backup_version::v3::Response> {
    let v = kb::create(&h.db, r.user()?, value(&r.body.algorithm)?)?;
    h.db.durable().await?;
    Ok(RumaResponse(create_backup_version::v3::Response::new(
        v.to_string(),
    )))
}

fn info(
    h: &Haven,
    user: &UserId,
    v: u64,
    rec: &kb::Version,
) -> Result<
    (
        Raw<ruma::api::client::backup::BackupAlgorithm>,
        UInt,
        String,
    ),
    Error,
> {
    let (etag, count) = kb::etag_count(&h.db, user, v)?;
    Ok((raw(&rec.algorithm)?, uint(count), etag))
}

pub async fn latest(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_latest_backup_info::v3::Request>,
) -> ApiResult<get_latest_backup_info::v3::Response> {
    let user = r.user()?;
    let (v, rec) =
        kb::latest(&h.db, user)?.ok_or_else(|| Error::not_found("No current backup version"))?;
    let (alg, count, etag) = info(&h, user, v, &rec)?;
    Ok(RumaResponse(get_latest_backup_info::v3::Response::new(
        alg,
        count,
        etag,
        v.to_string(),
    )))
}

pub async fn get_version(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_backup_info::v3::Request>,
) -> ApiResult<get_backup_info::v3::Response> {
    let user = r.user()?;
    let rec = kb::get(&h.db, user, &r.body.version)?;
    let v: u64 = r
        .body
        .version
        .parse()
        .map_err(|_| Error::not_found("Unknown backup version"))?;
    let (alg, count, etag) = info(&h, user, v, &rec)?;
    Ok(RumaResponse(get_backup_info::v3::Response::new(
        alg,
        count,
        etag,
        v.to_string(),
    )))
}

pub async fn update_version(
    State(h): State<Arc<Haven>>,
    r: Ruma<update_backup_version::v3::Request>,
) -> ApiResult<update_backup_version::v3::Response> {
    kb::update(&h.db, r.user()?, &r.body.version, value(&r.body.algorithm)?)?;
    h.db.durable().await?;
    Ok(RumaResponse(update_backup_version::v3::Response::new()))
}

pub async fn delete_version(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_backup_version::v3::Request>,
) -> ApiResult<delete_backup_version::v3::Response> {
    kb::delete_version(&h.db, r.user()?, &r.body.version)?;
    h.db.durable().await?;
    Ok(RumaResponse(delete_backup_version::v3::Response::new()))
}

/// Stores keys in the current version; answers (etag, count).
async fn put(
    h: &Haven,
    user: &UserId,
    version: &str,
    keys: Vec<(String, String, Value)>,
) -> Result<(String, UInt), Error> {
    let v = kb::require_current(&h.db, user, version)?;
    kb::put_keys(&h.db, user, v, keys)?;
    h.db.durable().await?;
    let (etag, count) = kb::etag_count(&h.db, user, v)?;
    Ok((etag, uint(count)))
}

pub async fn add_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<add_backup_keys::v3::Request>,
) -> ApiResult<add_backup_keys::v3::Response> {
    let mut keys = Vec::new();
    for (room, backup) in &r.body.rooms {
        for (session, data) in &backup.sessions {
            keys.push((room.to_string(), session.clone(), value(data)?));
        }
    }
    let (etag, count) = put(&h, r.user()?, &r.body.version, keys).await?;
    Ok(RumaResponse(add_backup_keys::v3::Response::new(
        etag, count,
    )))
}

pub async fn add_room_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<add_backup_keys_for_room::v3::Request>,
) -> ApiResult<add_backup_keys_for_room::v3::Response> {
    let mut keys = Vec::new();
    for (session, data) in &r.body.sessions {
        keys.push((r.body.room_id.to_string(), session.clone(), value(data)?));
    }
    let (etag, count) = put(&h, r.user()?, &r.body.version, keys).await?;
    Ok(RumaResponse(add_backup_keys_for_room::v3::Response::new(
        etag, count,
    )))
}

pub async fn add_session_key(
    State(h): State<Arc<Haven>>,
    r: Ruma<add_backup_keys_for_session::v3::Request>,
) -> ApiResult<add_backup_keys_for_session::v3::Response> {
    let keys = vec![(
        r.body.room_id.to_string(),
        r.body.session_id.clone(),
        value(&r.body.session_data)?,
    )];
    let (etag, count) = put(&h, r.user()?, &r.body.version, keys).await?;
    Ok(RumaResponse(
        add_backup_keys_for_session::v3::Response::new(etag, count),
    ))
}

fn existing(h: &Haven, user: &UserId, version: &str) -> Result<u64, Error> {
    kb::get(&h.db, user, version)?;
    version
        .parse()
        .map_err(|_| Error::not_found("Unknown backup version"))
}

pub async fn get_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_backup_keys::v3::Request>,
) -> ApiResult<get_backup_keys::v3::Response> {
    let user = r.user()?;
    let v = existing(&h, user, &r.body.version)?;
    let mut rooms: BTreeMap<OwnedRoomId, RoomKeyBackup> = BTreeMap::new();
    for (room, session, data) in kb::keys(&h.db, user, v, None, None)? {
        let Ok(room) = OwnedRoomId::try_from(room) else {
            continue;
        };
        rooms
            .entry(room)
            .or_insert_with(|| RoomKeyBackup::new(BTreeMap::new()))
            .sessions
            .insert(session, raw(&data)?);
    }
    Ok(RumaResponse(get_backup_keys::v3::Response::new(rooms)))
}

pub async fn get_room_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_backup_keys_for_room::v3::Request>,
) -> ApiResult<get_backup_keys_for_room::v3::Response> {
    let user = r.user()?;
    let v = existing(&h, user, &r.body.version)?;
    let mut sessions = BTreeMap::new();
    for (_, session, data) in kb::keys(&h.db, user, v, Some(r.body.room_id.as_str()), None)? {
        sessions.insert(session, raw(&data)?);
    }
    Ok(RumaResponse(get_backup_keys_for_room::v3::Response::new(
        sessions,
    )))
}

pub async fn get_session_key(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_backup_keys_for_session::v3::Request>,
) -> ApiResult<get_backup_keys_for_session::v3::Response> {
    let user = r.user()?;
    let v = existing(&h, user, &r.body.version)?;
    let (_, _, data) = kb::keys(
        &h.db,
        user,
        v,
        Some(r.body.room_id.as_str()),
        Some(&r.body.session_id),
    )?
    .into_iter()
    .next()
    .ok_or_else(|| Error::not_found("No key for that session"))?;
    Ok(RumaResponse(
        get_backup_keys_for_session::v3::Response::new(raw(&data)?),
    ))
}

async fn delete(
    h: &Haven,
    user: &UserId,
    version: &str,
    room: Option<&str>,
    session: Option<&str>,
) -> Result<(String, UInt), Error> {
    let v = existing(h, user, version)?;
    kb::delete_keys(&h.db, user, v, room, session)?;
    h.db.durable().await?;
    let (etag, count) = kb::etag_count(&h.db, user, v)?;
    Ok((etag, uint(count)))
}

pub async fn delete_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_backup_keys::v3::Request>,
) -> ApiResult<delete_backup_keys::v3::Response> {
    let (etag, count) = delete(&h, r.user()?, &r.body.version, None, None).await?;
    Ok(RumaResponse(delete_backup_keys::v3::Response::new(
        etag, count,
    )))
}

pub async fn delete_room_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> ApiResult<delete_backup_keys_for_room::v3::Response> {
    let room = r.body.room_id.to_string();
    let (etag, count) = delete(&h, r.user()?, &r.body.version, Some(&room), None).await?;
    Ok(RumaResponse(
        delete_backup_keys_for_room::v3::Response::new(etag, count),
    ))
}

pub async fn delete_session_key(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> ApiResult<delete_backup_keys_for_session::v3::Response> {
    let room = r.body.room_id.to_string();
    let (etag, count) = delete(
        &h,
        r.user()?,
        &r.body.version,
        Some(&room),
        Some(&r.body.session_id),
    )
    .await?;
    Ok(RumaResponse(
        delete_backup_keys_for_session::v3::Response::new(etag, count),
    ))
}
