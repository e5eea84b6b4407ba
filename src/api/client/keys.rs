//! End-to-end encryption key endpoints: upload, query, claim, changes.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::client::keys::{
        claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
    },
    encryption::OneTimeKey,
    serde::Raw,
    OneTimeKeyAlgorithm, OwnedOneTimeKeyId, UInt,
};
use serde_json::Value;

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    events::client::raw,
    federation::devices,
    storage::Json,
    sync::parse_token,
    users::{cross_signing, keys},
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
    let requester = &r.session()?.user_id;
    let users = &r.body.device_keys;
    let local = devices::local_keys(&h, users, Some(requester))?;
    let (remote, failures) = devices::remote_keys(&h, users).await;
    let mut resp = get_keys::v3::Response::new();
    for answer in std::iter::once(&local).chain(remote.iter()) {
        // Only the users asked about (each server's answer holds its own users only).
        let own = |u: &str| ruma::UserId::parse(u).is_ok_and(|u| users.contains_key(&u));
        for (u, devs) in answer["device_keys"].as_object().into_iter().flatten() {
            let Ok(user) = ruma::UserId::parse(u) else {
                continue;
            };
            if !own(u) {
                continue;
            }
            let mut map = BTreeMap::new();
            for (d, k) in devs.as_object().into_iter().flatten() {
                map.insert(ruma::OwnedDeviceId::from(d.as_str()), raw(k)?);
            }
            resp.device_keys.insert(user, map);
        }
        for (field, out) in [
            ("master_keys", &mut resp.master_keys),
            ("self_signing_keys", &mut resp.self_signing_keys),
            ("user_signing_keys", &mut resp.user_signing_keys),
        ] {
            for (u, k) in answer[field].as_object().into_iter().flatten() {
                let Ok(user) = ruma::UserId::parse(u) else {
                    continue;
                };
                if own(u) && (field != "user_signing_keys" || user == *requester) {
                    out.insert(user, raw(k)?);
                }
            }
        }
    }
    resp.failures = failures;
    Ok(RumaResponse(resp))
}

pub async fn claim(
    State(h): State<Arc<Haven>>,
    r: Ruma<claim_keys::v3::Request>,
) -> ApiResult<claim_keys::v3::Response> {
    r.session()?;
    let mut out = BTreeMap::new();
    let wanted: BTreeMap<_, BTreeMap<_, String>> = r
        .body
        .one_time_keys
        .iter()
        .map(|(u, d)| {
            let d = d.iter().map(|(d, a)| (d.clone(), a.to_string())).collect();
            (u.clone(), d)
        })
        .collect();
    let (remote, failures) = devices::claim_remote(&h, &wanted).await;
    for answer in &remote {
        for (u, devs) in answer["one_time_keys"].as_object().into_iter().flatten() {
            let Ok(user) = ruma::UserId::parse(u) else {
                continue;
            };
            if !wanted.contains_key(&user) {
                continue;
            }
            let mut per_device = BTreeMap::new();
            for (d, keys) in devs.as_object().into_iter().flatten() {
                let mut map = BTreeMap::new();
                for (id, k) in keys.as_object().into_iter().flatten() {
                    if let Ok(id) = OwnedOneTimeKeyId::try_from(id.as_str()) {
                        map.insert(id, raw::<OneTimeKey>(k)?);
                    }
                }
                per_device.insert(ruma::OwnedDeviceId::from(d.as_str()), map);
            }
            out.insert(user, per_device);
        }
    }
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
    let mut resp = claim_keys::v3::Response::new(out);
    resp.failures = failures;
    Ok(RumaResponse(resp))
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

/// `POST /keys/device_signing/upload`. Replacing an existing master key takes the password
/// (user-interactive auth); the first upload, or the same keys again, does not.
pub async fn upload_signing_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<upload_signing_keys::v3::Request>,
) -> ApiResult<upload_signing_keys::v3::Response> {
    let user = r.user()?.clone();
    let b = &r.body;
    let new: Vec<(&str, Value)> = [
        ("master", &b.master_key),
        ("self_signing", &b.self_signing_key),
        ("user_signing", &b.user_signing_key),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .map(|(k, v)| to_value(v).map(|v| (k, v)))
    .collect::<Result<_, _>>()?;
    for (_, key) in &new {
        if key["user_id"] != user.as_str() {
            return Err(Error::invalid_param(
                "a cross-signing key must be for the uploading user",
            ));
        }
    }
    if new.is_empty() {
        // Nothing to store: Element sends `{}` first to learn whether UIA will be needed;
        // nothing new needs none (as Synapse answers).
        return Ok(RumaResponse(upload_signing_keys::v3::Response::new()));
    }
    let existing = cross_signing::get(&h.db, &user, "master")?;
    let unchanged = new
        .iter()
        .all(|(k, v)| cross_signing::get(&h.db, &user, k).ok().flatten().as_ref() == Some(v));
    if existing.is_some() && !unchanged {
        crate::api::client::account::password_uia(&h, &r).await?;
    }
    if existing.is_none() && !new.iter().any(|(k, _)| *k == "master") {
        return Err(Error::new(
            axum::http::StatusCode::BAD_REQUEST,
            crate::error::ErrCode::MissingParam,
            "No master signing key is available: the first upload must include one",
        ));
    }
    for (kind, key) in new {
        cross_signing::set(&h.db, &user, kind, key)?;
    }
    keys::mark_changed(&h.db, &h.stream, &user).await?;
    h.db.durable().await?;
    Ok(RumaResponse(upload_signing_keys::v3::Response::new()))
}

/// `POST /keys/signatures/upload`: the uploader's signatures of devices and keys (their own
/// devices and cross-signing keys, or other users' master keys with their user-signing key).
pub async fn upload_signatures(
    State(h): State<Arc<Haven>>,
    r: Ruma<upload_signatures::v3::Request>,
) -> ApiResult<upload_signatures::v3::Response> {
    let signer = r.user()?.clone();
    let mut resp = upload_signatures::v3::Response::new();
    let mut changed = std::collections::BTreeSet::new();
    for (target, signed) in &r.body.signed_keys {
        for (key_id, object) in signed.iter() {
            let object: Value =
                serde_json::from_str(object.get()).map_err(|e| Error::bad_json(e.to_string()))?;
            let failure = |why: &str| -> Result<upload_signatures::v3::Failure, Error> {
                serde_json::from_value(
                    serde_json::json!({"errcode": "M_INVALID_SIGNATURE", "error": why}),
                )
                .map_err(Error::internal)
            };
            let mut stored = false;
            // A device of the target user…
            let device_key = (target.to_string(), key_id.to_owned());
            if let Some(Json(mut keys)) = h.db.t.device_keys.get(&device_key)? {
                if target == &signer && cross_signing::merge_signatures(&mut keys, &object, &signer)
                {
                    h.db.t.device_keys.put(&device_key, &Json(keys))?;
                    stored = true;
                }
            }
            // …or one of their cross-signing keys, by its public key.
            if !stored {
                for kind in cross_signing::KINDS {
                    let Some(mut key) = cross_signing::get(&h.db, target, kind)? else {
                        continue;
                    };
                    if cross_signing::public_key(&key).as_deref() != Some(key_id) {
                        continue;
                    }
                    // Others may sign only a user's master key (with their user-signing key).
                    if (target == &signer || kind == "master")
                        && cross_signing::merge_signatures(&mut key, &object, &signer)
                    {
                        cross_signing::set(&h.db, target, kind, key)?;
                        stored = true;
                    }
                    break;
                }
            }
            if stored {
                changed.insert(target.clone());
            } else {
                resp.failures.entry(target.clone()).or_default().insert(
                    key_id.to_owned(),
                    failure("unknown key, or not the signer's to sign")?,
                );
            }
        }
    }
    for user in changed {
        keys::mark_changed(&h.db, &h.stream, &user).await?;
    }
    h.db.durable().await?;
    Ok(RumaResponse(resp))
}
