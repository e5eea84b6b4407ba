//! Appservice settings: a TOML file naming the homeserver, the registration file, where to
//! listen and where to keep state; each key can be overridden by `<PREFIX>_<KEY>` environment
//! variables.

use std::{net::SocketAddr, path::PathBuf};

use ruma::api::appservice::Registration;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Client-server API base URL of the homeserver, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The server name in user IDs (`localhost:8008`).
    pub server_name: String,
    /// Path of the registration YAML shared with the homeserver.
    pub registration: PathBuf,
    /// Where the appservice listens for the homeserver.
    pub listen: SocketAddr,
    /// Directory of the appservice's own state store.
    pub state_dir: PathBuf,
}

/// Settings plus the parsed registration.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub registration: Registration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Reads the TOML settings at `path` with `<env_prefix>_<KEY>` overrides, then the
    /// registration it names.
    pub fn load(path: &std::path::Path, env_prefix: &str) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
        for (k, v) in std::env::vars() {
            if let Some(key) = k.strip_prefix(&format!("{env_prefix}_")) {
                table.insert(key.to_ascii_lowercase(), toml::Value::String(v));
            }
        }
        let settings: Settings =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
        let registration = load_registration(&settings.registration)?;
        Ok(Self {
            settings,
            registration,
        })
    }
}

/// Parses a registration file in the standard YAML format.
pub fn load_registration(path: &std::path::Path) -> Result<Registration, ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: p.clone(),
        message: e.to_string(),
    })?;
    serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: p,
        message: e.to_string(),
    })
}
