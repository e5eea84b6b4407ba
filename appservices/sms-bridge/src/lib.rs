//! Haven's SMS bridge. Texters reach a program's number; each texter conversation is a Matrix
//! room that responders answer from any Matrix client; replies go back as SMS. It talks to the
//! homeserver only through the Application Service API (via `appservice-runtime`).
//!
//! Built so far: configuration ([`config`]), Twilio webhook signatures ([`signature`]), the
//! phone-number privacy layer ([`privacy`]) and SMS segmentation ([`segments`]).

pub mod config;
pub mod privacy;
pub mod segments;
pub mod signature;
