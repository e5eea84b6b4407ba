//! The bridge's configuration (TOML): where the homeserver and Twilio are, and the affiliates
//! with their programs, numbers and keywords. Errors name the key, like
//! `config key affiliates[0].programs[1].number: ...`.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub bridge: Bridge,
    pub twilio: Twilio,
    #[serde(default)]
    pub pacing: Pacing,
    #[serde(default)]
    pub delivery: Delivery,
    /// Other carriers, reached through a generic JSON webhook.
    #[serde(default)]
    pub partners: Vec<Partner>,
    pub affiliates: Vec<Affiliate>,
}

/// The bridge's own keys, top-level in the file (or in a `[bridge]` table).
const BRIDGE_KEYS: &[&str] = &[
    "homeserver_url",
    "server_name",
    "registration",
    "listen",
    "public_url",
    "state_dir",
    "escalation_bot",
    "intake_bot",
];

/// A partner carrier: texts arrive as signed JSON at `/partner/<id>/sms`, replies are posted
/// as signed JSON to `send_url`. The shared secret comes from the environment variable
/// `SMS_BRIDGE_PARTNER_<ID>_SECRET` (upper case, `-` as `_`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    pub id: String,
    pub send_url: String,
}

impl Partner {
    pub fn secret_env(&self) -> String {
        format!(
            "SMS_BRIDGE_PARTNER_{}_SECRET",
            self.id.to_uppercase().replace('-', "_")
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub homeserver_url: String,
    pub server_name: String,
    /// The appservice registration shared with the homeserver.
    pub registration: PathBuf,
    pub listen: SocketAddr,
    /// The public base URL Twilio calls (webhooks are signed over it).
    pub public_url: String,
    pub state_dir: PathBuf,
    /// Invited into every conversation room (the escalation handler's bot), if set.
    #[serde(default)]
    pub escalation_bot: Option<String>,
    /// Invited into every conversation with power to write its intake summary (the intake
    /// bot asks the program's questions and summarises them for the responder), if set.
    #[serde(default)]
    pub intake_bot: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Twilio {
    /// `https://api.twilio.com` in production; a local double in tests.
    #[serde(default = "default_twilio_base")]
    pub api_base_url: String,
    pub account_sid: String,
    /// An API key SID to authenticate with instead of the account SID (its secret then comes
    /// from the environment instead of the auth token).
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// How long one request to Twilio may take before its outcome counts as unknown.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u32,
}

fn default_twilio_base() -> String {
    "https://api.twilio.com".into()
}

fn default_request_timeout_s() -> u32 {
    30
}

/// How hard the bridge tries to hand a reply to the carrier (see `outbox`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    /// How long after a responder wrote it a reply is still worth sending; the bridge keeps
    /// trying until then. Default: `pacing.validity_period_s`.
    pub give_up_after_s: Option<u32>,
    /// The longest wait between two tries while the carrier cannot be reached (waits start
    /// at 2 s and double).
    pub retry_max_interval_s: u32,
    /// How long after a send whose outcome is unknown (no answer in time) the bridge asks the
    /// carrier whether it went out, before sending it again only if it did not.
    pub check_unknown_after_s: u32,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            give_up_after_s: None,
            retry_max_interval_s: 60,
            check_unknown_after_s: 120,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pacing {
    /// Segments per second per sending number (a US long code manages about one).
    pub segments_per_second: f64,
    /// Seconds Twilio may keep trying to deliver (`ValidityPeriod`).
    pub validity_period_s: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            segments_per_second: 1.0,
            validity_period_s: 14_400,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Affiliate {
    pub id: String,
    pub name: String,
    pub programs: Vec<Program>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub id: String,
    pub name: String,
    /// The number texters write to (E.164), or…
    #[serde(default)]
    pub number: Option<String>,
    /// …a Twilio Messaging Service that sends for it.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Not used: the escalation handler's programs name the queue rooms. Accepted (with a
    /// warning at start) so older settings files still load.
    #[serde(default)]
    pub queue_room: Option<String>,
    pub auto_response: String,
    pub help_text: String,
    /// Opening hours as shown to texters, e.g. "24/7" or "Mon-Fri 9:00-17:00".
    #[serde(default)]
    pub hours: Option<String>,
    /// First words that route a first message here.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The program an unmatched first message to this number goes to.
    #[serde(default)]
    pub default: bool,
    /// `twilio` (default) or the id of a partner.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Matrix users allowed to reveal a texter's number (`!reveal`) for an emergency.
    #[serde(default)]
    pub supervisors: Vec<String>,
}

fn default_provider() -> String {
    "twilio".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("config key {key}: {message}")]
    Key { key: String, message: String },
}

fn key_err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// `+` then 8 to 15 digits.
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

impl Config {
    /// How long a reply is worth trying to send, in milliseconds.
    pub fn give_up_after_ms(&self) -> u64 {
        u64::from(
            self.delivery
                .give_up_after_s
                .unwrap_or(self.pacing.validity_period_s),
        ) * 1000
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// Parses the settings. The bridge's own keys (`homeserver_url`, `listen`, `state_dir` …)
    /// are top-level, as in the other appservices' files; a `[bridge]` table holding them (the
    /// older shape) is read too.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| key_err("(file)", e.message().to_owned()))?;
        let top_level = !doc.contains_key("bridge");
        if top_level {
            let mut bridge = toml::Table::new();
            for key in BRIDGE_KEYS {
                if let Some(v) = doc.remove(*key) {
                    bridge.insert((*key).to_owned(), v);
                }
            }
            doc.insert("bridge".into(), toml::Value::Table(bridge));
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|e| {
                let path = e.path().to_string();
                // Name the key as the file has it.
                let path = match path.strip_prefix("bridge.") {
                    Some(key) if top_level => key.to_owned(),
                    _ if top_level && path == "bridge" => "(top level)".to_owned(),
                    _ => path,
                };
                key_err(path, e.inner().to_string())
            })?;
        config.validate()?;
        if config
            .affiliates
            .iter()
            .flat_map(|a| &a.programs)
            .any(|p| p.queue_room.is_some())
        {
            tracing::warn!("`queue_room` in the bridge's programs is not used (the escalation handler's programs name the queue rooms); remove it");
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.bridge;
        if !(b.public_url.starts_with("https://") || b.public_url.starts_with("http://")) {
            return Err(key_err("bridge.public_url", "must be an http(s) URL"));
        }
        if self.pacing.segments_per_second <= 0.0 {
            return Err(key_err("pacing.segments_per_second", "must be positive"));
        }
        if self.twilio.request_timeout_s == 0 {
            return Err(key_err("twilio.request_timeout_s", "must be positive"));
        }
        if self.delivery.retry_max_interval_s == 0 {
            return Err(key_err("delivery.retry_max_interval_s", "must be positive"));
        }
        if self.affiliates.is_empty() {
            return Err(key_err("affiliates", "at least one affiliate is needed"));
        }
        for (i, p) in self.partners.iter().enumerate() {
            if p.id.is_empty()
                || p.id == "twilio"
                || !p.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(key_err(
                    format!("partners[{i}].id"),
                    "letters, digits and '-', not `twilio`",
                ));
            }
            if !(p.send_url.starts_with("https://") || p.send_url.starts_with("http://")) {
                return Err(key_err(
                    format!("partners[{i}].send_url"),
                    "must be an http(s) URL",
                ));
            }
        }
        let mut program_ids = BTreeMap::new();
        // sender (number or service) -> (has default, keywords)
        let mut senders: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
        for (ai, a) in self.affiliates.iter().enumerate() {
            if a.programs.is_empty() {
                return Err(key_err(
                    format!("affiliates[{ai}].programs"),
                    "at least one program is needed",
                ));
            }
            for (pi, p) in a.programs.iter().enumerate() {
                let k = |f: &str| format!("affiliates[{ai}].programs[{pi}].{f}");
                if program_ids.insert(p.id.clone(), ()).is_some() {
                    return Err(key_err(
                        k("id"),
                        format!("program id `{}` is used twice", p.id),
                    ));
                }
                let sender = match (&p.number, &p.messaging_service_sid) {
                    (Some(n), None) if is_e164(n) => n.clone(),
                    (Some(_), None) => {
                        return Err(key_err(k("number"), "must be E.164, like +15551234567"))
                    }
                    (None, Some(s)) if s.starts_with("MG") => s.clone(),
                    (None, Some(_)) => {
                        return Err(key_err(k("messaging_service_sid"), "must start with MG"))
                    }
                    _ => {
                        return Err(key_err(
                            k("number"),
                            "set exactly one of number and messaging_service_sid",
                        ))
                    }
                };
                if p.provider != "twilio" && !self.partners.iter().any(|x| x.id == p.provider) {
                    return Err(key_err(
                        k("provider"),
                        format!("`{}` is neither twilio nor a partner id", p.provider),
                    ));
                }
                if p.auto_response.trim().is_empty() {
                    return Err(key_err(k("auto_response"), "must not be empty"));
                }
                let entry = senders.entry(sender).or_default();
                if p.default {
                    entry.0 += 1;
                }
                for kw in &p.keywords {
                    let kw = kw.trim().to_uppercase();
                    if kw.is_empty() || RESERVED_KEYWORDS.contains(&kw.as_str()) {
                        return Err(key_err(
                            k("keywords"),
                            format!("`{kw}` is empty or a compliance keyword"),
                        ));
                    }
                    if entry.1.contains(&kw) {
                        return Err(key_err(
                            k("keywords"),
                            format!("`{kw}` routes two programs on the same number"),
                        ));
                    }
                    entry.1.push(kw);
                }
            }
        }
        for (ai, a) in self.affiliates.iter().enumerate() {
            for (pi, p) in a.programs.iter().enumerate() {
                let sender = p
                    .number
                    .clone()
                    .or(p.messaging_service_sid.clone())
                    .unwrap_or_default();
                let count = self.programs_for(&sender).count();
                if senders[&sender].0 != 1 && count > 1 {
                    return Err(key_err(
                        format!("affiliates[{ai}].programs[{pi}].default"),
                        format!("{sender} has {count} programs: mark exactly one as default"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Programs answering on `sender` (a number or a messaging service).
    pub fn programs_for<'a>(
        &'a self,
        sender: &'a str,
    ) -> impl Iterator<Item = (&'a Affiliate, &'a Program)> + 'a {
        self.affiliates
            .iter()
            .flat_map(|a| a.programs.iter().map(move |p| (a, p)))
            .filter(move |(_, p)| {
                p.number.as_deref() == Some(sender)
                    || p.messaging_service_sid.as_deref() == Some(sender)
            })
    }

    /// The program a texter's first message to `to` goes to: the one whose keyword starts
    /// the message (compared as `keywords` says: case, punctuation and look-alikes aside),
    /// else the number's default (or only) program.
    pub fn route<'a>(
        &'a self,
        to: &'a str,
        first_message: &str,
    ) -> Option<(&'a Affiliate, &'a Program)> {
        let first = crate::keywords::words(first_message);
        let mut default = None;
        let mut count = 0;
        for (a, p) in self.programs_for(to) {
            count += 1;
            if p.keywords
                .iter()
                .any(|k| crate::keywords::starts_with(&first, k))
            {
                return Some((a, p));
            }
            if p.default || default.is_none() {
                default = Some((a, p));
            }
        }
        if count == 1 || default.is_some_and(|(_, p)| p.default) {
            default
        } else {
            None
        }
    }
}

/// Keywords carriers and Twilio reserve for opt-out and help; never usable for routing.
pub const RESERVED_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "START",
    "UNSTOP",
    "YES",
    "HELP",
    "INFO",
    "DELETE",
];

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r##"
[bridge]
homeserver_url = "http://127.0.0.1:8008"
server_name = "localhost:8008"
registration = "reg.yaml"
listen = "127.0.0.1:9101"
public_url = "https://sms.example.org"
state_dir = "/tmp/sms"

[twilio]
account_sid = "AC123"

[[affiliates]]
id = "riverside"
name = "Riverside"

[[affiliates.programs]]
id = "crisis"
name = "Crisis line"
number = "+15550001111"
queue_room = "#crisis-queue:localhost:8008"
auto_response = "Thanks for texting. A counselor will be with you soon."
help_text = "Text STOP to stop."
default = true

[[affiliates.programs]]
id = "housing"
name = "Housing help"
number = "+15550001111"
queue_room = "#housing-queue:localhost:8008"
auto_response = "Housing help here."
help_text = "Housing help."
keywords = ["HOUSING", "shelter"]
"##;

    #[test]
    fn the_bridge_keys_may_be_top_level_like_the_other_appservices() {
        let top = BASE.replacen("[bridge]\n", "", 1);
        assert!(!top.contains("[bridge]"));
        let c = Config::parse(&top).unwrap();
        assert_eq!(c.bridge.listen.port(), 9101);
        let e = Config::parse(&top.replace("listen = \"127.0.0.1:9101\"", "listen = \"nowhere\""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config key listen:"), "{e}");
    }

    #[test]
    fn routes_by_keyword_then_default() {
        let c = Config::parse(BASE).unwrap();
        assert_eq!(
            c.route("+15550001111", "housing please").unwrap().1.id,
            "housing"
        );
        assert_eq!(c.route("+15550001111", "Shelter").unwrap().1.id, "housing");
        assert_eq!(
            c.route("+15550001111", "I need to talk").unwrap().1.id,
            "crisis"
        );
        assert_eq!(c.route("+15550001111", "housingX").unwrap().1.id, "crisis");
        assert!(c.route("+15559999999", "hello").is_none());
        assert_eq!(c.pacing.segments_per_second, 1.0);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                BASE.replace(
                    "+15550001111\"\nqueue_room = \"#crisis",
                    "555\"\nqueue_room = \"#crisis",
                ),
                "affiliates[0].programs[0].number",
            ),
            (
                BASE.replace("default = true", "default = false"),
                "affiliates[0].programs[0].default",
            ),
            (
                BASE.replace("\"HOUSING\", \"shelter\"", "\"STOP\""),
                "affiliates[0].programs[1].keywords",
            ),
            (
                BASE.replace("id = \"housing\"", "id = \"crisis\""),
                "affiliates[0].programs[1].id",
            ),
            (
                BASE.replace("listen = \"127.0.0.1:9101\"", "listen = \"nowhere\""),
                "bridge.listen",
            ),
            (BASE.replace("account_sid = \"AC123\"", ""), "twilio"),
            (
                BASE.replace(
                    "public_url = \"https://sms.example.org\"",
                    "public_url = \"sms.example.org\"",
                ),
                "bridge.public_url",
            ),
        ];
        for (text, key) in cases {
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in: {err}");
        }
    }
}
