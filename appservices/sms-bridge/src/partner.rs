//! The generic partner-carrier provider: JSON in, JSON out, each body signed with
//! HMAC-SHA256 under a shared secret in `X-Haven-Signature: sha256=<hex>`.
//!
//! Inbound (`POST /partner/<id>/sms`): `{"message_id", "from", "to", "body"}`.
//! Outbound (`POST <send_url>`): `{"to", "from", "body", "media_url", "callback_url"}`, answered with
//! `{"message_id"}`.

pub use appservice_runtime::signing::{sign, verify, HEADER};

use crate::twilio::SendError;

#[derive(Clone)]
pub struct PartnerClient {
    pub id: String,
    send_url: String,
    secret: Vec<u8>,
    http: reqwest::Client,
}

impl PartnerClient {
    pub fn new(id: &str, send_url: &str, secret: Vec<u8>) -> Self {
        Self {
            id: id.to_owned(),
            send_url: send_url.to_owned(),
            secret,
            http: reqwest::Client::new(),
        }
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Posts one message; returns the partner's message ID.
    pub async fn send(
        &self,
        to: &str,
        from: &str,
        body: &str,
        media_url: Option<&str>,
        callback_url: &str,
    ) -> Result<String, SendError> {
        let payload = serde_json::to_vec(&serde_json::json!({ "to": to, "from": from, "body": body, "media_url": media_url, "callback_url": callback_url }))
            .map_err(|e| SendError::NotSent(e.to_string()))?;
        let resp = self
            .http
            .post(&self.send_url)
            .header("content-type", "application/json")
            .header(HEADER, sign(&self.secret, &payload))
            .body(payload)
            .send()
            .await
            .map_err(|e| {
                let why = format!("partner {} unreachable: {e}", self.id);
                if e.is_connect() {
                    SendError::NotSent(why)
                } else {
                    SendError::Unknown(why)
                }
            })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {}
            429 | 503 => return Err(SendError::NotSent(format!("partner answered {status}"))),
            500..=599 => return Err(SendError::Unknown(format!("partner answered {status}"))),
            _ => {
                return Err(SendError::Refused {
                    status,
                    code: None,
                    message: format!("partner {} refused it", self.id),
                })
            }
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| SendError::Unknown(format!("unreadable answer: {e}")))?;
        Ok(v["message_id"].as_str().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_body_and_secret() {
        let s = sign(b"secret", b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify(b"secret", b"{\"a\":1}", &s));
        assert!(!verify(b"secret", b"{\"a\":2}", &s));
        assert!(!verify(b"other", b"{\"a\":1}", &s));
    }
}
