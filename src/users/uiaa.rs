//! User-interactive authentication: the 401 dance that registration, device deletion, password
//! change and deactivation go through.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{OwnedUserId, UserId};
use serde_json::{json, Value};

use super::Users;
use crate::error::{Error, Result};

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

/// Sessions older than this are forgotten.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

struct UiaaSession {
    completed: Vec<String>,
    user: Option<OwnedUserId>,
    created: Instant,
}

#[derive(Default)]
pub struct Uiaa {
    sessions: Mutex<HashMap<String, UiaaSession>>,
}

/// What a stage check needs beyond the submitted `auth` dict.
pub struct StageContext<'a> {
    /// The account being acted on (password stages must authenticate as this user).
    pub user: Option<&'a UserId>,
    /// Registration tokens from the config.
    pub static_tokens: &'a [String],
}

impl Uiaa {
    fn body(
        flows: &[Vec<&str>],
        session: &str,
        completed: &[String],
        error: Option<(&str, &str)>,
    ) -> Value {
        let mut body = json!({
            "flows": flows.iter().map(|f| json!({ "stages": f })).collect::<Vec<_>>(),
            "params": {},
            "session": session,
        });
        if !completed.is_empty() {
            body["completed"] = json!(completed);
        }
        if let Some((code, msg)) = error {
            body["errcode"] = json!(code);
            body["error"] = json!(msg);
        }
        body
    }

    /// Advances UIA with the request's `auth` dict. Returns `Ok(())` once a whole flow is
    /// complete; otherwise the 401 body to send back.
    pub async fn authenticate(
        &self,
        users: &Users,
        auth: Option<&Value>,
        flows: &[Vec<&str>],
        ctx: StageContext<'_>,
    ) -> Result<()> {
        let session_id = auth
            .and_then(|a| a.get("session"))
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        let session_id = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.retain(|_, s| s.created.elapsed() < SESSION_TTL);
            match session_id.filter(|s| sessions.contains_key(s)) {
                Some(s) => s,
                None => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    sessions.insert(
                        id.clone(),
                        UiaaSession {
                            completed: Vec::new(),
                            user: ctx.user.map(ToOwned::to_owned),
                            created: Instant::now(),
                        },
                    );
                    id
                }
            }
        };
        let completed_before = self.completed(&session_id);
        let Some(auth) = auth else {
            return Err(Error::Uiaa(Self::body(
                flows,
                &session_id,
                &completed_before,
                None,
            )));
        };
        let Some(stage) = auth.get("type").and_then(|t| t.as_str()) else {
            // A session id alone: report progress.
            return self.finish_or_continue(flows, &session_id);
        };
        if !flows.iter().any(|f| f.contains(&stage)) {
            let body = Self::body(
                flows,
                &session_id,
                &completed_before,
                Some(("M_UNRECOGNIZED", "Unknown authentication stage")),
            );
            return Err(Error::Uiaa(body));
        }
        let ok = match stage {
            DUMMY => true,
            PASSWORD => {
                let claimed = auth
                    .get("identifier")
                    .and_then(|i| i.get("user"))
                    .or_else(|| auth.get("user"))
                    .and_then(|u| u.as_str());
                let password = auth
                    .get("password")
                    .and_then(|p| p.as_str())
                    .unwrap_or_default();
                match (ctx.user, claimed) {
                    (Some(user), Some(claimed)) => {
                        let matches = claimed == user.as_str() || claimed == user.localpart();
                        matches && users.check_password(user, password).await?
                    }
                    (Some(user), None) => users.check_password(user, password).await?,
                    _ => false,
                }
            }
            REGISTRATION_TOKEN => {
                let token = auth
                    .get("token")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default();
                users.registration_token_valid(token, ctx.static_tokens)?
            }
            _ => false,
        };
        if !ok {
            let body = Self::body(
                flows,
                &session_id,
                &completed_before,
                Some(("M_FORBIDDEN", "Authentication failed")),
            );
            return Err(Error::Uiaa(body));
        }
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = sessions.get_mut(&session_id) {
                if s.user.as_deref() != ctx.user && s.user.is_some() {
                    return Err(Error::forbidden("UIA session belongs to another user"));
                }
                if !s.completed.iter().any(|c| c == stage) {
                    s.completed.push(stage.to_owned());
                }
            }
        }
        self.finish_or_continue(flows, &session_id)
    }

    fn completed(&self, session: &str) -> Vec<String> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(session)
            .map(|s| s.completed.clone())
            .unwrap_or_default()
    }

    fn finish_or_continue(&self, flows: &[Vec<&str>], session: &str) -> Result<()> {
        let completed = self.completed(session);
        if flows
            .iter()
            .any(|f| f.iter().all(|st| completed.iter().any(|c| c == st)))
        {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(session);
            Ok(())
        } else {
            Err(Error::Uiaa(Self::body(flows, session, &completed, None)))
        }
    }
}
