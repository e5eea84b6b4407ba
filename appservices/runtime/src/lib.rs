//! A small runtime for Matrix appservices, written against the Application Service API only,
//! so an appservice built on it runs against Haven or Synapse alike.
//!
//! It is a library, not a framework: [`server`] receives transactions and queries (checking the
//! hs_token, deduplicating transactions persistently, handing events over in order), [`client`]
//! calls the client-server API as the bot or any namespace user, [`store`] keeps small state,
//! [`config`] loads settings and the registration file.

pub mod cli;
pub mod client;
pub mod config;
pub mod metrics;
pub mod server;
pub mod signing;
pub mod store;

pub use client::{AsClient, ClientError};
pub use config::{Config, ConfigError};
pub use server::{serve, Handler, Transaction};
pub use store::Store;

/// Errors a handler may return: the transaction is then answered with 500 and retried by the
/// homeserver with the same transaction ID.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Logs to stderr with `RUST_LOG` (default `info`), the way every Haven appservice does; in
/// colour only on a terminal (a log file or journal gets plain text).
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
