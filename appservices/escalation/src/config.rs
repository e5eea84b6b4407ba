//! The handler's own settings: the `[escalation]` table of its TOML file (the rest is the
//! appservice runtime's). Secrets come from the environment, never the file.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::risk::Lexicon;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscConfig {
    pub programs: Vec<Program>,
    pub affiliates: Vec<Affiliate>,
    /// Phrases that raise a conversation's risk (built-in defaults when absent).
    pub risk: Option<Lexicon>,
    /// The emergency-services webhook escalations are sent to; its signing secret is
    /// `ESCALATION_EMERGENCY_SECRET`.
    pub emergency: Option<Endpoint>,
    /// Receivers of lifecycle events; each one's secret is
    /// `ESCALATION_SUBSCRIBER_<ID>_SECRET` (upper case, `-` as `_`).
    pub subscribers: Vec<Subscriber>,
    /// The intake bot's model backend for transfer summaries (offline summariser otherwise).
    pub model: Option<intake_bot::config::ModelSection>,
    /// Also asks the model to assess texters' messages the lexicon finds nothing alarming in.
    pub risk_model: bool,
    /// How often the retention sweep runs (hours); 0 turns it off.
    pub retention_interval_h: u64,
    /// Whether the sweep purges (true) or only reports what it would purge.
    pub retention_purge: bool,
    /// How long after a survey question the texter's message still counts as its answer; a
    /// later one ends the survey (default 900).
    pub survey_answer_window_s: u64,
    /// Tries of a webhook (the emergency call included) before it is given up on and, for
    /// the emergency call, the responder and the supervisors are told (default 8).
    pub webhook_max_attempts: u32,
    /// The first wait between tries, doubling each time (default 500 ms: 8 tries take about
    /// two minutes).
    pub webhook_first_retry_ms: u64,
}

impl Default for EscConfig {
    fn default() -> Self {
        Self {
            programs: Vec::new(),
            affiliates: Vec::new(),
            risk: None,
            emergency: None,
            subscribers: Vec::new(),
            model: None,
            risk_model: false,
            retention_interval_h: 0,
            retention_purge: false,
            survey_answer_window_s: 900,
            webhook_max_attempts: 8,
            webhook_first_retry_ms: 500,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    pub id: String,
    pub url: String,
    /// Event names to send (all when empty).
    #[serde(default)]
    pub events: Vec<String>,
}

impl Subscriber {
    pub fn secret_env(&self) -> String {
        format!(
            "ESCALATION_SUBSCRIBER_{}_SECRET",
            self.id.to_uppercase().replace('-', "_")
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Affiliate {
    pub id: String,
    /// Closed conversations older than this many days are purged.
    pub retention_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// The SMS bridge's program ID (in the conversation state event).
    pub id: String,
    pub name: String,
    pub affiliate: String,
    /// Where responders see the waiting conversations and take them (`!next`, `!claim`):
    /// an alias (created by the handler when missing) or a room ID.
    pub queue_room: String,
    /// Alerts, escalations and supervisor commands.
    pub supervisor_room: String,
    /// Staff-only notes (`!note`); the supervisor room when absent.
    #[serde(default)]
    pub staff_room: Option<String>,
    #[serde(default)]
    pub responders: Vec<String>,
    #[serde(default)]
    pub supervisors: Vec<String>,
    #[serde(default)]
    pub admins: Vec<String>,
    /// Supervisors who are DMed about escalations.
    #[serde(default)]
    pub on_call: Vec<String>,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Waiting longer than this expires a queued conversation.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout_s: u64,
    /// Target from assignment to the responder's first message.
    #[serde(default = "default_first_response")]
    pub first_response_target_s: u64,
    /// Target from a texter's message to the next responder message.
    #[serde(default = "default_next_response")]
    pub next_response_target_s: u64,
    #[serde(default)]
    pub canned: BTreeMap<String, String>,
    /// Asked while the texter waits in the queue.
    #[serde(default)]
    pub entry_survey: Vec<String>,
    /// Asked at wrap-up.
    #[serde(default)]
    pub exit_survey: Vec<String>,
    #[serde(default = "default_expiry_message")]
    pub expiry_message: String,
    #[serde(default = "default_followup_message")]
    pub followup_message: String,
}

fn default_max_concurrent() -> usize {
    3
}
fn default_queue_timeout() -> u64 {
    1800
}
fn default_first_response() -> u64 {
    120
}
fn default_next_response() -> u64 {
    300
}
fn default_expiry_message() -> String {
    "We're sorry: no one was free to answer in time. Please text us again whenever you need to."
        .into()
}
fn default_followup_message() -> String {
    "Hi, it's the support team checking in as promised. How are you doing?".into()
}

/// What a user may do in a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Responder,
    Supervisor,
    Admin,
}

impl Program {
    /// The user's highest role here, if any.
    pub fn role(&self, user: &str) -> Option<Role> {
        let has = |list: &[String]| list.iter().any(|u| u == user);
        if has(&self.admins) {
            Some(Role::Admin)
        } else if has(&self.supervisors) || has(&self.on_call) {
            Some(Role::Supervisor)
        } else if has(&self.responders) {
            Some(Role::Responder)
        } else {
            None
        }
    }

    pub fn staff_room(&self) -> &str {
        self.staff_room.as_deref().unwrap_or(&self.supervisor_room)
    }

    /// Everyone with a role, for inviting into the program's rooms.
    pub fn staff(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .responders
            .iter()
            .chain(&self.supervisors)
            .chain(&self.admins)
            .chain(&self.on_call)
            .map(String::as_str)
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

impl EscConfig {
    pub fn program(&self, id: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.id == id)
    }

    pub fn retention_days(&self, affiliate: &str) -> Option<u64> {
        self.affiliates
            .iter()
            .find(|a| a.id == affiliate)
            .map(|a| a.retention_days)
    }

    /// Problems a running handler would trip over, named by key.
    pub fn validate(&self) -> Result<(), String> {
        for (i, p) in self.programs.iter().enumerate() {
            let k = |f: &str| format!("[[escalation.programs]] #{i} ({}) {f}", p.id);
            if self.programs.iter().filter(|q| q.id == p.id).count() > 1 {
                return Err(k("id: duplicated"));
            }
            if !self.affiliates.iter().any(|a| a.id == p.affiliate) {
                return Err(k("affiliate: not listed under [[escalation.affiliates]]"));
            }
            for r in [&p.queue_room, &p.supervisor_room] {
                if !(r.starts_with('#') || r.starts_with('!')) || !r.contains(':') {
                    return Err(k(&format!("{r}: not a room alias or ID")));
                }
            }
            for u in p.staff() {
                if ruma::UserId::parse(u).is_err() {
                    return Err(k(&format!("{u}: not a user ID")));
                }
            }
            if p.max_concurrent == 0 {
                return Err(k("max_concurrent: must be at least 1"));
            }
        }
        if self.risk_model && self.model.is_none() {
            return Err("[escalation] risk_model: needs [escalation.model]".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_parse_validate_and_give_roles() {
        let c: EscConfig = toml::from_str(
            r##"
[[affiliates]]
id = "riverside"
retention_days = 30

[[programs]]
id = "crisis"
name = "Crisis line"
affiliate = "riverside"
queue_room = "#crisis-queue:hs"
supervisor_room = "#crisis-sup:hs"
responders = ["@ann:hs"]
supervisors = ["@sue:hs"]
admins = ["@ada:hs"]
canned = { hello = "Hi, I'm here." }
"##,
        )
        .unwrap();
        c.validate().unwrap();
        let p = c.program("crisis").unwrap();
        assert_eq!(p.role("@ann:hs"), Some(Role::Responder));
        assert_eq!(p.role("@sue:hs"), Some(Role::Supervisor));
        assert_eq!(p.role("@ada:hs"), Some(Role::Admin));
        assert_eq!(p.role("@x:hs"), None);
        assert_eq!(p.staff_room(), "#crisis-sup:hs");
        assert_eq!((p.max_concurrent, p.queue_timeout_s), (3, 1800));
        assert_eq!(c.retention_days("riverside"), Some(30));
        let mut bad = c.clone();
        bad.programs[0].affiliate = "nobody".into();
        assert!(bad.validate().unwrap_err().contains("affiliate"));
        assert!(toml::from_str::<EscConfig>("[[programs]]\nid = 1").is_err());
    }
}
