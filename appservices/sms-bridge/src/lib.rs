//! Haven's SMS bridge. Texters reach a program's number; each texter conversation is a Matrix
//! room that responders answer from any Matrix client; replies go back as SMS. It talks to the
//! homeserver only through the Application Service API (via `appservice-runtime`).
//!
//! Modules: configuration ([`config`]), Twilio webhook signatures ([`signature`]), the
//! phone-number privacy layer ([`privacy`]), SMS segmentation ([`segments`]), the Twilio REST
//! client ([`twilio`]), the bridge's behaviour ([`bridge`]) and its webhooks ([`web`]).

pub mod bridge;
pub mod config;
pub mod keywords;
pub mod metrics;
pub mod outbox;
pub mod partner;
pub mod privacy;
pub mod provider;
pub mod segments;
pub mod signature;
pub mod twilio;
pub mod web;
