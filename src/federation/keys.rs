//! Server signing keys: this server's key document (`/_matrix/key/v2/server`), other servers'
//! keys fetched from them (or from a notary) and cached until they expire, and the notary
//! answers (`/_matrix/key/v2/query`) that pass cached documents on with our signature added.

use std::collections::BTreeMap;

use ruma::{serde::Base64, CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    error::{Error, Result},
    storage::Json,
    util::now_ms,
    Haven,
};

/// How long our own key document says it is valid.
const OWN_VALIDITY_MS: u64 = 24 * 3600 * 1000;
/// Other servers' documents are trusted at most this long ahead (the spec's 7-day cap).
const MAX_VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;

/// One verify key of a server, as known here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KnownKey {
    /// Unpadded standard base64 of the ed25519 public key.
    pub key: String,
    /// Signatures made by this key are accepted for events up to this time; for a current key
    /// also when the cached copy must be refreshed.
    pub valid_until_ts: u64,
}

/// This server's key document, self-signed.
pub fn own_document(h: &Haven) -> Result<Value> {
    let k = &h.key;
    let mut doc = json!({
        "server_name": k.server_name,
        "valid_until_ts": now_ms() + OWN_VALIDITY_MS,
        "verify_keys": { k.key_id(): { "key": k.public_key_base64() } },
        "old_verify_keys": k.old_keys,
    });
    sign(h, &mut doc)?;
    Ok(doc)
}

/// Adds this server's signature to a JSON object (`signatures` kept).
pub fn sign(h: &Haven, v: &mut Value) -> Result<()> {
    let mut obj: CanonicalJsonObject =
        serde_json::from_value(v.clone()).map_err(Error::internal)?;
    ruma::signatures::sign_json(h.key.server_name.as_str(), &h.key.pair, &mut obj)
        .map_err(Error::internal)?;
    *v = serde_json::to_value(obj).map_err(Error::internal)?;
    Ok(())
}

/// The verify keys of `server` valid until at least `valid_at` (ms), fetching its key document
/// (directly, then from the notaries) when the cache lacks one of `wanted` or it has expired.
pub async fn verify_keys(
    h: &Haven,
    server: &ServerName,
    wanted: &[String],
    valid_at: u64,
) -> Result<BTreeMap<String, Base64>> {
    if server == h.key.server_name {
        let key = Base64::parse(h.key.public_key_base64()).map_err(Error::internal)?;
        return Ok(BTreeMap::from([(h.key.key_id(), key)]));
    }
    let cached = cached(h, server)?;
    let complete = wanted
        .iter()
        .all(|id| cached.get(id).is_some_and(|k| k.valid_until_ts >= valid_at));
    if !complete {
        if let Err(e) = refresh(h, server).await {
            tracing::info!(%server, error = %e, "could not fetch the server's keys");
        }
    }
    cached_valid(h, server, valid_at)
}

/// Whether `key_id` of `server` is known here and still valid.
pub fn knows(h: &Haven, server: &ServerName, key_id: &str) -> Result<bool> {
    Ok(h.db
        .t
        .server_keys
        .get(&(server.to_string(), key_id.to_owned()))?
        .is_some_and(|Json(k)| k.valid_until_ts >= now_ms()))
}

fn cached(h: &Haven, server: &ServerName) -> Result<BTreeMap<String, KnownKey>> {
    let mut out = BTreeMap::new();
    for item in
        h.db.t
            .server_keys
            .scan_prefix(&crate::storage::prefix(server.as_str()))
    {
        let ((_, id), Json(k)) = item?;
        out.insert(id, k);
    }
    Ok(out)
}

fn cached_valid(h: &Haven, server: &ServerName, valid_at: u64) -> Result<BTreeMap<String, Base64>> {
    Ok(cached(h, server)?
        .into_iter()
        .filter(|(_, k)| k.valid_until_ts >= valid_at)
        .filter_map(|(id, k)| Some((id, Base64::parse(&k.key).ok()?)))
        .collect())
}

/// Fetches `server`'s key document: from the server, else from each trusted notary.
async fn refresh(h: &Haven, server: &ServerName) -> Result<()> {
    let direct = async {
        let doc = h
            .federation
            .get_unsigned(h, server, "/_matrix/key/v2/server")
            .await?;
        accept_document(h, server, &doc, None)
    };
    let first = match direct.await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    for notary in &h.config.federation.trusted_key_servers {
        if notary == server {
            continue;
        }
        let body = json!({ "server_keys": { server.as_str(): {} } });
        let resp = h
            .federation
            .post_unsigned(h, notary, "/_matrix/key/v2/query", &body)
            .await;
        let Ok(resp) = resp else { continue };
        let docs = resp["server_keys"].as_array().cloned().unwrap_or_default();
        for doc in docs {
            if doc["server_name"] == server.as_str()
                && accept_document(h, server, &doc, Some(notary)).is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(first)
}

/// Checks a key document (self-signed by `server`, and by the notary when one passed it on)
/// and caches its keys.
pub fn accept_document(
    h: &Haven,
    server: &ServerName,
    doc: &Value,
    notary: Option<&OwnedServerName>,
) -> Result<()> {
    let bad = |m: &str| Error::forbidden(format!("key document of {server}: {m}"));
    if doc["server_name"] != server.as_str() {
        return Err(bad("names another server"));
    }
    let valid_until = doc["valid_until_ts"]
        .as_u64()
        .ok_or_else(|| bad("no valid_until_ts"))?;
    let mut keys: BTreeMap<String, KnownKey> = BTreeMap::new();
    let capped = valid_until.min(now_ms() + MAX_VALIDITY_MS);
    for (id, k) in doc["verify_keys"].as_object().into_iter().flatten() {
        let key = k["key"]
            .as_str()
            .ok_or_else(|| bad("verify key without key"))?;
        keys.insert(
            id.clone(),
            KnownKey {
                key: key.to_owned(),
                valid_until_ts: capped,
            },
        );
    }
    // Self-signature, with the keys it lists.
    let obj: CanonicalJsonObject =
        serde_json::from_value(doc.clone()).map_err(|_| bad("not canonical JSON"))?;
    let mut map = ruma::signatures::PublicKeyMap::new();
    map.insert(
        server.to_string(),
        keys.iter()
            .filter_map(|(id, k)| Some((id.clone(), Base64::parse(&k.key).ok()?)))
            .collect(),
    );
    verify_signed_by(&obj, server.as_str(), &map).map_err(|_| bad("bad self-signature"))?;
    if let Some(n) = notary {
        // The notary's own keys must be known (fetched directly from it) to trust its copy.
        let n_keys = cached_valid(h, n, now_ms())?;
        let mut map = ruma::signatures::PublicKeyMap::new();
        map.insert(n.to_string(), n_keys);
        verify_signed_by(&obj, n.as_str(), &map).map_err(|_| bad("bad notary signature"))?;
    }
    for (id, k) in doc["old_verify_keys"].as_object().into_iter().flatten() {
        if let (Some(key), Some(expired)) = (k["key"].as_str(), k["expired_ts"].as_u64()) {
            keys.entry(id.clone()).or_insert(KnownKey {
                key: key.to_owned(),
                valid_until_ts: expired,
            });
        }
    }
    for (id, k) in keys {
        h.db.t
            .server_keys
            .put(&(server.to_string(), id), &Json(k))?;
    }
    h.db.t
        .server_key_docs
        .put(&server.to_string(), &Json(doc.clone()))?;
    Ok(())
}

/// Verifies the signatures of `entity` (only) on a JSON object.
fn verify_signed_by(
    obj: &CanonicalJsonObject,
    entity: &str,
    keys: &ruma::signatures::PublicKeyMap,
) -> Result<(), ()> {
    let mut only = obj.clone();
    if let Some(CanonicalJsonValue::Object(sigs)) = only.get_mut("signatures") {
        sigs.retain(|k, _| k == entity);
        if sigs.is_empty() {
            return Err(());
        }
    } else {
        return Err(());
    }
    ruma::signatures::verify_json(keys, &only).map_err(|_| ())
}

/// Most servers one notary request may name: each can cost this server a fetch.
pub const MAX_NOTARY_SERVERS: usize = 20;
/// How long one notary request may spend fetching keys, all servers together; servers that
/// have not answered by then are left out of the answer.
const NOTARY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Notary: the documents of the servers asked for (ours, or cached and still valid at
/// `minimum_valid_until_ts`, fetching those that are not, at once and within a time budget),
/// each with our signature added. More than [`MAX_NOTARY_SERVERS`] is refused.
pub async fn notary(h: &Haven, asked: &BTreeMap<OwnedServerName, u64>) -> Result<Vec<Value>> {
    if asked.len() > MAX_NOTARY_SERVERS {
        return Err(Error::invalid_param(format!(
            "At most {MAX_NOTARY_SERVERS} servers can be asked about at once"
        )));
    }
    let fresh = |server: &OwnedServerName, min_valid: u64| -> Result<Option<Value>> {
        Ok(h.db
            .t
            .server_key_docs
            .get(&server.to_string())?
            .map(|d| d.0)
            .filter(|d| {
                d["valid_until_ts"]
                    .as_u64()
                    .is_some_and(|v| v >= min_valid.max(now_ms()))
            }))
    };
    let mut stale = Vec::new();
    for (server, min_valid) in asked {
        if *server != h.key.server_name && fresh(server, *min_valid)?.is_none() {
            stale.push(server);
        }
    }
    let _ = tokio::time::timeout(
        NOTARY_BUDGET,
        futures::future::join_all(stale.into_iter().map(|s| refresh(h, s))),
    )
    .await;
    let mut out = Vec::new();
    for server in asked.keys() {
        if *server == h.key.server_name {
            out.push(own_document(h)?);
            continue;
        }
        // The newest document known, fresh or not: the asker judges its validity.
        if let Some(Json(mut d)) = h.db.t.server_key_docs.get(&server.to_string())? {
            sign(h, &mut d)?;
            out.push(d);
        }
    }
    Ok(out)
}
