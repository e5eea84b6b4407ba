//! A small Twilio REST client (Messages.json) on reqwest, with a configurable base URL so tests
//! use a local double. One call is one attempt: retrying is the outbox's, which knows how long a
//! reply is worth trying and never resends one that may have gone out.

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
                .timeout(Duration::from_secs(u64::from(cfg.request_timeout_s)))
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

    /// Creates a message: one attempt, its outcome classified for the outbox.
    pub async fn send(&self, m: &Outgoing<'_>) -> Result<SentMessage, SendError> {
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
        let resp = self
            .http
            .post(&url)
            .basic_auth(&self.user, Some(&self.secret))
            .form(&form)
            .send()
            .await;
        let r = match resp {
            Ok(r) => r,
            // Never connected: nothing was sent.
            Err(e) if e.is_connect() => return Err(SendError::NotSent(e.to_string())),
            // Sent, and no answer in time (or the connection broke): it may have gone out.
            Err(e) => return Err(SendError::Unknown(e.to_string())),
        };
        let status = r.status().as_u16();
        if r.status().is_success() {
            return r
                .json()
                .await
                .map_err(|e| SendError::Unknown(format!("unreadable answer: {e}")));
        }
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let code = v["code"].as_i64();
        let message = v["message"].as_str().unwrap_or_default().to_owned();
        Err(match status {
            // Too many requests, or unavailable: refused before anything was done.
            429 | 503 => SendError::NotSent(format!("Twilio answered {status}")),
            // Another server error (or a gateway's) may come after the message was created.
            500..=599 => SendError::Unknown(format!("Twilio answered {status}")),
            _ => SendError::Refused {
                status,
                code,
                message,
            },
        })
    }

    /// The most recent messages (newest first, at most 50) from `from` to `to`: how the
    /// outbox finds out whether a send whose answer never came went out.
    pub async fn recent(&self, to: &str, from: &str) -> Result<Vec<Listed>, String> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base, self.account_sid
        );
        let from_key = if from.starts_with("MG") {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let r = self
            .http
            .get(&url)
            .basic_auth(&self.user, Some(&self.secret))
            .query(&[("To", to), (from_key, from), ("PageSize", "50")])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("listing answered {}", r.status()));
        }
        let page: ListPage = r.json().await.map_err(|e| e.to_string())?;
        Ok(page.messages)
    }
}

/// What became of one attempt to hand a message to the carrier.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Certainly not sent (no connection, or refused before being taken): safe to try again.
    #[error("not sent: {0}")]
    NotSent(String),
    /// No clear answer: it may have gone out. Never resend without finding out.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The carrier refused this message; trying again will not help.
    #[error("refused ({status}): {code:?} {message}")]
    Refused {
        status: u16,
        code: Option<i64>,
        message: String,
    },
}

/// One message of a listing.
#[derive(Debug, Deserialize)]
pub struct Listed {
    pub sid: String,
    #[serde(default)]
    pub body: Option<String>,
    /// RFC 2822, as Twilio writes it (`Thu, 03 Dec 2026 16:00:00 +0000`).
    #[serde(default)]
    pub date_created: Option<String>,
}

impl Listed {
    /// When the carrier created it, in ms since the epoch.
    pub fn created_ms(&self) -> Option<u64> {
        let at = chrono::DateTime::parse_from_rfc2822(self.date_created.as_deref()?).ok()?;
        u64::try_from(at.timestamp_millis()).ok()
    }
}

#[derive(Debug, Deserialize)]
struct ListPage {
    #[serde(default)]
    messages: Vec<Listed>,
}
