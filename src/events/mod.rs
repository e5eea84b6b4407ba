//! Room events as PDUs: the stored form ([`pdu`]), the one builder ([`builder`]), the
//! authorisation check ([`auth`]) and the client-facing formats ([`client`]).

pub mod auth;
pub mod builder;
pub mod client;
pub mod pdu;

pub use builder::{EventTemplate, MAX_PDU_BYTES};
pub use pdu::{Pdu, PduRef};
