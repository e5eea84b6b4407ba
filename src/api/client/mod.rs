//! Client-server API handlers. Each is a thin adapter: parse (ruma), call the concern module,
//! answer (ruma).

pub mod account;
pub mod appservice;
pub mod backup;
pub mod directory;
pub mod events;
pub mod keys;
pub mod misc;
pub mod presence;
pub mod push;
pub mod relations;
pub mod rooms;
pub mod search;
