//! Operator commands of the `haven` binary that work on the database directly, with the
//! server stopped (the database allows one process at a time).

use crate::{config::Config, error::Error, signing::ServerKey, storage::Storage};

/// Runs `command` with `args`; answers what to print.
pub fn run(config: &Config, command: &str, args: &[String]) -> Result<String, Error> {
    match (command, args) {
        ("rotate-signing-key", []) => {
            let db = open(config)?;
            let (old, new) = ServerKey::rotate(&db, config.server_name.clone())?;
            Ok(format!(
                "signing key {new} replaces {old}; {old} stays published as expired so that \
                 what it signed can still be verified"
            ))
        }
        _ => Err(Error::invalid_param(format!(
            "unknown command or arguments: {command} {}",
            args.join(" ")
        ))),
    }
}

/// The commands, for `--help`.
pub const COMMANDS: &str =
    "  rotate-signing-key   replace the server's signing key (server stopped)";

fn open(config: &Config) -> Result<std::sync::Arc<Storage>, Error> {
    Storage::open(
        &config.database.path,
        config.database.cache_mb * 1024 * 1024,
    )
    .map_err(|e| {
        Error::internal(format!(
            "cannot open the database at {} (is the server running?): {e}",
            config.database.path.display()
        ))
    })
}
