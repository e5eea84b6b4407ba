//! Carriers behind one interface, so the room logic never depends on which one a program uses.

use std::{future::Future, pin::Pin};

use crate::{
    partner::PartnerClient,
    segments,
    twilio::{Outgoing, TwilioClient},
};

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + 'a>>;

pub trait Provider: Send + Sync {
    /// Sends `body` from `from` (a number or sender ID) to `to`; returns the carrier's message
    /// IDs, one per part sent.
    fn send<'a>(
        &'a self,
        to: &'a str,
        from: &'a str,
        body: &'a str,
        media_url: Option<&'a str>,
    ) -> SendFuture<'a>;
}

/// Twilio: long texts are split at its 1,600-character limit.
pub struct TwilioProvider {
    pub client: TwilioClient,
    pub status_callback: String,
    pub validity_period_s: u32,
}

impl Provider for TwilioProvider {
    fn send<'a>(
        &'a self,
        to: &'a str,
        from: &'a str,
        body: &'a str,
        media_url: Option<&'a str>,
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let mut sids = Vec::new();
            for (i, part) in segments::split(body).into_iter().enumerate() {
                let m = Outgoing {
                    to,
                    from,
                    body: &part,
                    // The picture goes with the first part.
                    media_url: if i == 0 { media_url } else { None },
                    status_callback: &self.status_callback,
                    validity_period_s: self.validity_period_s,
                };
                sids.push(self.client.send(&m).await.map_err(|e| e.to_string())?.sid);
            }
            Ok(sids)
        })
    }
}

/// A partner carrier's signed JSON webhook.
pub struct PartnerProvider {
    pub client: PartnerClient,
    pub status_callback: String,
}

impl Provider for PartnerProvider {
    fn send<'a>(
        &'a self,
        to: &'a str,
        from: &'a str,
        body: &'a str,
        media_url: Option<&'a str>,
    ) -> SendFuture<'a> {
        Box::pin(async move {
            Ok(vec![
                self.client
                    .send(to, from, body, media_url, &self.status_callback)
                    .await?,
            ])
        })
    }
}
