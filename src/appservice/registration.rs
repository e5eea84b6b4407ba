//! Loading and validating appservice registration files (the standard YAML format). Problems
//! stop the server at start with the file and field named.

use std::path::Path;

use regex::Regex;
use ruma::api::appservice::{Namespace, Registration};
use serde::Deserialize;

/// A namespace with its regex compiled (anchored: the whole ID must match).
#[derive(Debug, Clone)]
pub struct CompiledNamespace {
    pub exclusive: bool,
    pub regex: Regex,
    pub source: String,
}

impl CompiledNamespace {
    pub fn matches(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

/// Fields outside ruma's `Registration`: unstable names still used by bridges.
#[derive(Debug, Default, Deserialize)]
struct Extras {
    #[serde(rename = "de.sorunome.msc2409.push_ephemeral", default)]
    msc2409_push_ephemeral: Option<bool>,
    #[serde(rename = "org.matrix.msc3202", default)]
    msc3202: Option<bool>,
    #[serde(rename = "io.element.msc4190", default)]
    msc4190: Option<bool>,
    #[serde(rename = "org.haven.admin", default)]
    admin: Option<bool>,
}

/// A loaded registration.
#[derive(Debug, Clone)]
pub struct LoadedRegistration {
    pub file: String,
    pub reg: Registration,
    pub users: Vec<CompiledNamespace>,
    pub aliases: Vec<CompiledNamespace>,
    pub rooms: Vec<CompiledNamespace>,
    pub receive_ephemeral: bool,
    /// MSC3202: device lists and one-time key counts for namespace devices.
    pub device_extensions: bool,
    /// MSC4190: the appservice manages its users' devices itself.
    pub device_management: bool,
    /// `org.haven.admin: true`: the appservice may use the admin API (the escalation
    /// handler's retention purges rooms).
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("appservice registration {file}: {field}: {message}")]
pub struct RegistrationError {
    pub file: String,
    pub field: String,
    pub message: String,
}

fn err(file: &str, field: impl Into<String>, message: impl Into<String>) -> RegistrationError {
    RegistrationError {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

fn compile(
    file: &str,
    kind: &str,
    list: &[Namespace],
) -> Result<Vec<CompiledNamespace>, RegistrationError> {
    list.iter()
        .enumerate()
        .map(|(i, ns)| {
            let anchored = format!("^(?:{})$", ns.regex);
            Regex::new(&anchored)
                .map(|regex| CompiledNamespace {
                    exclusive: ns.exclusive,
                    regex,
                    source: ns.regex.clone(),
                })
                .map_err(|e| err(file, format!("namespaces.{kind}[{i}].regex"), e.to_string()))
        })
        .collect()
}

/// Parses one registration file.
pub fn load(path: &Path) -> Result<LoadedRegistration, RegistrationError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| err(&file, "(file)", e.to_string()))?;
    let reg: Registration = serde_yaml_ng::from_str(&text).map_err(|e| {
        let msg = e.to_string();
        let field = msg.split('`').nth(1).unwrap_or("(document)").to_owned();
        err(&file, field, msg)
    })?;
    let extras: Extras = serde_yaml_ng::from_str(&text).unwrap_or_default();
    if reg.id.is_empty() {
        return Err(err(&file, "id", "must not be empty"));
    }
    for (field, token) in [("as_token", &reg.as_token), ("hs_token", &reg.hs_token)] {
        if token.len() < 16 {
            return Err(err(
                &file,
                field,
                "must be at least 16 characters (use a random secret)",
            ));
        }
    }
    if let Some(url) = &reg.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err(&file, "url", "must be an http(s) URL or null"));
        }
    }
    if reg.sender_localpart.is_empty() {
        return Err(err(&file, "sender_localpart", "must not be empty"));
    }
    Ok(LoadedRegistration {
        users: compile(&file, "users", &reg.namespaces.users)?,
        aliases: compile(&file, "aliases", &reg.namespaces.aliases)?,
        rooms: compile(&file, "rooms", &reg.namespaces.rooms)?,
        receive_ephemeral: reg.receive_ephemeral || extras.msc2409_push_ephemeral.unwrap_or(false),
        device_extensions: extras.msc3202.unwrap_or(false),
        device_management: extras.msc4190.unwrap_or(false),
        admin: extras.admin.unwrap_or(false),
        file,
        reg,
    })
}

/// Checks a set of registrations against each other: unique ids and tokens, and no two
/// appservices claiming the same namespace exclusively.
pub fn validate_set(
    regs: &[LoadedRegistration],
    server_name: &str,
) -> Result<(), RegistrationError> {
    for (i, a) in regs.iter().enumerate() {
        if a.reg.as_token == a.reg.hs_token {
            return Err(err(&a.file, "hs_token", "must differ from as_token"));
        }
        for b in &regs[i + 1..] {
            if a.reg.id == b.reg.id {
                return Err(err(
                    &b.file,
                    "id",
                    format!("duplicates the id of {}", a.file),
                ));
            }
            for (fa, ta) in [("as_token", &a.reg.as_token), ("hs_token", &a.reg.hs_token)] {
                for (fb, tb) in [("as_token", &b.reg.as_token), ("hs_token", &b.reg.hs_token)] {
                    if ta == tb {
                        return Err(err(
                            &b.file,
                            fb,
                            format!("duplicates the {fa} of {}", a.file),
                        ));
                    }
                }
            }
            for (kind, na, nb) in [
                ("users", &a.users, &b.users),
                ("aliases", &a.aliases, &b.aliases),
                ("rooms", &a.rooms, &b.rooms),
            ] {
                for (j, x) in nb.iter().enumerate() {
                    for y in na.iter() {
                        if (x.exclusive || y.exclusive) && overlaps(x, y) {
                            return Err(err(
                                &b.file,
                                format!("namespaces.{kind}[{j}].regex"),
                                format!(
                                    "overlaps the exclusive namespace `{}` of {}",
                                    y.source, a.file
                                ),
                            ));
                        }
                    }
                }
            }
            for (x, y) in [(a, b), (b, a)] {
                let sender = format!("@{}:{}", x.reg.sender_localpart, server_name);
                if y.users.iter().any(|ns| ns.exclusive && ns.matches(&sender)) {
                    return Err(err(
                        &x.file,
                        "sender_localpart",
                        format!("is inside an exclusive namespace of {}", y.file),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Two regexes overlap when they are the same, or when either one's literal example (its
/// pattern with `.*`/`.+` filled in) matches the other. Exact overlap of arbitrary regexes is
/// undecidable in general; this catches the copy-paste cases that happen in practice.
fn overlaps(a: &CompiledNamespace, b: &CompiledNamespace) -> bool {
    if a.source == b.source {
        return true;
    }
    let example = |s: &str| s.replace(".*", "x").replace(".+", "x").replace('\\', "");
    b.matches(&example(&a.source)) || a.matches(&example(&b.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn reg(id: &str, tok: &str, users: &str) -> String {
        format!("id: {id}\nurl: null\nas_token: as_{tok}_0123456789abcdef\nhs_token: hs_{tok}_0123456789abcdef\nsender_localpart: {id}\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '{users}'\n")
    }

    #[test]
    fn shipped_registrations_are_valid_together() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("appservices/registrations");
        let regs: Vec<_> = ["sms-bridge", "intake-bot", "escalation"]
            .iter()
            .map(|n| load(&dir.join(format!("{n}.yaml"))).unwrap())
            .collect();
        validate_set(&regs, "localhost:8008").unwrap();
        assert!(regs[0].users[0].matches("@sms_4821:localhost:8008"));
        assert!(!regs[0].users[0].matches("@sms_4821:localhost:8008x"));
    }

    #[test]
    fn problems_name_the_file_and_field() {
        let d = tempfile::tempdir().unwrap();
        let bad = write(d.path(), "bad.yaml", &reg("a", "a", "@a_(:x"));
        let e = load(&bad).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.file.ends_with("bad.yaml")),
            ("namespaces.users[0].regex", true)
        );

        let missing = write(d.path(), "missing.yaml", "id: x\nurl: null\n");
        assert!(load(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.yaml"));

        let a = load(&write(d.path(), "a.yaml", &reg("a", "a", "@a_.*:hs"))).unwrap();
        let same_token = load(&write(d.path(), "b.yaml", &reg("b", "a", "@b_.*:hs"))).unwrap();
        let e = validate_set(&[a.clone(), same_token], "hs").unwrap_err();
        assert_eq!(e.field, "as_token");
        let same_id = load(&write(d.path(), "c.yaml", &reg("a", "c", "@c_.*:hs"))).unwrap();
        assert_eq!(
            validate_set(&[a.clone(), same_id], "hs").unwrap_err().field,
            "id"
        );
        let overlapping = load(&write(d.path(), "d.yaml", &reg("d", "d", "@a_.*:hs"))).unwrap();
        let e = validate_set(&[a.clone(), overlapping], "hs").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.file.ends_with("d.yaml")),
            ("namespaces.users[0].regex", true)
        );
        let fine = load(&write(d.path(), "e.yaml", &reg("e", "e", "@e_.*:hs"))).unwrap();
        validate_set(&[a, fine], "hs").unwrap();
    }
}
