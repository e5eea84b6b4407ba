//! Configuration: a TOML file (default `config.toml`), every key overridable by an environment
//! variable `HAVEN_<SECTION>__<KEY>` (for example `HAVEN_LISTEN__ADDRESS=0.0.0.0:8008`). Errors
//! name the offending key so a bad config fails at start with a useful message.

use std::{net::SocketAddr, path::PathBuf};

use ruma::{OwnedServerName, RoomVersionId};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The name in every user ID and room alias of this server (`@alice:<server_name>`).
    pub server_name: OwnedServerName,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub registration: Registration,
    #[serde(default)]
    pub rooms: Rooms,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub well_known: WellKnown,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub appservices: Appservices,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub federation: FederationConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` (Prometheus text format) is served, apart from the client listener so
    /// that it need not be exposed; unset: not served.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// A second listener for other servers (normally port 8448). The main listener serves the
    /// federation API too, for deployments where a reverse proxy terminates TLS.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain of the federation listener; with `tls_private_key`, it speaks
    /// HTTPS, otherwise plain HTTP (behind a TLS-terminating proxy).
    pub tls_certificate: Option<PathBuf>,
    pub tls_private_key: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted when connecting to other servers (private CAs).
    pub ca_file: Option<PathBuf>,
    /// Server names whose certificates are not checked: test and private deployments only.
    pub insecure_peers: Vec<String>,
    /// Notary servers asked for a server's keys when it cannot be reached directly.
    pub trusted_key_servers: Vec<OwnedServerName>,
}

/// Connections made on others' say-so: other servers, push gateways.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Address ranges (CIDR) never connected to, checked after DNS resolution: by default
    /// loopback, private, link-local, unique-local, CGNAT, multicast and reserved ranges, so that
    /// no request can make this server reach its own network.
    pub ip_range_denylist: Vec<ipnet::IpNet>,
    /// Ranges connected to even when denied above: servers and push gateways on a private
    /// network, tests.
    pub ip_range_allowlist: Vec<ipnet::IpNet>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            ip_range_denylist: crate::outbound::default_denylist(),
            ip_range_allowlist: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Where uploaded files live (default: `media` inside the database directory).
    pub path: Option<PathBuf>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Largest image (width x height, as its header declares) a thumbnail is made of; larger
    /// ones answer 413 `M_TOO_LARGE` without being decoded.
    pub max_thumbnail_pixels: u64,
    /// How many images may be decoded for thumbnails at once; further requests wait.
    pub thumbnail_concurrency: usize,
    /// The thumbnail sizes made (`{ width, height, method = "crop" | "scale" }`); a request is
    /// served the nearest size at least as large as asked.
    pub thumbnail_sizes: Vec<crate::media::thumbnail::Size>,
    /// Serve new media on the legacy unauthenticated endpoints (`/_matrix/media/v3/download`
    /// and `/thumbnail`) too. Off: they serve only media uploaded before the server first ran
    /// with them frozen (the spec's v1.11 freeze); clients use the authenticated endpoints.
    pub legacy_unauthenticated: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_upload_bytes: 50 * 1024 * 1024,
            max_thumbnail_pixels: 32_000_000,
            thumbnail_concurrency: 2,
            thumbnail_sizes: crate::media::thumbnail::default_sizes(),
            legacy_unauthenticated: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Appservices {
    /// Registration files (YAML) of the appservices this server talks to.
    pub registrations: Vec<PathBuf>,
    /// Also send the hs_token as the `access_token` query parameter (the pre-v1.4 way), for
    /// appservices built on older frameworks that only read it there. Off by default: the
    /// token then appears in URLs.
    pub legacy_query_auth: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    pub address: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 8008)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    pub path: PathBuf,
    /// The embedded engine: `auto` (default: the one that wrote the directory, fjall for a new
    /// one), `sled` or `fjall`.
    pub engine: crate::storage::EngineKind,
    /// The engine's cache of pages or blocks.
    pub cache_mb: u64,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data"),
            engine: crate::storage::EngineKind::Auto,
            cache_mb: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone may register.
    Open,
    /// A registration token (`m.login.registration_token`) is required.
    Token,
    /// Only admins create accounts.
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registration {
    pub mode: RegistrationMode,
    /// Tokens accepted in `token` mode, besides those created by admins.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Bot users that open a direct room with every newly registered user (for example the
    /// intake bot's greeting). They must exist or belong to an appservice.
    #[serde(default)]
    pub greeting_bots: Vec<ruma::OwnedUserId>,
}

impl Default for Registration {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Open,
            tokens: Vec::new(),
            greeting_bots: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rooms {
    pub default_version: RoomVersionId,
}

impl Default for Rooms {
    fn default() -> Self {
        Self {
            default_version: RoomVersionId::V12,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted request body for JSON endpoints, in bytes.
    pub max_request_bytes: usize,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept waiting for its next request.
    pub header_read_timeout_s: u64,
    /// Seconds a client has to send a request's body.
    pub body_read_timeout_s: u64,
    /// Seconds a TLS handshake on the federation listener may take.
    pub tls_handshake_timeout_s: u64,
    /// Open connections allowed per client address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Addresses the connection cap does not apply to: a reverse proxy in front of Haven
    /// connects from these for every client.
    pub connection_limit_exempt: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            header_read_timeout_s: 30,
            body_read_timeout_s: 60,
            tls_handshake_timeout_s: 10,
            max_connections_per_ip: 64,
            connection_limit_exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub enabled: bool,
    /// Sustained requests per second allowed per user (or per IP when unauthenticated) on
    /// rate-limited endpoints.
    pub per_second: f64,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Per-action limits (Synapse-like defaults); appservices that ask for it and admins are
    /// exempt.
    pub actions: ActionLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client for per-address limits.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 50.0,
            burst: 200,
            actions: ActionLimits::default(),
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionLimit {
    pub per_second: f64,
    pub burst: u32,
}

const fn limit(per_second: f64, burst: u32) -> ActionLimit {
    ActionLimit { per_second, burst }
}

/// The per-action limits (`rate_limits.actions.<action> = { per_second, burst }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionLimits {
    /// Login attempts per client address.
    pub login_address: ActionLimit,
    /// Login attempts per account.
    pub login_account: ActionLimit,
    /// Failed logins per account; when spent, logins of the account are refused.
    pub login_failure: ActionLimit,
    /// Registrations per client address.
    pub registration: ActionLimit,
    /// Rooms created per user.
    pub room_creation: ActionLimit,
    /// Invites sent per user.
    pub invite: ActionLimit,
    /// Joins and knocks per user.
    pub join: ActionLimit,
    /// Events sent per user.
    pub message: ActionLimit,
    /// Uploads per user.
    pub media_upload: ActionLimit,
}

impl Default for ActionLimits {
    fn default() -> Self {
        Self {
            login_address: limit(0.05, 10),
            login_account: limit(0.05, 10),
            login_failure: limit(0.17, 3),
            registration: limit(0.17, 3),
            room_creation: limit(0.016, 10),
            invite: limit(0.1, 20),
            join: limit(0.1, 10),
            message: limit(0.2, 10),
            media_upload: limit(10.0, 50),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WellKnown {
    /// `m.homeserver.base_url` served at `/.well-known/matrix/client`.
    pub client_base_url: Option<String>,
    /// `m.server` served at `/.well-known/matrix/server`.
    pub server: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    /// A `tracing` filter such as `info` or `haven=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

/// Dependencies whose `info` lines are routine detail (ruma's authorization checks log each
/// event they allow, two lines an event; fjall and its LSM tree a line per table at every
/// start and per journal rotation): kept at `warn` unless the filter names them or its default
/// level is `debug` or `trace`.
const CHATTY_DEPENDENCIES: &[&str] = &["ruma_state_res", "fjall", "lsm_tree"];

impl Logging {
    /// The `tracing` filter to run with: `level`, with [`CHATTY_DEPENDENCIES`] quietened so the
    /// default level stays quiet in steady state.
    pub fn filter(&self) -> String {
        let verbose = self.level.split(',').any(|d| {
            let d = d.trim().to_ascii_lowercase();
            !d.contains('=') && (d == "debug" || d == "trace")
        });
        let mut filter = self.level.clone();
        for dep in CHATTY_DEPENDENCIES {
            if !verbose && !self.level.contains(dep) {
                filter.push_str(&format!(",{dep}=warn"));
            }
        }
        filter
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Plain,
    Json,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Plain,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    /// A key error caused by an environment override: names the variable, which may not be
    /// meant for Haven at all (any `HAVEN_*` variable is read as a key).
    #[error("config key `{key}` (from environment variable {var}): {message}")]
    EnvKey {
        key: String,
        var: String,
        message: String,
    },
}

impl ConfigError {
    /// The same error, naming the environment variable that set `key` or a key around it.
    fn naming_variable(self, overrides: &[(String, String)]) -> Self {
        let ConfigError::Key { key, message } = self else {
            return self;
        };
        let within = |outer: &str, inner: &str| {
            inner == outer || inner.starts_with(&format!("{outer}.")) || outer.is_empty()
        };
        match overrides
            .iter()
            .find(|(dotted, _)| within(dotted, &key) || within(&key, dotted))
        {
            Some((_, var)) => ConfigError::EnvKey {
                key,
                var: var.clone(),
                message,
            },
            None => ConfigError::Key { key, message },
        }
    }
}

const ENV_PREFIX: &str = "HAVEN_";

impl Config {
    /// Loads the file at `path` and applies `HAVEN_*` environment overrides.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, std::env::vars(), &path.display().to_string())
    }

    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_owned(),
                    message: e.message().to_owned(),
                })?;
        // Each override's key (dotted) and variable, to name the variable in errors.
        let mut overrides: Vec<(String, String)> = Vec::new();
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                overrides.push((path.join("."), name.clone()));
                apply_override(&mut table, &path, &value)
                    .map_err(|e| e.naming_variable(&overrides))?;
            }
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Key {
                key: e.path().to_string(),
                message: e.inner().message().to_owned(),
            })
            .and_then(|c: Config| c.validate().map(|()| c))
            .map_err(|e| e.naming_variable(&overrides))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let key_err = |key: &str, message: &str| ConfigError::Key {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if self.registration.mode == RegistrationMode::Token && self.registration.tokens.is_empty()
        {
            // Tokens can also be created at run time, so this is allowed, but an empty token is not.
        }
        if self
            .registration
            .tokens
            .iter()
            .any(|t| t.is_empty() || t.len() > 64)
        {
            return Err(key_err(
                "registration.tokens",
                "tokens must be 1 to 64 characters",
            ));
        }
        if !crate::rooms::SUPPORTED_VERSIONS.contains(&self.rooms.default_version) {
            return Err(key_err(
                "rooms.default_version",
                "supported room versions are 10, 11 and 12",
            ));
        }
        if self.limits.header_read_timeout_s == 0
            || self.limits.body_read_timeout_s == 0
            || self.limits.tls_handshake_timeout_s == 0
        {
            return Err(key_err("limits", "timeouts must be at least 1 second"));
        }
        if self.limits.max_request_bytes < 65_536 {
            return Err(key_err(
                "limits.max_request_bytes",
                "must be at least 65536",
            ));
        }
        if self.federation.tls_certificate.is_some() != self.federation.tls_private_key.is_some() {
            return Err(key_err(
                "federation.tls_certificate",
                "set both tls_certificate and tls_private_key, or neither",
            ));
        }
        if self.media.thumbnail_concurrency == 0 {
            return Err(key_err("media.thumbnail_concurrency", "must be at least 1"));
        }
        if self
            .media
            .thumbnail_sizes
            .iter()
            .any(|s| s.width == 0 || s.height == 0 || s.width > 4096 || s.height > 4096)
        {
            return Err(key_err(
                "media.thumbnail_sizes",
                "widths and heights must be 1 to 4096",
            ));
        }
        let a = &self.rate_limits.actions;
        if [
            a.login_address,
            a.login_account,
            a.login_failure,
            a.registration,
            a.room_creation,
            a.invite,
            a.join,
            a.message,
            a.media_upload,
        ]
        .iter()
        .any(|l| l.per_second <= 0.0 || l.burst == 0)
        {
            return Err(key_err(
                "rate_limits.actions",
                "every limit needs a positive per_second and burst",
            ));
        }
        if self.rate_limits.per_second <= 0.0 {
            return Err(key_err("rate_limits.per_second", "must be positive"));
        }
        if self
            .logging
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(key_err("logging.level", "not a valid tracing filter"));
        }
        Ok(())
    }
}

/// Sets `path` in `table` to `raw`, read as a TOML value when it parses as one (numbers,
/// booleans, arrays) and as a string otherwise.
fn apply_override(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), ConfigError> {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = path.split_last().ok_or_else(|| ConfigError::Key {
        key: String::new(),
        message: "empty environment override".into(),
    })?;
    let mut cur = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        cur = entry.as_table_mut().ok_or_else(|| ConfigError::Key {
            key: path[..=i].join("."),
            message: "is not a section".into(),
        })?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_event_dependency_logs_are_quiet_unless_asked_for() {
        let at = |level: &str| {
            super::Logging {
                level: level.into(),
                format: super::LogFormat::Plain,
            }
            .filter()
        };
        let quiet = ",ruma_state_res=warn,fjall=warn,lsm_tree=warn";
        assert_eq!(at("info"), format!("info{quiet}"));
        assert_eq!(at("haven=debug,info"), format!("haven=debug,info{quiet}"));
        assert_eq!(at("debug"), "debug");
        assert_eq!(
            at("info,ruma_state_res=debug"),
            "info,ruma_state_res=debug,fjall=warn,lsm_tree=warn"
        );
    }

    use super::*;

    const BASE: &str = "server_name = \"localhost:8008\"\n";

    #[test]
    fn defaults_and_env_override() {
        let env = vec![
            (
                "HAVEN_LISTEN__ADDRESS".to_owned(),
                "127.0.0.1:9000".to_owned(),
            ),
            ("HAVEN_RATE_LIMITS__ENABLED".to_owned(), "false".to_owned()),
        ];
        let c = Config::from_toml(BASE, env, "test").unwrap();
        assert_eq!(c.listen.address.port(), 9000);
        assert!(!c.rate_limits.enabled);
        assert_eq!(c.rooms.default_version, RoomVersionId::V12);
    }

    #[test]
    fn bad_key_is_named() {
        let text = format!("{BASE}[listen]\naddress = \"nope\"\n");
        let err = Config::from_toml(&text, vec![], "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen.address"), "{err}");
        let text = format!("{BASE}[registration]\nmode = \"maybe\"\n");
        let err = Config::from_toml(&text, vec![], "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("registration.mode"), "{err}");
        let text = format!("{BASE}[rooms]\ndefault_version = \"1\"\n");
        let err = Config::from_toml(&text, vec![], "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rooms.default_version"), "{err}");
        let err = Config::from_toml("server_name = \"bad name!\"", vec![], "t").unwrap_err();
        assert!(err.to_string().contains("server_name"), "{err}");
    }

    #[test]
    fn an_environment_variable_behind_a_bad_key_is_named() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let err = Config::from_toml(BASE, env("HAVEN_HOME", "/home/x"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("HAVEN_HOME") && err.contains("home"), "{err}");
        let err = Config::from_toml(BASE, env("HAVEN_RATE_LIMITS__PER_SECOND", "0"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("HAVEN_RATE_LIMITS__PER_SECOND"), "{err}");
        let err = Config::from_toml(BASE, env("HAVEN_LISTEN__ADDRES", "x"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("HAVEN_LISTEN__ADDRES"), "{err}");
        // A bad key in the file is not blamed on an unrelated variable.
        let text = format!("{BASE}[listen]\naddress = \"nope\"\n");
        let err = Config::from_toml(&text, env("HAVEN_RATE_LIMITS__ENABLED", "false"), "t")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("HAVEN_"), "{err}");
    }
}
