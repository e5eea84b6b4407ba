//! Haven's intake bot: interviews volunteers into structured profiles, asks texters their
//! program's intake questions and summarises them for the responder, and answers mentions in
//! group rooms — with the offline interviewer ([`interview`], [`understand`]) or an
//! OpenAI-compatible model ([`model`]).

pub mod bot;
pub mod config;
pub mod group;
pub mod interview;
pub mod manners;
pub mod metrics;
pub mod model;
pub mod profile;
pub mod texter;
pub mod understand;
