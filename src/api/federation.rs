//! The server-server API's handlers (logic in `crate::federation`).

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::federation::{
        discovery::{
            get_remote_server_keys, get_remote_server_keys_batch, get_server_keys,
            get_server_version,
        },
        query::get_profile_information,
    },
    serde::Raw,
    OwnedServerName,
};
use serde_json::json;

use super::extract::{ApiResult, Ruma, RumaResponse};
use crate::{
    error::{Error, Result},
    federation::keys,
    util::now_ms,
    Haven,
};

fn raw_keys<T>(docs: Vec<serde_json::Value>) -> Result<Vec<Raw<T>>> {
    docs.iter().map(crate::events::client::raw).collect()
}

pub async fn server_keys(
    State(h): State<Arc<Haven>>,
    _r: Ruma<get_server_keys::v2::Request>,
) -> ApiResult<get_server_keys::v2::Response> {
    let doc = keys::own_document(&h)?;
    Ok(RumaResponse(get_server_keys::v2::Response::new(
        crate::events::client::raw(&doc)?,
    )))
}

pub async fn query_keys_batch(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_remote_server_keys_batch::v2::Request>,
) -> ApiResult<get_remote_server_keys_batch::v2::Response> {
    let asked: BTreeMap<OwnedServerName, u64> = r
        .body
        .server_keys
        .iter()
        .map(|(server, ids)| {
            let min = ids
                .values()
                .filter_map(|c| c.minimum_valid_until_ts)
                .map(|t| u64::from(t.get()))
                .max()
                .unwrap_or(0);
            (server.clone(), min)
        })
        .collect();
    let docs = keys::notary(&h, &asked).await?;
    Ok(RumaResponse(
        get_remote_server_keys_batch::v2::Response::new(raw_keys(docs)?),
    ))
}

pub async fn query_keys(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_remote_server_keys::v2::Request>,
) -> ApiResult<get_remote_server_keys::v2::Response> {
    let min = u64::from(r.body.minimum_valid_until_ts.get()).max(now_ms());
    let asked = BTreeMap::from([(r.body.server_name.clone(), min)]);
    let docs = keys::notary(&h, &asked).await?;
    Ok(RumaResponse(get_remote_server_keys::v2::Response::new(
        raw_keys(docs)?,
    )))
}

pub async fn version(
    _: State<Arc<Haven>>,
    _r: Ruma<get_server_version::v1::Request>,
) -> ApiResult<get_server_version::v1::Response> {
    let mut server = get_server_version::v1::Server::new();
    server.name = Some("Haven".into());
    server.version = Some(env!("CARGO_PKG_VERSION").into());
    let mut resp = get_server_version::v1::Response::new();
    resp.server = Some(server);
    Ok(RumaResponse(resp))
}

/// A local user's profile, for another server.
pub async fn profile(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_profile_information::v1::Request>,
) -> ApiResult<get_profile_information::v1::Response> {
    let user = &r.body.user_id;
    if user.server_name() != h.key.server_name {
        return Err(Error::invalid_param("The user is not on this server"));
    }
    let u = h
        .users
        .get(user)?
        .filter(|u| !u.deactivated)
        .ok_or_else(|| Error::not_found("Profile not found"))?;
    let field = r.body.field.as_ref().map(|f| f.as_str().to_owned());
    let wants = |name: &str| field.as_deref().is_none_or(|f| f == name);
    let mut p = ruma::profile::UserProfile::new();
    if let Some(d) = u.displayname.filter(|_| wants("displayname")) {
        p.set("displayname".into(), json!(d));
    }
    if let Some(a) = u.avatar_url.filter(|_| wants("avatar_url")) {
        p.set("avatar_url".into(), json!(a));
    }
    let mut resp = get_profile_information::v1::Response::new();
    resp.data = p;
    Ok(RumaResponse(resp))
}
