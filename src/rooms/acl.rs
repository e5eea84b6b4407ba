//! Server access control lists (`m.room.server_acl`): which servers may take part in a room.

use ruma::{events::StateEventType, RoomId, ServerName};
use serde_json::Value;

use super::Rooms;
use crate::error::Result;

impl Rooms {
    /// Whether the room's `m.room.server_acl` lets `server` take part (send to it, accept
    /// from it).
    pub fn server_allowed(&self, room: &RoomId, server: &ServerName) -> Result<bool> {
        let Some(acl) = self.current_state(room, &StateEventType::RoomServerAcl, "")? else {
            return Ok(true);
        };
        let c = acl.content_value();
        let host = server.host();
        if !c["allow_ip_literals"].as_bool().unwrap_or(true) && server.is_ip_literal() {
            return Ok(false);
        }
        let matches = |list: &Value| {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|glob| glob_match(glob, host))
        };
        if matches(&c["deny"]) {
            return Ok(false);
        }
        Ok(matches(&c["allow"]))
    }
}

/// `*` and `?` globs, case-insensitive (server ACL patterns).
fn glob_match(glob: &str, s: &str) -> bool {
    let (g, s): (Vec<char>, Vec<char>) = (
        glob.to_lowercase().chars().collect(),
        s.to_lowercase().chars().collect(),
    );
    let (mut gi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == s[si]) {
            gi += 1;
            si += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = si;
            gi += 1;
        } else if let Some(st) = star {
            gi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while gi < g.len() && g[gi] == '*' {
        gi += 1;
    }
    gi == g.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn acl_globs() {
        assert!(glob_match("*", "example.org"));
        assert!(glob_match("*.example.org", "a.example.org"));
        assert!(!glob_match("*.example.org", "example.org"));
        assert!(glob_match("ex?mple.org", "EXAMPLE.org"));
        assert!(!glob_match("evil.com", "good.com"));
    }
}
