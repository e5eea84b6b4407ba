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
    /// Loads the settings file, applying `<env_prefix>_<KEY>` overrides.
    pub fn load(path: &std::path::Path, env_prefix: &str) -> Result<Self, ConfigError> {
        let (config, ()) = Self::load_with(path, env_prefix, None)?;
        Ok(config)
    }

    /// Like [`Config::load`], for an appservice with settings of its own: the table named
    /// `section` (e.g. `[intake]`) is taken out of the file and read as `E` (its default when
    /// absent), the rest as the runtime's [`Settings`].
    pub fn load_with<E: serde::de::DeserializeOwned + Default>(
        path: &std::path::Path,
        env_prefix: &str,
        section: Option<&str>,
    ) -> Result<(Self, E), ConfigError> {
        let p = path.display().to_string();
        let invalid = |message: String| ConfigError::Invalid {
            path: p.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let extra = section.and_then(|s| table.remove(s));
        for (k, v) in std::env::vars() {
            if let Some(key) = k.strip_prefix(&format!("{env_prefix}_")) {
                table.insert(key.to_ascii_lowercase(), toml::Value::String(v));
            }
        }
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let extra: E = match extra {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| {
                invalid(format!("[{}]: {e}", section.unwrap_or_default()))
            })?,
            None => E::default(),
        };
        let registration = load_registration(&settings.registration)?;
        Ok((
            Self {
                settings,
                registration,
            },
            extra,
        ))
    }
}

/// Reads an appservice registration YAML.
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
