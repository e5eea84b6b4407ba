//! Haven's escalation handler: every support conversation follows one state machine
//! ([`machine`]), kept in the room's `org.haven.conversation` state event and operated with
//! `!commands` from any Matrix client ([`commands`], [`actions`]), with queues ([`queue`]),
//! risk tagging ([`risk`]), durable timers ([`timers`]), signed webhooks ([`webhooks`]),
//! transfer summaries ([`summary`]) and retention ([`retention`]).

pub mod actions;
pub mod commands;
pub mod config;
pub mod conversation;
pub mod handler;
pub mod machine;
pub mod metrics;
pub mod queue;
pub mod retention;
pub mod risk;
pub mod rooms;
pub mod summary;
pub mod timers;
pub mod webhooks;

pub use appservice_runtime::now_ms;
