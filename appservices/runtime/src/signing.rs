//! Haven's webhook signature, shared by everything that signs or checks one (the SMS bridge's
//! partner carriers, the escalation handler's event subscribers and emergency webhook):
//! HMAC-SHA256 of the exact body under a shared secret, as `X-Haven-Signature: sha256=<hex>`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "x-haven-signature";

pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time check of a received signature header.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let expected = sign(secret, body);
    expected.len() == header.len() && bool::from(expected.as_bytes().ct_eq(header.as_bytes()))
}
