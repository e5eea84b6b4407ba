//! A small Twilio REST client (Messages.json) on reqwest, with a configurable base URL so tests
//! use a local double. Rate-limit (429) and server (5xx) answers are retried with backoff.

use std::time::Duration;

use serde::Deserialize;

use crate::config::Twilio as TwilioConfig;

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    #[error("Twilio refused the message ({status}): {code:?} {message}")]
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("Twilio could not be reached: {0}")]
    Transport(String),
}

#[derive(Debug, Deserialize)]
pub struct SentMessage {
    pub sid: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    /// Basic-auth user: the account SID or an API key SID.
    user: String,
    secret: String,
}

/// Where and how one message goes.
pub struct Outgoing<'a> {
    pub to: &'a str,
    /// A number or a messaging service SID (`MG…`).
    pub from: &'a str,
    pub body: &'a str,
    pub media_url: Option<&'a str>,
    pub status_callback: &'a str,
    pub validity_period_s: u32,
}

impl TwilioClient {
    /// `secret` is the auth token (or the API key's secret when `api_key_sid` is set).
    pub fn new(cfg: &TwilioConfig, secret: String) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: cfg.api_base_url.trim_end_matches('/').to_owned(),
            account_sid: cfg.account_sid.clone(),
            user: cfg
                .api_key_sid
                .clone()
                .unwrap_or_else(|| cfg.account_sid.clone()),
            secret,
        }
    }

    /// Downloads an MMS attachment (Twilio serves them behind the account's credentials).
    /// Returns the bytes and the content type.
    pub async fn fetch_media(
        &self,
        url: &str,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, String), TwilioError> {
        let r = self
            .http
            .get(url)
            .basic_auth(&self.user, Some(&self.secret))
            .send()
            .await
            .map_err(|e| TwilioError::Transport(e.to_string()))?;
        if !r.status().is_success() {
            return Err(TwilioError::Rejected {
                status: r.status().as_u16(),
                code: None,
                message: "media fetch".into(),
            });
        }
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| TwilioError::Transport(e.to_string()))?;
        if bytes.len() > max_bytes {
            return Err(TwilioError::Rejected {
                status: 413,
                code: None,
                message: "attachment too large".into(),
            });
        }
        Ok((bytes.to_vec(), ct))
    }

    /// Creates a message, retrying 429 and 5xx answers (1 s doubling, 5 tries).
    pub async fn send(&self, m: &Outgoing<'_>) -> Result<SentMessage, TwilioError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base, self.account_sid
        );
        let mut form: Vec<(&str, String)> = vec![
            ("To", m.to.to_owned()),
            ("Body", m.body.to_owned()),
            ("StatusCallback", m.status_callback.to_owned()),
            ("ValidityPeriod", m.validity_period_s.to_string()),
        ];
        if m.from.starts_with("MG") {
            form.push(("MessagingServiceSid", m.from.to_owned()));
        } else {
            form.push(("From", m.from.to_owned()));
        }
        if let Some(media) = m.media_url {
            form.push(("MediaUrl", media.to_owned()));
        }
        let mut delay = Duration::from_secs(1);
        for attempt in 0..5 {
            let resp = self
                .http
                .post(&url)
                .basic_auth(&self.user, Some(&self.secret))
                .form(&form)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {
                    return r
                        .json()
                        .await
                        .map_err(|e| TwilioError::Transport(e.to_string()));
                }
                Ok(r)
                    if (r.status().as_u16() == 429 || r.status().is_server_error())
                        && attempt < 4 =>
                {
                    tracing::warn!(status = r.status().as_u16(), "Twilio busy; retrying");
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    return Err(TwilioError::Rejected {
                        status,
                        code: v["code"].as_i64(),
                        message: v["message"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                Err(e) if attempt < 4 => tracing::warn!(error = %e, "Twilio unreachable; retrying"),
                Err(e) => return Err(TwilioError::Transport(e.to_string())),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        Err(TwilioError::Transport("gave up after retries".into()))
    }
}
