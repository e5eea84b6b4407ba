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
    /// A key's value is wrong: named as the file names it, the form every Haven program uses.
    #[error("config key {key}: {message}")]
    Key { key: String, message: String },
}

/// Deserialises `value` as `T`, naming the key at fault (`prefix.` before it).
fn read_keyed<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = match (prefix, path.as_str()) {
            ("", ".") => "(top level)".to_owned(),
            ("", p) => p.to_owned(),
            (s, ".") => s.to_owned(),
            (s, p) => format!("{s}.{p}"),
        };
        // toml's own message, without the position it adds for text (there is none here).
        let message = e.into_inner().message().to_owned();
        ConfigError::Key { key, message }
    })
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
        let settings: Settings = read_keyed(toml::Value::Table(table), "")?;
        let extra: E = match extra {
            Some(v) => read_keyed(v, section.unwrap_or_default())?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Own {
        window_s: u64,
    }

    #[test]
    fn errors_name_the_key_as_the_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("r.yaml");
        std::fs::write(&reg, "id: x\nurl: http://127.0.0.1:1\nas_token: a\nhs_token: h\nsender_localpart: x\nnamespaces: {}\n").unwrap();
        let file = dir.path().join("c.toml");
        let settings = |listen: &str, own: &str| {
            format!("homeserver_url = \"http://127.0.0.1:8008\"\nserver_name = \"s\"\nregistration = \"{}\"\nlisten = \"{listen}\"\nstate_dir = \"/tmp/x\"\n[own]\n{own}\n", reg.display())
        };
        std::fs::write(&file, settings("nowhere", "")).unwrap();
        let e = Config::load_with::<Own>(&file, "TEST_NONE", Some("own")).unwrap_err();
        assert!(e.to_string().starts_with("config key listen: "), "{e}");
        std::fs::write(&file, settings("127.0.0.1:1", "window_s = \"x\"")).unwrap();
        let e = Config::load_with::<Own>(&file, "TEST_NONE", Some("own")).unwrap_err();
        assert!(
            e.to_string().starts_with("config key own.window_s: "),
            "{e}"
        );
        std::fs::write(&file, settings("127.0.0.1:1", "window_s = 3")).unwrap();
        assert_eq!(
            Config::load_with::<Own>(&file, "TEST_NONE", Some("own"))
                .unwrap()
                .1
                .window_s,
            3
        );
    }
}
