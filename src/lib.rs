//! Haven: a Matrix homeserver for support networks.
//!
//! Layers, top to bottom: `api` (HTTP handlers, thin) -> concern modules (`rooms`, `sync`,
//! `users`, `events`) -> `storage` (typed tables over a key-value engine).

pub mod api;
pub mod config;
pub mod error;
pub mod events;
pub mod ratelimit;
pub mod rooms;
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
}

impl Haven {
    /// Opens the database and loads (or creates) the signing key. Must run inside a Tokio
    /// runtime (the group-commit flusher is a task).
    pub fn open(config: Config) -> error::Result<Arc<Self>> {
        let db = Storage::open(
            &config.database.path,
            config.database.cache_mb * 1024 * 1024,
        )?;
        let key = Arc::new(signing::ServerKey::load_or_generate(
            &db,
            config.server_name.clone(),
        )?);
        let stream = Arc::new(stream::Stream::load(&db)?);
        let rooms = rooms::Rooms::new(db.clone(), key.clone(), stream.clone())?;
        let users = users::Users::new(db.clone(), config.server_name.clone());
        let ratelimit = ratelimit::RateLimiter::new(config.rate_limits.clone());
        Ok(Arc::new(Self {
            config,
            db,
            key,
            stream,
            rooms,
            users,
            ratelimit,
        }))
    }
}
