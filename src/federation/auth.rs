//! Verifying the `X-Matrix` signature of an incoming federation request.

use axum::http::StatusCode;
use ruma::{api::federation::authentication::XMatrix, signatures::PublicKeyMap, OwnedServerName};

use crate::{
    error::{ErrCode, Error, Result},
    util::now_ms,
    Haven,
};

fn unauthorized(message: impl Into<String>) -> Error {
    Error::new(StatusCode::UNAUTHORIZED, ErrCode::Unauthorized, message)
}

/// The origin server of a signed request, once its signature checks out against the origin's
/// current keys.
pub async fn verify_request(h: &Haven, req: &http::Request<&[u8]>) -> Result<OwnedServerName> {
    let x = XMatrix::extract_from_http_headers(req.headers())
        .map_err(|e| unauthorized(format!("Missing or malformed X-Matrix authorization: {e}")))?;
    let ours = &h.key.server_name;
    if x.destination.as_deref().is_some_and(|d| d != ours) {
        return Err(unauthorized("The request is meant for another server"));
    }
    if x.origin == *ours {
        return Err(unauthorized(
            "Requests cannot come from this server's own name",
        ));
    }
    // A server this one stopped trying (it was down) reaches us signing with a key not known
    // here (a rotated one): it is up again, so its key document may be fetched.
    if h.federation.backing_off(&x.origin)
        && !crate::federation::keys::knows(h, &x.origin, x.key.as_str())?
    {
        h.federation.forgive(&x.origin);
    }
    let keys =
        crate::federation::keys::verify_keys(h, &x.origin, &[x.key.to_string()], now_ms()).await?;
    if !keys.contains_key(x.key.as_str()) {
        return Err(unauthorized(format!(
            "Unknown key {} of {}",
            x.key, x.origin
        )));
    }
    let mut map = PublicKeyMap::new();
    map.insert(x.origin.to_string(), keys);
    x.verify_http_request(req, ours, &map)
        .map_err(|e| unauthorized(format!("Bad X-Matrix signature: {e}")))?;
    // The server is up: stop backing off from it and send what waits for it.
    if h.federation.backing_off(&x.origin) {
        h.federation.forgive(&x.origin);
        h.rooms.outbox.server_up(x.origin.clone());
    }
    Ok(x.origin)
}
