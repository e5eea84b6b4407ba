//! The generic partner-carrier provider: JSON in, JSON out, each body signed with
//! HMAC-SHA256 under a shared secret in `X-Haven-Signature: sha256=<hex>`.
//!
//! Inbound (`POST /partner/<id>/sms`): `{"message_id", "from", "to", "body"}`.
//! Outbound (`POST <send_url>`): `{"to", "from", "body", "media_url", "callback_url"}`, answered with
//! `{"message_id"}`.

pub use appservice_runtime::signing::{sign, verify, HEADER};

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
    ) -> Result<String, String> {
        let payload = serde_json::to_vec(&serde_json::json!({ "to": to, "from": from, "body": body, "media_url": media_url, "callback_url": callback_url }))
            .map_err(|e| e.to_string())?;
        let resp = self
            .http
            .post(&self.send_url)
            .header("content-type", "application/json")
            .header(HEADER, sign(&self.secret, &payload))
            .body(payload)
            .send()
            .await
            .map_err(|e| format!("partner {} unreachable: {e}", self.id))?;
        if !resp.status().is_success() {
            return Err(format!("partner {} answered {}", self.id, resp.status()));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
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
