//! Haven: a Matrix homeserver for support networks.
//!
//! Layers, top to bottom: `api` (HTTP handlers, thin) -> concern modules (`rooms`, `sync`,
//! `users`, `events`) -> `storage` (typed tables over a key-value engine).

pub mod admin;
pub mod api;
pub mod appservice;
pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod federation;
pub mod listeners;
pub mod media;
pub mod metrics;
pub mod outbound;
pub mod push;
pub mod ratelimit;
pub mod rooms;
pub mod search;
pub mod serve;
pub mod signing;
pub mod storage;
pub mod stream;
pub mod sync;
pub mod users;
pub mod util;

use std::sync::Arc;

use config::Config;
use storage::Storage;

/// Everything a request handler can reach.
pub struct Haven {
    pub config: Config,
    pub db: Arc<Storage>,
    pub key: Arc<signing::ServerKey>,
    pub stream: Arc<stream::Stream>,
    pub rooms: rooms::Rooms,
    pub users: users::Users,
    pub ratelimit: ratelimit::RateLimiter,
    /// Refused admin API calls per caller (see `api::admin::gate`).
    pub admin_refusals: ratelimit::RateLimiter,
    /// Per-action limits (logins, registrations, rooms, invites, joins, messages, uploads).
    pub actions: ratelimit::ActionLimiters,
    pub appservices: appservice::Appservices,
    pub media: media::Media,
    /// Outbound HTTP (appservice transactions and queries).
    pub http: reqwest::Client,
    /// Outbound HTTP to addresses users name (push gateways), within `outbound`'s policy.
    pub guarded_http: reqwest::Client,
    /// The addresses this server connects to on others' say-so.
    pub outbound: Arc<outbound::IpPolicy>,
    /// Open sliding-sync connections.
    pub sliding: sync::sliding::Connections,
    /// Outbound federation (other servers).
    pub federation: federation::Federation,
    /// Set once every configured listener is bound (`/readyz`).
    pub ready: std::sync::atomic::AtomicBool,
}

impl Haven {
    /// Counts one `action` by the session's user, or refuses it (429 `M_LIMIT_EXCEEDED` with
    /// `retry_after_ms`). Appservices that ask for it (`rate_limited: false`) and server admins
    /// are exempt.
    pub fn limit(&self, action: ratelimit::Action, s: &users::Session) -> error::Result<()> {
        if s.appservice.as_ref().is_some_and(|a| !a.rate_limited()) {
            return Ok(());
        }
        match self.actions.check(action, s.user_id.as_str()) {
            // Only when about to refuse: is this an admin (one read, not one per request)?
            Err(e) if !self.users.is_admin(&s.user_id)? => Err(e),
            _ => Ok(()),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] error::Error),
    #[error(transparent)]
    Registration(#[from] appservice::RegistrationError),
}

impl Haven {
    /// Opens the database and loads (or creates) the signing key. Must run inside a Tokio
    /// runtime (the group-commit flusher is a task).
    pub fn open(config: Config) -> Result<Arc<Self>, StartError> {
        let appservices = appservice::Appservices::load(
            &config.appservices.registrations,
            config.server_name.as_str(),
        )?;
        let db = Storage::open_engine(
            config.database.engine,
            &config.database.path,
            config.database.cache_mb * 1024 * 1024,
        )
        .map_err(error::Error::from)?;
        let key = Arc::new(signing::ServerKey::load_or_generate(
            &db,
            config.server_name.clone(),
        )?);
        let stream = Arc::new(stream::Stream::load(&db)?);
        let rooms = rooms::Rooms::new(db.clone(), key.clone(), stream.clone())?;
        let users = users::Users::new(db.clone(), config.server_name.clone());
        let ratelimit = ratelimit::RateLimiter::new(config.rate_limits.clone());
        let actions = ratelimit::ActionLimiters::new(&config.rate_limits);
        let admin_refusals = ratelimit::RateLimiter::per_minute(
            admin::REFUSALS_PER_MINUTE,
            config.rate_limits.enabled,
        );
        let media_dir = config
            .media
            .path
            .clone()
            .unwrap_or_else(|| config.database.path.join("media"));
        let media = media::Media::new(media_dir, &config.media, &db)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(error::Error::internal)?;
        let outbound = Arc::new(outbound::IpPolicy::new(
            config.outbound.ip_range_denylist.clone(),
            config.outbound.ip_range_allowlist.clone(),
        ));
        let guarded_http = outbound.client().map_err(error::Error::internal)?;
        let federation = federation::Federation::new(&config.federation, outbound.clone())?;
        Ok(Arc::new(Self {
            config,
            db,
            key,
            stream,
            rooms,
            users,
            ratelimit,
            admin_refusals,
            actions,
            appservices,
            media,
            http,
            guarded_http,
            outbound,
            sliding: Default::default(),
            federation,
            ready: Default::default(),
        }))
    }
}
