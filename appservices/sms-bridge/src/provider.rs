//! Carriers behind one interface, so the room logic never depends on which one a program uses.
//! One call sends one part, once; the outbox decides about retries (see `outbox`).

use std::{future::Future, pin::Pin};

use crate::{
    partner::PartnerClient,
    segments,
    twilio::{Outgoing, SendError, TwilioClient},
};

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One part of a reply, as handed to a carrier.
pub struct Part<'a> {
    pub to: &'a str,
    /// A number, a sender ID or a messaging service.
    pub from: &'a str,
    pub body: &'a str,
    pub media_url: Option<&'a str>,
    /// Unique to this part: the carrier reports the part's delivery with it, which also tells
    /// the bridge that a send whose answer never came did go out.
    pub reference: &'a str,
    /// How long the carrier may keep trying to deliver it.
    pub validity_s: u32,
}

/// A message the carrier has recently taken for a number.
pub struct Recent {
    pub id: String,
    pub body: String,
    pub created_ms: u64,
}

pub trait Provider: Send + Sync {
    /// How a reply is cut into the messages this carrier takes.
    fn parts(&self, body: &str) -> Vec<String>;

    /// Hands one part over; answers the carrier's message ID.
    fn send<'a>(&'a self, part: Part<'a>) -> Fut<'a, Result<String, SendError>>;

    /// The messages recently taken from `from` to `to`, or `None` when this carrier cannot
    /// say (the outcome of an unanswered send then stays unknown).
    fn recent<'a>(&'a self, to: &'a str, from: &'a str) -> Fut<'a, Option<Vec<Recent>>>;
}

/// Twilio: long texts are split at its 1,600-unit limit.
pub struct TwilioProvider {
    pub client: TwilioClient,
    /// `…/twilio/status`; each part adds its reference.
    pub status_callback: String,
}

impl Provider for TwilioProvider {
    fn parts(&self, body: &str) -> Vec<String> {
        segments::split(body)
    }

    fn send<'a>(&'a self, part: Part<'a>) -> Fut<'a, Result<String, SendError>> {
        Box::pin(async move {
            let callback = format!("{}?ref={}", self.status_callback, part.reference);
            let m = Outgoing {
                to: part.to,
                from: part.from,
                body: part.body,
                media_url: part.media_url,
                status_callback: &callback,
                validity_period_s: part.validity_s,
            };
            Ok(self.client.send(&m).await?.sid)
        })
    }

    fn recent<'a>(&'a self, to: &'a str, from: &'a str) -> Fut<'a, Option<Vec<Recent>>> {
        Box::pin(async move {
            let listed = match self.client.recent(to, from).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list recent messages");
                    return None;
                }
            };
            Some(
                listed
                    .into_iter()
                    .filter_map(|m| {
                        Some(Recent {
                            created_ms: m.created_ms()?,
                            body: m.body?,
                            id: m.sid,
                        })
                    })
                    .collect(),
            )
        })
    }
}

/// A partner carrier's signed JSON webhook.
pub struct PartnerProvider {
    pub client: PartnerClient,
    pub status_callback: String,
}

impl Provider for PartnerProvider {
    fn parts(&self, body: &str) -> Vec<String> {
        vec![body.to_owned()]
    }

    fn send<'a>(&'a self, part: Part<'a>) -> Fut<'a, Result<String, SendError>> {
        Box::pin(async move {
            let callback = format!("{}?ref={}", self.status_callback, part.reference);
            self.client
                .send(part.to, part.from, part.body, part.media_url, &callback)
                .await
        })
    }

    fn recent<'a>(&'a self, _to: &'a str, _from: &'a str) -> Fut<'a, Option<Vec<Recent>>> {
        Box::pin(async { None })
    }
}
