//! The bridge's behaviour: texts in, conversation rooms, responders' replies out, opt-outs.

use std::sync::Arc;

use appservice_runtime::{AsClient, BoxError, Store};
use ruma::{
    api::client::{profile::set_display_name, room::create_room, state::send_state_event},
    events::AnyStateEventContent,
    serde::Raw,
    OwnedRoomId, OwnedUserId, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    config::Config,
    outbox::{OutboxEntry, Pacer, Status, REFERENCES, REFERENCE_SIDS, SIDS},
    privacy::{NumberVault, PuppetNamer},
    segments,
};

/// The conversation state event the bridge writes when it opens a room.
pub const CONVERSATION_EVENT: &str = "org.haven.conversation";

const CONVERSATIONS: &str = "conversations";
const ROOMS: &str = "rooms";
const MESSAGE_SIDS: &str = "message_sids";

/// Why an inbound text opens no conversation (answered as handled, so the carrier does not
/// retry; logged and counted in `sms_bridge_failures_total{kind}` for operators to alert on).
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum Refusal {
    /// No program answers on the number texted: a configuration mistake.
    #[error("a text arrived for a number no program answers on; add the number to a program")]
    UnconfiguredNumber,
    /// The sender is a short code or an alphanumeric sender ID (carrier notices, marketing),
    /// which cannot be a person to answer.
    #[error("a text from a short code or sender ID was not bridged")]
    NotAPhone,
}

impl Refusal {
    pub fn kind(self) -> &'static str {
        match self {
            Self::UnconfiguredNumber => "unconfigured_number",
            Self::NotAPhone => "not_a_phone_number",
        }
    }
}

/// One texter's conversation, keyed by their puppet's localpart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub room_id: OwnedRoomId,
    pub affiliate: String,
    pub program: String,
    /// The program's number or messaging service: replies go out from it.
    pub sender: String,
    /// The texter's number, encrypted.
    pub number: String,
    #[serde(default)]
    pub opted_out: bool,
    /// `twilio` or a partner's id.
    #[serde(default = "twilio")]
    pub provider: String,
}

fn twilio() -> String {
    "twilio".into()
}

/// An inbound text as the provider delivered it.
pub struct Inbound {
    pub message_sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
    /// MMS attachments: (URL, content type as the carrier announced it).
    pub media: Vec<(String, String)>,
    /// The carrier's own opt-out classification (Twilio's `OptOutType`: STOP, START, HELP).
    pub opt_out_type: Option<String>,
}

pub struct Bridge {
    pub config: Config,
    pub client: AsClient,
    pub store: Store,
    pub namer: PuppetNamer,
    pub vault: NumberVault,
    /// Twilio's API, for fetching MMS attachments.
    pub twilio: Option<crate::twilio::TwilioClient>,
    /// Carriers by id (`twilio` and each partner), for sending.
    pub providers: std::collections::HashMap<String, std::sync::Arc<dyn crate::provider::Provider>>,
    /// `@<sender_localpart>:<server>`
    pub bot: OwnedUserId,
    /// One lock per texter: their texts and replies are handled in order, different texters
    /// in parallel.
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub pacer: Pacer,
    pub metrics: crate::metrics::Metrics,
    /// Partner carriers by id.
    pub partners: std::collections::HashMap<String, crate::partner::PartnerClient>,
    /// Wakes the outbox worker when a reply is queued.
    pub outbox_wake: tokio::sync::Notify,
}

const STOP_WORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const START_WORDS: &[&str] = &["START", "UNSTOP", "YES"];
const HELP_WORDS: &[&str] = &["HELP", "INFO"];

impl Bridge {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        client: AsClient,
        store: Store,
        namer: PuppetNamer,
        vault: NumberVault,
        providers: std::collections::HashMap<String, std::sync::Arc<dyn crate::provider::Provider>>,
        bot: OwnedUserId,
        partners: std::collections::HashMap<String, crate::partner::PartnerClient>,
        twilio: Option<crate::twilio::TwilioClient>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            client,
            store,
            namer,
            vault,
            providers,
            bot,
            locks: Default::default(),
            pacer: Pacer::default(),
            metrics: crate::metrics::Metrics::new(),
            partners,
            twilio,
            outbox_wake: tokio::sync::Notify::new(),
        })
    }

    fn texter_lock(&self, puppet_local: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(puppet_local.to_owned()).or_default().clone()
    }

    fn user(&self, localpart: &str) -> Result<OwnedUserId, BoxError> {
        Ok(UserId::parse(format!(
            "@{localpart}:{}",
            self.config.bridge.server_name
        ))?)
    }

    /// The bridge's own texts (auto-response, HELP, the DELETE confirmation): sent at once,
    /// part by part and paced, without the outbox's retries; answers the carrier's IDs.
    pub async fn text_texter(
        &self,
        conv: &Conversation,
        body: &str,
    ) -> Result<Vec<String>, BoxError> {
        let to = self.vault.decrypt(&conv.number)?;
        let provider = self
            .providers
            .get(&conv.provider)
            .ok_or_else(|| format!("unknown provider {}", conv.provider))?;
        let mut ids = Vec::new();
        for part in provider.parts(body) {
            let reference = crate::outbox::new_reference();
            let wait = self.pacer.reserve(
                &conv.sender,
                segments::analyse(&part).segments,
                self.config.pacing.segments_per_second,
            );
            tokio::time::sleep(wait).await;
            ids.push(
                provider
                    .send(crate::provider::Part {
                        to: &to,
                        from: &conv.sender,
                        body: &part,
                        media_url: None,
                        reference: &reference,
                        validity_s: self.config.pacing.validity_period_s,
                    })
                    .await?,
            );
        }
        Ok(ids)
    }

    /// The conversation of a puppet.
    pub fn conversation(&self, puppet_local: &str) -> Result<Option<Conversation>, BoxError> {
        Ok(self.store.get(CONVERSATIONS, puppet_local)?)
    }

    async fn notice(&self, room: &ruma::RoomId, text: &str) -> Result<(), BoxError> {
        self.client.send_text(room, text, true).await?;
        Ok(())
    }

    /// The bridge is out of a conversation room (purged by retention or after DELETE, or
    /// removed by an admin): everything it kept about that conversation goes, from disk too.
    async fn forget_room(&self, room: &str) -> Result<(), BoxError> {
        let Some(puppet_local) = self.store.get::<String>(ROOMS, room)? else {
            return Ok(());
        };
        let lock = self.texter_lock(&puppet_local);
        let _serial = lock.lock().await;
        if self
            .conversation(&puppet_local)?
            .is_some_and(|c| c.room_id.as_str() == room)
        {
            self.store.remove(CONVERSATIONS, &puppet_local)?;
        }
        self.store.remove(ROOMS, room)?;
        crate::outbox::forget_room(&self.store, room)?;
        self.store.flush().await?;
        self.store.compact()?;
        tracing::info!(%room, "conversation forgotten");
        Ok(())
    }

    /// Why a text may not open a conversation, if it may not.
    fn refuse_new(&self, m: &Inbound) -> Option<Refusal> {
        if !crate::config::is_e164(&m.from) {
            return Some(Refusal::NotAPhone);
        }
        if self.config.route(&m.to, &m.body).is_none() {
            return Some(Refusal::UnconfiguredNumber);
        }
        None
    }

    /// Handles one inbound text: compliance keywords, then the conversation room.
    pub async fn inbound(&self, m: Inbound) -> Result<(), BoxError> {
        let puppet_local = self.namer.localpart(&m.from);
        let lock = self.texter_lock(&puppet_local);
        let _serial = lock.lock().await;
        if self.store.contains(MESSAGE_SIDS, &m.message_sid)? {
            return Ok(()); // Twilio retried a webhook we already handled.
        }
        // Twilio's Advanced Opt-Out reports the keyword it recognised; it wins over the body.
        // A compliance keyword stands alone, compared as `keywords` says ("Stop." is STOP).
        let keyword = match m.opt_out_type.as_deref() {
            Some(t) if !t.is_empty() => crate::keywords::words(t).join(" "),
            _ => crate::keywords::words(&m.body).join(" "),
        };
        let existing: Option<Conversation> = self.store.get(CONVERSATIONS, &puppet_local)?;
        // A conversation the escalation handler has ended does not take new texts: a new
        // one starts.
        let existing = match existing {
            Some(c) if self.is_ended(&c).await? => None,
            other => other,
        };

        let conv = match existing {
            Some(c) => c,
            None => {
                if STOP_WORDS.contains(&keyword.as_str()) {
                    // Nothing to stop yet; Twilio's own opt-out still applies.
                    self.store.put(MESSAGE_SIDS, &m.message_sid, &true)?;
                    return Ok(());
                }
                if let Some(why) = self.refuse_new(&m) {
                    // Permanent: the carrier must not retry it, and no room is opened.
                    self.metrics.failures.with_label_values(&[why.kind()]).inc();
                    tracing::error!(kind = why.kind(), "{why}");
                    self.store.put(MESSAGE_SIDS, &m.message_sid, &true)?;
                    self.store.flush().await?;
                    return Ok(());
                }
                self.open_conversation(&m, &puppet_local).await?
            }
        };
        if m.to != conv.sender {
            // The texter wrote to another of the bridge's numbers: the conversation goes on
            // here (one conversation per texter), and the room is told.
            let line = self
                .config
                .programs_for(&m.to)
                .next()
                .map_or("another line".to_owned(), |(_, p)| {
                    format!("the {}", p.name)
                });
            self.notice(
                &conv.room_id,
                &format!("The texter wrote this to {line}'s number; it is shown here, in their open conversation, and replies still go from this conversation's number."),
            )
            .await?;
        }
        let mut conv = conv;
        let puppet = self.user(&puppet_local)?;

        if STOP_WORDS.contains(&keyword.as_str()) {
            conv.opted_out = true;
            self.metrics.opt_outs.inc();
            self.store.put(CONVERSATIONS, &puppet_local, &conv)?;
            self.notice(
                &conv.room_id,
                "The texter opted out (STOP). Replies will not be sent until they text START.",
            )
            .await?;
        } else if START_WORDS.contains(&keyword.as_str()) && conv.opted_out {
            conv.opted_out = false;
            self.store.put(CONVERSATIONS, &puppet_local, &conv)?;
            self.notice(&conv.room_id, "The texter opted back in (START).")
                .await?;
        } else if keyword == "DELETE" {
            self.request_deletion(&mut conv, &puppet_local).await?;
        } else if HELP_WORDS.contains(&keyword.as_str()) {
            let help = self.program_help(&conv);
            self.text_texter(&conv, &help).await?;
            self.notice(
                &conv.room_id,
                "The texter asked for help; the program's help text was sent.",
            )
            .await?;
        } else {
            if !m.body.trim().is_empty() {
                self.client
                    .as_user(&puppet)
                    .send_text(&conv.room_id, &m.body, false)
                    .await?;
            } else if m.media.is_empty() {
                // Nothing to show as the texter's words: said by the bridge instead.
                self.notice(&conv.room_id, "The texter sent an empty text.")
                    .await?;
            }
            for (url, announced) in &m.media {
                self.bridge_attachment(&puppet, &conv.room_id, url, announced)
                    .await?;
            }
        }
        self.store.put(MESSAGE_SIDS, &m.message_sid, &true)?;
        self.store.flush().await?;
        self.metrics.inbound.inc();
        Ok(())
    }

    /// DELETE: records the request in the conversation state (the escalation handler's
    /// retention path acts on `deletion_requested`), tells the responders, confirms to the
    /// texter, and stops further texts to them.
    async fn request_deletion(
        &self,
        conv: &mut Conversation,
        puppet_local: &str,
    ) -> Result<(), BoxError> {
        let state = self
            .client
            .send(
                ruma::api::client::state::get_state_event_for_key::v3::Request::new(
                    conv.room_id.clone(),
                    CONVERSATION_EVENT.into(),
                    String::new(),
                ),
            )
            .await?;
        let mut content: Value = serde_json::from_str(state.event_or_content.get())?;
        content["deletion_requested"] = json!(true);
        let raw: Raw<AnyStateEventContent> =
            Raw::from_json(serde_json::value::to_raw_value(&content)?);
        self.client
            .send(send_state_event::v3::Request::new_raw(
                conv.room_id.clone(),
                CONVERSATION_EVENT.into(),
                String::new(),
                raw,
            ))
            .await?;
        self.text_texter(conv, "We received your request and will delete your conversation data. You will get no more texts from us unless you write again.").await?;
        conv.opted_out = true;
        self.store.put(CONVERSATIONS, puppet_local, &*conv)?;
        self.notice(&conv.room_id, "The texter asked for their data to be deleted (DELETE). The conversation is marked for deletion; replies will not be sent.").await?;
        Ok(())
    }

    fn program_help(&self, conv: &Conversation) -> String {
        self.config
            .programs_for(&conv.sender)
            .find(|(_, p)| p.id == conv.program)
            .map(|(_, p)| p.help_text.clone())
            .unwrap_or_else(|| "Reply STOP to stop messages.".into())
    }

    /// First contact: puppet, room, conversation state, auto-response.
    #[allow(deprecated)] // the display-name endpoint works on every homeserver, unlike profile fields
    async fn open_conversation(
        &self,
        m: &Inbound,
        puppet_local: &str,
    ) -> Result<Conversation, BoxError> {
        let (affiliate, program) = self
            .config
            .route(&m.to, &m.body)
            .ok_or_else(|| format!("no program answers on {}", m.to))?;
        let puppet = self.user(puppet_local)?;
        self.client.ensure_registered(puppet_local).await?;
        let label = self.namer.label(&m.from);
        self.client
            .as_user(&puppet)
            .send(set_display_name::v3::Request::new(
                puppet.clone(),
                Some(label.clone()),
            ))
            .await?;

        let mut req = create_room::v3::Request::new();
        req.name = Some(format!("{label} · {}", program.name));
        req.preset = Some(create_room::v3::RoomPreset::PrivateChat);
        req.invite = vec![puppet.clone()];
        let escalation_bot = match &self.config.bridge.escalation_bot {
            Some(b) => Some(UserId::parse(b.as_str())?),
            None => None,
        };
        req.invite.extend(escalation_bot.clone());
        let intake_bot = match &self.config.bridge.intake_bot {
            Some(b) => Some(UserId::parse(b.as_str())?),
            None => None,
        };
        req.invite.extend(intake_bot.clone());
        let room = self.client.send(req).await?.room_id;
        // The intake bot may write its summary state (state_default is 50); the escalation
        // handler runs the conversation: its state, power levels, invitations.
        let mut levels = Vec::new();
        if let Some(b) = &intake_bot {
            levels.push((b.as_ref(), 50));
        }
        if let Some(b) = &escalation_bot {
            levels.push((b.as_ref(), 100));
        }
        if !levels.is_empty() {
            self.client.set_power_levels(&room, &levels).await?;
        }
        self.client.as_user(&puppet).join(&room).await?;
        // Who asks the texter what: the intake bot first (when there is one), then the
        // escalation handler's entry survey; both are bots, never responders.
        let bots: Vec<&UserId> = escalation_bot
            .iter()
            .chain(intake_bot.iter())
            .map(|b| b.as_ref())
            .collect();
        let mut content = json!({
            "affiliate": affiliate.id,
            "program": program.id,
            "provider": program.provider,
            "state": "new",
            "puppet": puppet,
            "bots": bots,
        });
        if let Some(b) = &intake_bot {
            content["intake"] = json!(b);
        }
        let raw: Raw<AnyStateEventContent> =
            Raw::from_json(serde_json::value::to_raw_value(&content)?);
        self.client
            .send(send_state_event::v3::Request::new_raw(
                room.clone(),
                CONVERSATION_EVENT.into(),
                String::new(),
                raw,
            ))
            .await?;
        let sender = program
            .number
            .clone()
            .or(program.messaging_service_sid.clone())
            .unwrap_or_default();
        let conv = Conversation {
            room_id: room.clone(),
            affiliate: affiliate.id.clone(),
            program: program.id.clone(),
            sender,
            number: self.vault.encrypt(&m.from),
            opted_out: false,
            provider: program.provider.clone(),
        };
        self.store.put(CONVERSATIONS, puppet_local, &conv)?;
        self.store
            .put(ROOMS, room.as_str(), &puppet_local.to_owned())?;
        self.store.flush().await?;
        let auto = format!(
            "{} Reply STOP to stop texts, HELP for help, DELETE to delete your data.",
            program.auto_response.trim_end()
        );
        self.text_texter(&conv, &auto).await?;
        Ok(conv)
    }

    /// Handles an event from the homeserver: responders' text messages go out as SMS.
    pub async fn matrix_event(&self, ev: &Value) -> Result<(), BoxError> {
        if ev["type"] == "m.room.member"
            && ev["state_key"] == self.bot.as_str()
            && matches!(ev["content"]["membership"].as_str(), Some("leave" | "ban"))
        {
            if let Some(room) = ev["room_id"].as_str() {
                return self.forget_room(room).await;
            }
        }
        if ev["type"] != "m.room.message" {
            return Ok(());
        }
        let Some(room) = ev["room_id"].as_str() else {
            return Ok(());
        };
        let Some(sender) = ev["sender"].as_str() else {
            return Ok(());
        };
        let Some(event_id) = ev["event_id"].as_str() else {
            return Ok(());
        };
        let Some(puppet_local) = self.store.get::<String>(ROOMS, room)? else {
            return Ok(());
        };
        let sender_local = sender
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or_default();
        if sender == self.bot.as_str() || sender_local.starts_with("sms_") {
            return Ok(()); // the bridge's own notices and texters' messages
        }
        let msgtype = ev["content"]["msgtype"].as_str().unwrap_or_default();
        if !matches!(msgtype, "m.text" | "m.image") {
            return Ok(());
        }
        let text = ev["content"]["body"].as_str().unwrap_or_default();
        if text.trim() == "!reveal" {
            return self.reveal_request(room, sender, &puppet_local, None).await;
        }
        // The escalation handler relays a supervisor's `!reveal <n>` (supervisors cannot write
        // in conversation rooms): `!reveal @supervisor:server`, the supervisor still checked.
        if let Some(for_user) = text.trim().strip_prefix("!reveal ") {
            if self.config.bridge.escalation_bot.as_deref() == Some(sender) {
                return self
                    .reveal_request(room, for_user.trim(), &puppet_local, Some(sender))
                    .await;
            }
        }
        if msgtype == "m.text" && text.trim_start().starts_with('!') {
            return Ok(()); // a command for a bot in the room (the escalation handler's), not a reply
        }
        let lock = self.texter_lock(&puppet_local);
        let _serial = lock.lock().await;
        let Some(conv) = self.conversation(&puppet_local)? else {
            return Ok(());
        };
        let room_id = OwnedRoomId::try_from(room)?;
        let body = ev["content"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let status = if conv.opted_out {
            Status::Refused
        } else {
            Status::Queued
        };
        let (body, media) = match msgtype {
            "m.image" => (
                String::new(),
                ev["content"]["url"].as_str().map(str::to_owned),
            ),
            _ => (body, None),
        };
        let entry = OutboxEntry::new(puppet_local, room_id.clone(), body, media, status);
        if !self.enqueue(event_id, entry)? {
            return Ok(()); // the homeserver redelivered an event already handled
        }
        self.store.flush().await?;
        if conv.opted_out {
            self.notice(
                &room_id,
                "Not sent: the texter has opted out (STOP). They can text START to resume.",
            )
            .await?;
        } else {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}

impl Bridge {
    /// A delivery status from the carrier: "delivered" becomes the texter's read receipt on
    /// the responder's message; "undelivered"/"failed" a notice replying to it with the error's
    /// meaning. `reference` (from the status callback URL) names the part it is about, which
    /// also tells the outbox that a send whose answer never came did go out.
    pub async fn status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
        reference: Option<&str>,
    ) -> Result<(), BoxError> {
        if let Some(reference) = reference {
            if let Some(reply) = self.store.get::<(String, String)>(REFERENCES, reference)? {
                if !self.store.contains(REFERENCE_SIDS, reference)? {
                    self.store.put(REFERENCE_SIDS, reference, &sid.to_owned())?;
                }
                if !self.store.contains(SIDS, sid)? {
                    self.store.put(SIDS, sid, &reply)?;
                }
                self.store.flush().await?;
            }
        }
        let Some((room, event_id)) = self.store.get::<(String, String)>(SIDS, sid)? else {
            return Ok(());
        };
        let Some(puppet_local) = self.store.get::<String>(ROOMS, &room)? else {
            return Ok(());
        };
        let room = OwnedRoomId::try_from(room)?;
        match status {
            "delivered" => {
                let puppet = self.user(&puppet_local)?;
                let req = ruma::api::client::receipt::create_receipt::v3::Request::new(
                    room,
                    ruma::api::client::receipt::create_receipt::v3::ReceiptType::Read,
                    ruma::OwnedEventId::try_from(event_id)?,
                );
                self.client.as_user(&puppet).send(req).await?;
            }
            "undelivered" | "failed" => {
                let code = error_code.unwrap_or("unknown");
                let text = format!(
                    "This reply was not delivered to the texter's phone (carrier error {code}: {}).",
                    error_meaning(code)
                );
                self.tell(&room, &event_id, &format!("undelivered-{sid}"), &text)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Short meanings of the Twilio error codes responders meet most.
pub fn error_meaning(code: &str) -> &'static str {
    match code {
        "30003" => "the phone is unreachable or off",
        "30004" => "the message was blocked by the recipient or carrier",
        "30005" => "the number is unknown or no longer exists",
        "30006" => "the number is a landline or cannot receive texts",
        "30007" => "the carrier filtered the message",
        "30008" => "unknown delivery error",
        "21610" => "the texter has opted out with STOP",
        _ => "see Twilio's error reference",
    }
}

/// A pending reveal: who may open it, for which texter, until when (ms since the epoch).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reveal {
    pub supervisor: String,
    pub puppet: String,
    pub expires_ms: u64,
}

const REVEALS: &str = "reveals";
const AUDIT: &str = "audit";
/// How long a reveal link stays valid.
const REVEAL_TTL_MS: u64 = 5 * 60 * 1000;

impl Bridge {
    /// `!reveal` from a program supervisor: a one-time link only that supervisor can open. The
    /// number itself never enters Matrix; the request and the opening are both logged.
    /// A reveal for `sender`, asked by them or relayed for them by `via` (the escalation
    /// handler).
    async fn reveal_request(
        &self,
        room: &str,
        sender: &str,
        puppet_local: &str,
        via: Option<&str>,
    ) -> Result<(), BoxError> {
        let room_id = OwnedRoomId::try_from(room)?;
        let Some(conv) = self.conversation(puppet_local)? else {
            return Ok(());
        };
        let allowed = self
            .config
            .programs_for(&conv.sender)
            .any(|(_, p)| p.id == conv.program && p.supervisors.iter().any(|s| s == sender));
        if !allowed {
            self.notice(
                &room_id,
                "Only this program's supervisors can reveal a texter's number.",
            )
            .await?;
            return Ok(());
        }
        let token: String = {
            use rand::Rng;
            rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        let reveal = Reveal {
            supervisor: sender.to_owned(),
            puppet: puppet_local.to_owned(),
            expires_ms: appservice_runtime::now_ms() + REVEAL_TTL_MS,
        };
        self.store.put(REVEALS, &token, &reveal)?;
        let what = if via.is_some() {
            "reveal_requested_via_escalation_handler"
        } else {
            "reveal_requested"
        };
        self.audit(what, sender, puppet_local)?;
        self.store.flush().await?;
        tracing::warn!(
            supervisor = sender,
            puppet = puppet_local,
            "number reveal requested"
        );
        let url = format!(
            "{}/reveal/{token}",
            self.config.bridge.public_url.trim_end_matches('/')
        );
        self.notice(
            &room_id,
            &format!("{sender} asked to reveal the texter's number for an emergency escalation (logged). The link works once, for them only, for 5 minutes: {url}"),
        )
        .await
    }

    /// Opens a reveal link for the Matrix user behind `access_token`.
    pub async fn reveal_open(
        &self,
        token: &str,
        access_token: &str,
    ) -> Result<Option<String>, BoxError> {
        let Some(reveal) = self.store.get::<Reveal>(REVEALS, token)? else {
            return Ok(None);
        };
        if reveal.expires_ms < appservice_runtime::now_ms() {
            self.store.remove(REVEALS, token)?;
            return Ok(None);
        }
        let whoami: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/_matrix/client/v3/account/whoami",
                self.config.bridge.homeserver_url.trim_end_matches('/')
            ))
            .bearer_auth(access_token)
            .send()
            .await?
            .json()
            .await?;
        if whoami["user_id"].as_str() != Some(reveal.supervisor.as_str()) {
            self.audit(
                "reveal_refused",
                whoami["user_id"].as_str().unwrap_or("unknown"),
                &reveal.puppet,
            )?;
            self.store.flush().await?;
            return Ok(None);
        }
        let Some(conv) = self.conversation(&reveal.puppet)? else {
            return Ok(None);
        };
        // One use: the link is gone once its supervisor opened it.
        self.store.remove(REVEALS, token)?;
        self.audit("reveal_opened", &reveal.supervisor, &reveal.puppet)?;
        self.store.flush().await?;
        tracing::warn!(supervisor = %reveal.supervisor, puppet = %reveal.puppet, "number revealed");
        Ok(Some(self.vault.decrypt(&conv.number)?))
    }

    fn audit(&self, what: &str, who: &str, puppet: &str) -> Result<(), BoxError> {
        let at = appservice_runtime::now_ms();
        let key = format!("{at:020}-{what}");
        self.store.put(
            AUDIT,
            &key,
            &json!({ "at": at, "what": what, "who": who, "puppet": puppet }),
        )?;
        Ok(())
    }

    /// The reveal audit trail, oldest first.
    pub fn audit_log(&self) -> Result<Vec<Value>, BoxError> {
        Ok(self
            .store
            .entries::<Value>(AUDIT)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
}

/// Largest MMS attachment the bridge accepts (Twilio's own limit is 5 MB per message).
const MAX_ATTACHMENT: usize = 5 * 1024 * 1024;

impl Bridge {
    /// Fetches an MMS attachment and posts it into the room as the texter's media message.
    async fn bridge_attachment(
        &self,
        puppet: &UserId,
        room: &ruma::RoomId,
        url: &str,
        announced: &str,
    ) -> Result<(), BoxError> {
        let twilio = self
            .twilio
            .as_ref()
            .ok_or("MMS arrived but Twilio is not configured")?;
        let (bytes, fetched_type) = twilio.fetch_media(url, MAX_ATTACHMENT).await?;
        let content_type = if announced.is_empty() {
            fetched_type
        } else {
            announced.to_owned()
        };
        let size = bytes.len();
        let ext = content_type
            .split('/')
            .nth(1)
            .unwrap_or("bin")
            .split(';')
            .next()
            .unwrap_or("bin")
            .to_owned();
        let filename = format!("attachment.{ext}");
        let mut upload = ruma::api::client::media::create_content::v3::Request::new(bytes);
        upload.content_type = Some(content_type.clone());
        upload.filename = Some(filename.clone());
        let uri = self.client.as_user(puppet).send(upload).await?.content_uri;
        let msgtype = match content_type.split('/').next() {
            Some("image") => "m.image",
            Some("video") => "m.video",
            Some("audio") => "m.audio",
            _ => "m.file",
        };
        let content = json!({
            "msgtype": msgtype,
            "body": filename,
            "url": uri,
            "info": { "mimetype": content_type, "size": size },
        });
        let raw: Raw<ruma::events::AnyMessageLikeEventContent> =
            Raw::from_json(serde_json::value::to_raw_value(&content)?);
        let req = ruma::api::client::message::send_message_event::v3::Request::new_raw(
            room.to_owned(),
            ruma::TransactionId::new(),
            "m.room.message".into(),
            raw,
        );
        self.client.as_user(puppet).send(req).await?;
        Ok(())
    }
}

/// Conversation states after which a texter's next text starts a new conversation.
const ENDED_STATES: &[&str] = &["closed", "expired", "failed"];

impl Bridge {
    /// Whether the conversation's state event (kept by the escalation handler) says it ended.
    async fn is_ended(&self, conv: &Conversation) -> Result<bool, BoxError> {
        let req = ruma::api::client::state::get_state_event_for_key::v3::Request::new(
            conv.room_id.clone(),
            CONVERSATION_EVENT.into(),
            String::new(),
        );
        match self.client.send(req).await {
            Ok(r) => {
                let v: Value = serde_json::from_str(r.event_or_content.get())?;
                Ok(v["state"]
                    .as_str()
                    .is_some_and(|s| ENDED_STATES.contains(&s)))
            }
            Err(e) if e.errcode() == Some("M_NOT_FOUND") || e.errcode() == Some("M_FORBIDDEN") => {
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }
}
