//! End-to-end encryption key endpoints: upload, query, claim, changes.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::client::keys::{claim_keys, get_key_changes, get_keys, upload_keys},
    encryption::OneTimeKey,
    serde::Raw,
    OneTimeKeyAlgorithm, OwnedOneTimeKeyId, UInt,
};
use serde_json::Value;

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    events::client::raw,
    sync::parse_token,
    users::keys,
    Haven,
};

fn to_value<T>(r: &Raw<T>) -> Result<Value, Error> {
    serde_json::from_str(r.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

fn counts_map(c: BTreeMap<String, u64>) -> BTreeMap<OneTimeKeyAlgorithm, UInt> {
    c.into_iter()
        .map(|(k, v)| {
            (
                OneTimeKeyAlgorithm::from(k.as_str()),
                UInt::try_from(v).unwrap_or(UInt::MAX),
            )
        })
        .collect()
}

pub async fn upload(
    State(h): State<Arc<Haven>>,
    r: Ruma<upload_keys::v3::Request>,
) -> ApiResult<upload_keys::v3::Response> {
    let s = r.session()?;
    let device_keys = r.body.device_keys.as_ref().map(to_value).transpose()?;
    let otks = r
        .body
        .one_time_keys
        .iter()
        .map(|(id, k)| Ok((id.to_string(), to_value(k)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let fallback = r
        .body
        .fallback_keys
        .iter()
        .map(|(id, k)| Ok((id.to_string(), to_value(k)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let counts = keys::upload(
        &h.db,
        &h.stream,
        &s.user_id,
        &s.device_id,
        device_keys,
        otks,
        fallback,
    )
    .await?;
    Ok(RumaResponse(upload_keys::v3::Response::new(counts_map(
        counts,
    ))))
}

pub async fn query(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_keys::v3::Request>,
) -> ApiResult<get_keys::v3::Response> {
    r.session()?;
    let mut resp = get_keys::v3::Response::new();
    for (user, devices) in &r.body.device_keys {
        if user.server_name() != h.config.server_name {
            resp.failures.insert(
                user.server_name().to_string(),
                serde_json::json!({ "error": "federation is not available yet" }),
            );
            continue;
        }
        let mut map = BTreeMap::new();
        for (d, k) in keys::query(&h.db, user, devices)? {
            map.insert(d, raw(&k)?);
        }
        resp.device_keys.insert(user.clone(), map);
    }
    Ok(RumaResponse(resp))
}

pub async fn claim(
    State(h): State<Arc<Haven>>,
    r: Ruma<claim_keys::v3::Request>,
) -> ApiResult<claim_keys::v3::Response> {
    r.session()?;
    let mut out = BTreeMap::new();
    for (user, devices) in &r.body.one_time_keys {
        if user.server_name() != h.config.server_name {
            continue;
        }
        let mut per_device = BTreeMap::new();
        for (device, alg) in devices {
            if let Some((id, key)) = keys::claim(&h.db, user, device, alg.as_str())? {
                let id = OwnedOneTimeKeyId::try_from(id).map_err(Error::internal)?;
                let key: Raw<OneTimeKey> = raw(&key)?;
                per_device.insert(device.clone(), BTreeMap::from([(id, key)]));
            }
        }
        if !per_device.is_empty() {
            out.insert(user.clone(), per_device);
        }
    }
    h.db.durable().await?;
    Ok(RumaResponse(claim_keys::v3::Response::new(out)))
}

pub async fn changes(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_key_changes::v3::Request>,
) -> ApiResult<get_key_changes::v3::Response> {
    let user = r.user()?;
    let from = parse_token(&r.body.from)?;
    let to = parse_token(&r.body.to)?;
    let (changed, left) = keys::changes(&h.rooms, &h.db, user, from, to)?;
    Ok(RumaResponse(get_key_changes::v3::Response::new(
        changed, left,
    )))
}
