//! Questions asked of other servers on behalf of local clients.

use ruma::UserId;

use crate::{error::Result, Haven};

/// A remote user's display name and avatar, from their server.
pub async fn profile(h: &Haven, user: &UserId) -> Result<(Option<String>, Option<String>)> {
    let path = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        crate::util::encode(user.as_str())
    );
    let v = h.federation.get(h, user.server_name(), &path).await?;
    let field = |k: &str| v[k].as_str().map(str::to_owned);
    Ok((field("displayname"), field("avatar_url")))
}
