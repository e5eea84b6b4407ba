//! Questions asked of other servers on behalf of local clients.

use ruma::UserId;

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
