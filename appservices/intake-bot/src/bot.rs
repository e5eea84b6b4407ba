//! The bot on the Application Service API. Each room it is in is one of three kinds:
//! a volunteer's intake room (the greeting DM, or a direct invite), a texter's conversation
//! room opened by the SMS bridge (the program's questions), or a group room (answers when
//! mentioned). Every message it sends carries its provenance (`org.haven.ai`) and a
//! transaction ID derived from the event it answers, so a redelivered transaction does not
//! make it speak twice.

use std::{sync::Arc, time::Instant};

use appservice_runtime::{AsClient, BoxError, Store};
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    config::IntakeConfig,
    group::{self, RoomSettings, Said, SETTINGS_EVENT},
    interview::Interview,
    manners::{Allowance, AnswerCache, Limits},
    metrics::Metrics,
    model::{Completion, OpenAiClient, Turn},
    profile::{Profile, PROFILE_EVENT},
    texter::{Next, TexterIntake, CONVERSATION_EVENT, SUMMARY_EVENT},
};

/// Volunteer intake rooms.
const ROOMS: &str = "intake_rooms";
/// Rooms where the bot invited someone to a direct chat: their join starts the interview.
const PENDING: &str = "intake_pending";
/// Texter conversation rooms.
const TEXTERS: &str = "texter_rooms";
/// Group rooms and their settings.
const GROUPS: &str = "group_rooms";
/// Each interviewed user's latest profile.
const PROFILES: &str = "profiles";

/// One volunteer intake room: who is being interviewed and how far along.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntakeRoom {
    pub interviewee: OwnedUserId,
    pub interview: Interview,
    /// The conversation so far, for the model backend.
    #[serde(default)]
    pub history: Vec<Turn>,
    /// The room refused the bot's profile state event (the person has been told).
    #[serde(default)]
    pub state_denied: bool,
}

/// Where a bot message came from (`org.haven.ai`).
#[derive(Debug, Clone)]
pub struct Provenance {
    pub backend: &'static str,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Served from the answer cache (no tokens spent this time).
    pub cached: bool,
    /// The offline interviewer answered because the model failed.
    pub fallback: bool,
}

impl Provenance {
    fn offline() -> Self {
        Self {
            backend: "offline",
            model: "haven-slot-filling-1".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached: false,
            fallback: false,
        }
    }

    fn model(c: &Completion) -> Self {
        Self {
            backend: "openai",
            model: c.model.clone(),
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            cached: false,
            fallback: false,
        }
    }
}

const APOLOGY: &str = "Sorry, I couldn't answer just now. Please send that again in a moment.";
const SUMMARY_PROMPT: &str = "Summarise, for the support responder about to take over this text \
conversation, what the texter said in answer to the intake questions, in two or three plain \
sentences. Do not add advice or anything the texter did not say.";

pub struct Bot {
    client: AsClient,
    store: Store,
    bot: OwnedUserId,
    /// The bot's display name, which also counts as a mention.
    display_name: String,
    config: IntakeConfig,
    /// The language model, when configured; the offline interviewer otherwise.
    model: Option<OpenAiClient>,
    pub metrics: Arc<Metrics>,
    limits: Limits,
    cache: AnswerCache<(String, Provenance)>,
}

impl Bot {
    pub fn new(
        client: AsClient,
        store: Store,
        bot: OwnedUserId,
        display_name: String,
        config: IntakeConfig,
    ) -> Self {
        let model = config.model_config().map(OpenAiClient::new);
        Self {
            limits: Limits::new(
                config.room_questions_per_minute,
                config.user_questions_per_minute,
            ),
            cache: AnswerCache::new(std::time::Duration::from_secs(config.cache_ttl_s)),
            metrics: Arc::new(Metrics::new()),
            client,
            store,
            bot,
            display_name,
            config,
            model,
        }
    }

    fn backend(&self) -> &'static str {
        if self.model.is_some() {
            "openai"
        } else {
            "offline"
        }
    }

    /// A message's content with its provenance.
    fn content(&self, msgtype: &str, text: &str, started: Instant, p: &Provenance) -> Value {
        let mut content = json!({
            "msgtype": msgtype,
            "body": text,
            "org.haven.ai": {
                "backend": p.backend,
                "model": p.model,
                "prompt_tokens": p.prompt_tokens,
                "completion_tokens": p.completion_tokens,
                "latency_ms": started.elapsed().as_millis() as u64,
                "cached": p.cached,
            },
        });
        if p.fallback {
            content["org.haven.ai"]["fallback"] = json!(true);
        }
        content
    }

    /// Says `text` in `room`; `txn` ties the message to the event it answers.
    async fn say(
        &self,
        room: &RoomId,
        text: &str,
        started: Instant,
        p: &Provenance,
        msgtype: &str,
        txn: &str,
    ) -> Result<(), BoxError> {
        let content = self.content(msgtype, text, started, p);
        self.client.send_message(room, &content, Some(txn)).await?;
        Ok(())
    }

    /// Runs `work` with the bot shown typing (only the model takes long enough to show it).
    async fn typing_while<T>(
        &self,
        room: &RoomId,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        if self.model.is_none() {
            return work.await;
        }
        if let Err(e) = self.client.typing(&self.bot, room, true).await {
            tracing::debug!(error = %e, "typing notification failed");
        }
        let out = work.await;
        if let Err(e) = self.client.typing(&self.bot, room, false).await {
            tracing::debug!(error = %e, "typing notification failed");
        }
        out
    }

    /// A read receipt for a message the bot has acted on; failure only costs the receipt.
    async fn mark_read(&self, room: &RoomId, ev: &Value) {
        let Some(id) = ev["event_id"]
            .as_str()
            .and_then(|e| OwnedEventId::try_from(e).ok())
        else {
            return;
        };
        if let Err(e) = self.client.read(room, &id).await {
            tracing::debug!(error = %e, "read receipt failed");
        }
    }

    /// Handles one event from the homeserver.
    pub async fn event(&self, ev: &Value) -> Result<(), BoxError> {
        let Some(room) = ev["room_id"].as_str() else {
            return Ok(());
        };
        let room: OwnedRoomId = room.try_into()?;
        match ev["type"].as_str() {
            Some("m.room.member") => self.membership(&room, ev).await,
            Some(SETTINGS_EVENT) if ev["state_key"] == "" => self.settings_changed(&room, ev),
            // Before the bot has joined, the invite's handling reads this state itself.
            Some(CONVERSATION_EVENT)
                if ev["state_key"] == "" && self.store.contains(GROUPS, room.as_str())? =>
            {
                self.conversation_opened(&room, &ev["content"])
                    .await
                    .map(|_| ())
            }
            Some("m.room.message") => {
                let sender = ev["sender"].as_str().unwrap_or_default();
                if self.is_bot(sender) || ev["content"].get("org.haven.ai").is_some() {
                    return Ok(()); // never answer itself or another bot of ours
                }
                if let Some(intake) = self.store.get::<IntakeRoom>(ROOMS, room.as_str())? {
                    self.intake_message(&room, intake, ev).await
                } else if let Some(t) = self.store.get::<TexterIntake>(TEXTERS, room.as_str())? {
                    self.texter_message(&room, t, ev).await
                } else if let Some(s) = self.store.get::<RoomSettings>(GROUPS, room.as_str())? {
                    self.group_message(&room, &s, ev).await
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The bot itself or another user of its namespace.
    fn is_bot(&self, user: &str) -> bool {
        let local = self.bot.localpart();
        user == self.bot.as_str() || user.starts_with(&format!("@{local}_"))
    }

    async fn membership(&self, room: &OwnedRoomId, ev: &Value) -> Result<(), BoxError> {
        let sender = ev["sender"].as_str().unwrap_or_default();
        let target = ev["state_key"].as_str().unwrap_or_default();
        let membership = ev["content"]["membership"].as_str().unwrap_or_default();
        let is_direct = ev["content"]["is_direct"] == true;
        let known = self.store.contains(ROOMS, room.as_str())?
            || self.store.contains(TEXTERS, room.as_str())?
            || self.store.contains(GROUPS, room.as_str())?;
        if target == self.bot.as_str() {
            match membership {
                "invite" => {
                    self.client.join(room).await?;
                    if known {
                        return Ok(());
                    }
                    if is_direct {
                        // A direct chat: interview whoever invited the bot.
                        return self.start_intake(room, sender.try_into()?).await;
                    }
                    if let Some(conv) = self.client.state(room, CONVERSATION_EVENT, "").await? {
                        if self.conversation_opened(room, &conv).await? {
                            return Ok(());
                        }
                    }
                    let settings = match self.client.state(room, SETTINGS_EVENT, "").await? {
                        Some(c) => serde_json::from_value(c).unwrap_or_default(),
                        None => RoomSettings::default(),
                    };
                    self.store.put(GROUPS, room.as_str(), &settings)?;
                    self.store.flush().await?;
                }
                "leave" | "ban" => {
                    let had_answers = self.store.contains(TEXTERS, room.as_str())?
                        || self.store.contains(ROOMS, room.as_str())?;
                    for tree in [ROOMS, PENDING, TEXTERS, GROUPS] {
                        self.store.remove(tree, room.as_str())?;
                    }
                    self.store.flush().await?;
                    self.cache.forget_room(room.as_str());
                    if had_answers {
                        // The room is gone (purged, or the bot removed): so are the answers
                        // given in it, from disk too.
                        self.store.compact()?;
                    }
                }
                _ => {}
            }
        } else if sender == self.bot.as_str() && membership == "invite" && is_direct && !known {
            // The bot opened a direct chat (the greeting room made at registration).
            self.store.put(PENDING, room.as_str(), &target.to_owned())?;
            self.store.flush().await?;
        } else if membership == "join" && sender == target {
            let pending: Option<String> = self.store.get(PENDING, room.as_str())?;
            if pending.as_deref() == Some(target) && !known {
                self.store.remove(PENDING, room.as_str())?;
                self.start_intake(room, target.try_into()?).await?;
            }
        }
        Ok(())
    }

    /// Greets the volunteer and starts their interview.
    async fn start_intake(&self, room: &RoomId, interviewee: OwnedUserId) -> Result<(), BoxError> {
        let started = Instant::now();
        let mut intake = IntakeRoom {
            interviewee,
            interview: Interview::new(self.config.max_exchanges),
            history: Vec::new(),
            state_denied: false,
        };
        let greeting = intake.interview.greeting();
        intake.history.push(Turn {
            role: "assistant".into(),
            content: greeting.clone(),
        });
        // Said first, under a fixed transaction ID: a retry after a failure in between says
        // it once.
        let txn = format!("greet-{room}");
        self.say(
            room,
            &greeting,
            started,
            &Provenance::offline(),
            "m.text",
            &txn,
        )
        .await?;
        self.store.put(ROOMS, room.as_str(), &intake)?;
        self.store.flush().await?;
        Ok(())
    }

    /// Sets room state. A room whose power levels do not let the bot answers false (logged)
    /// rather than failing the transaction, which the homeserver would retry for ever.
    async fn set_state(
        &self,
        room: &RoomId,
        event_type: &str,
        content: &Value,
    ) -> Result<bool, BoxError> {
        match self.client.send_state(room, event_type, "", content).await {
            Ok(_) => Ok(true),
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                tracing::warn!(%room, event_type, "no permission to set room state");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the profile (room state and the bot's own copy); tells the person once when the
    /// room does not let the bot write it.
    async fn write_profile(
        &self,
        room: &RoomId,
        intake: &mut IntakeRoom,
        txn: &str,
    ) -> Result<(), BoxError> {
        self.store.put(
            PROFILES,
            intake.interviewee.as_str(),
            &intake.interview.profile,
        )?;
        let content = serde_json::to_value(&intake.interview.profile)?;
        if !self.set_state(room, PROFILE_EVENT, &content).await? && !intake.state_denied {
            intake.state_denied = true;
            let text = "I can't save your profile in this room: I need a power level that lets me \
                        change room settings. A room admin can grant it.";
            self.say(
                room,
                text,
                Instant::now(),
                &Provenance::offline(),
                "m.notice",
                &format!("{txn}-denied"),
            )
            .await?;
        }
        self.store.put(ROOMS, room.as_str(), &*intake)?;
        self.store.flush().await?;
        Ok(())
    }

    /// A message in a volunteer's intake room: only the interviewee's own text is answered.
    async fn intake_message(
        &self,
        room: &RoomId,
        mut intake: IntakeRoom,
        ev: &Value,
    ) -> Result<(), BoxError> {
        let sender = ev["sender"].as_str().unwrap_or_default();
        if sender != intake.interviewee.as_str() || ev["content"]["msgtype"] != "m.text" {
            return Ok(());
        }
        self.mark_read(room, ev).await;
        let started = Instant::now();
        let txn = format!("re-{}", ev["event_id"].as_str().unwrap_or_default());
        let text = ev["content"]["body"].as_str().unwrap_or_default();
        intake.history.push(Turn {
            role: "user".into(),
            content: text.to_owned(),
        });
        let (reply, changed, prov) = match &self.model {
            None => {
                let turn = intake.interview.answer(text);
                (turn.reply, turn.changed, Provenance::offline())
            }
            Some(model) => match self.typing_while(room, model.next(&intake.history)).await {
                Ok(r) => {
                    let changed = r.profile != intake.interview.profile;
                    intake.interview.adopt(r.profile);
                    (r.reply, changed, Provenance::model(&r.completion))
                }
                Err(e) => {
                    // Slow, down or talking nonsense: the offline interviewer answers this
                    // turn from the profile so far, so the person is never left waiting.
                    tracing::warn!(error = %e, "model call failed; the offline interviewer answers");
                    self.metrics.errors.with_label_values(&["model"]).inc();
                    let turn = intake.interview.answer(text);
                    let p = Provenance {
                        fallback: true,
                        ..Provenance::offline()
                    };
                    (turn.reply, turn.changed, p)
                }
            },
        };
        intake.history.push(Turn {
            role: "assistant".into(),
            content: reply.clone(),
        });
        self.store.put(ROOMS, room.as_str(), &intake)?;
        self.store.flush().await?;
        if changed {
            self.write_profile(room, &mut intake, &txn).await?;
        }
        self.metrics.answered(
            prov.backend,
            "intake",
            room.as_str(),
            &prov,
            started.elapsed().as_secs_f64(),
        );
        self.say(room, &reply, started, &prov, "m.text", &txn).await
    }

    /// The bridge's conversation state: a texter's room whose program has intake questions
    /// starts its intake. Returns whether it did.
    async fn conversation_opened(&self, room: &RoomId, conv: &Value) -> Result<bool, BoxError> {
        if self.store.contains(TEXTERS, room.as_str())?
            || self.store.contains(ROOMS, room.as_str())?
        {
            return Ok(false);
        }
        let (Some(program), Some(texter)) = (conv["program"].as_str(), conv["puppet"].as_str())
        else {
            return Ok(false);
        };
        if !self.config.programs.contains_key(program) {
            return Ok(false);
        }
        // The texter's first message (which opens every SMS conversation) brings the opening.
        let mut t = TexterIntake::new(program, texter);
        t.bots = conv["bots"]
            .as_array()
            .map(|bots| {
                bots.iter()
                    .filter_map(|b| b.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        self.store.put(TEXTERS, room.as_str(), &t)?;
        self.store.remove(GROUPS, room.as_str())?;
        self.store.flush().await?;
        Ok(true)
    }

    /// A message in a texter's room: the texter's answers move the questions on; a responder
    /// speaking takes over, and the bot summarises what it has.
    async fn texter_message(
        &self,
        room: &RoomId,
        mut t: TexterIntake,
        ev: &Value,
    ) -> Result<(), BoxError> {
        if t.done || ev["content"]["msgtype"] != "m.text" {
            return Ok(());
        }
        let Some(program) = self.config.programs.get(&t.program) else {
            return Ok(());
        };
        let started = Instant::now();
        let event_id = ev["event_id"].as_str().unwrap_or_default();
        let sender = ev["sender"].as_str().unwrap_or_default();
        if t.bots.iter().any(|b| b == sender) {
            return Ok(()); // another bot of the conversation (the escalation handler's survey)
        }
        if sender != t.texter {
            t.done = true;
            self.store.put(TEXTERS, room.as_str(), &t)?;
            self.store.flush().await?;
            return self.summarise(room, &t, event_id).await;
        }
        self.mark_read(room, ev).await;
        let text = ev["content"]["body"].as_str().unwrap_or_default();
        let ts = ev["origin_server_ts"].as_u64().unwrap_or(u64::MAX);
        let next = t.answer(program, text, ts);
        if !matches!(next, Next::Open(_)) {
            self.store.put(TEXTERS, room.as_str(), &t)?;
            self.store.flush().await?;
        }
        let txn = format!("re-{event_id}");
        match next {
            Next::Open(opening) => {
                // Sent before the record says so: a retry sends it again under the same
                // transaction ID, which the homeserver answers without a second message.
                let content = self.content("m.text", &opening, started, &Provenance::offline());
                let id = self
                    .client
                    .send_message(room, &content, Some(&format!("texter-{room}")))
                    .await?;
                t.opened_ts = self.client.event(room, &id).await?["origin_server_ts"]
                    .as_u64()
                    .unwrap_or(0);
                self.store.put(TEXTERS, room.as_str(), &t)?;
                self.store.flush().await?;
                Ok(())
            }
            Next::Ask(q) => {
                self.say(room, &q, started, &Provenance::offline(), "m.text", &txn)
                    .await
            }
            Next::Finish(closing) => {
                self.say(
                    room,
                    &closing,
                    started,
                    &Provenance::offline(),
                    "m.text",
                    &txn,
                )
                .await?;
                self.summarise(room, &t, event_id).await
            }
            Next::Quiet => Ok(()),
        }
    }

    /// The summary for the responder: a state event and a notice (the bridge texts neither).
    async fn summarise(
        &self,
        room: &RoomId,
        t: &TexterIntake,
        after: &str,
    ) -> Result<(), BoxError> {
        let started = Instant::now();
        let offline = t.summary_text();
        let (summary, prov) = match (&self.model, t.answers.is_empty()) {
            (Some(model), false) => {
                let turns = [Turn {
                    role: "user".into(),
                    content: offline.clone(),
                }];
                match model.complete(SUMMARY_PROMPT, &turns, false).await {
                    Ok(c) => (c.text.clone(), Provenance::model(&c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "summary by the model failed; using the answers");
                        self.metrics.errors.with_label_values(&["model"]).inc();
                        (offline.clone(), Provenance::offline())
                    }
                }
            }
            _ => (offline.clone(), Provenance::offline()),
        };
        self.metrics.answered(
            prov.backend,
            "summary",
            room.as_str(),
            &prov,
            started.elapsed().as_secs_f64(),
        );
        self.set_state(room, SUMMARY_EVENT, &t.summary_content(&summary))
            .await?;
        let heading = if t.complete {
            "Intake summary for the responder:"
        } else {
            "Intake stopped (a responder took over). Answers so far:"
        };
        let text = format!("{heading}\n{summary}");
        self.say(
            room,
            &text,
            started,
            &prov,
            "m.notice",
            &format!("summary-{after}"),
        )
        .await
    }

    fn settings_changed(&self, room: &RoomId, ev: &Value) -> Result<(), BoxError> {
        if self.store.contains(GROUPS, room.as_str())? {
            let settings: RoomSettings =
                serde_json::from_value(ev["content"].clone()).unwrap_or_default();
            self.store.put(GROUPS, room.as_str(), &settings)?;
            self.cache.forget_room(room.as_str());
        }
        Ok(())
    }

    /// A message in a group room: answered only when it asks the bot.
    async fn group_message(
        &self,
        room: &RoomId,
        settings: &RoomSettings,
        ev: &Value,
    ) -> Result<(), BoxError> {
        let content = &ev["content"];
        // Notices are never answered (other bots speak in them).
        if !settings.enabled || content["msgtype"] != "m.text" {
            return Ok(());
        }
        let Some(question) =
            group::question(content, self.bot.as_str(), &self.display_name, settings)
        else {
            return Ok(());
        };
        let sender = ev["sender"].as_str().unwrap_or_default();
        let event_id = ev["event_id"].as_str().unwrap_or_default();
        self.mark_read(room, ev).await;
        let started = Instant::now();
        let reply = |text: &str, p: &Provenance| {
            let mut c = self.content("m.notice", text, started, p);
            c["m.relates_to"] = group::reply_relation(ev);
            c["m.mentions"] = json!({ "user_ids": [sender] });
            c
        };
        let txn = format!("re-{event_id}");
        match self.limits.check(room.as_str(), sender) {
            Allowance::Allowed => {}
            Allowance::Refused { first } => {
                self.metrics
                    .errors
                    .with_label_values(&["rate_limited"])
                    .inc();
                if first {
                    let c = reply(
                        "You're asking faster than I can answer — please try again in a minute.",
                        &Provenance::offline(),
                    );
                    self.client.send_message(room, &c, Some(&txn)).await?;
                }
                return Ok(());
            }
        }
        if let Some((answer, mut p)) = self.cache.get(room.as_str(), &question) {
            self.metrics.cache_hits.inc();
            p.cached = true;
            p.prompt_tokens = 0;
            p.completion_tokens = 0;
            self.client
                .send_message(room, &reply(&answer, &p), Some(&txn))
                .await?;
            return Ok(());
        }
        let answer = match &self.model {
            Some(model) if !question.is_empty() => {
                let asker = self.client.joined_members(room).await?;
                let history = self
                    .client
                    .recent_events(room, self.config.history_messages)
                    .await?;
                let said = history_for_context(&history, &asker, event_id);
                let asker_name = asker
                    .iter()
                    .find(|(id, _)| id.as_str() == sender)
                    .map_or(sender.to_owned(), |(_, n)| n.clone());
                let members: Vec<(String, String)> = asker
                    .iter()
                    .map(|(id, n)| (id.to_string(), n.clone()))
                    .collect();
                let (system, turns) = group::context(
                    settings,
                    &members,
                    &said,
                    self.bot.as_str(),
                    &question,
                    &asker_name,
                    self.config.prompt_token_budget as usize * 4,
                );
                self.typing_while(room, model.complete(&system, &turns, false))
                    .await
                    .map(|c| (c.text.clone(), Provenance::model(&c)))
            }
            _ => {
                let people = self.profiles_of_members(room, settings).await?;
                Ok((
                    group::offline_answer(&question, settings, &people),
                    Provenance::offline(),
                ))
            }
        };
        match answer {
            Ok((text, p)) => {
                self.metrics.answered(
                    p.backend,
                    "group",
                    room.as_str(),
                    &p,
                    started.elapsed().as_secs_f64(),
                );
                self.client
                    .send_message(room, &reply(&text, &p), Some(&txn))
                    .await?;
                self.cache.put(room.as_str(), &question, (text, p));
            }
            Err(e) => {
                tracing::warn!(error = %e, "model call failed");
                self.metrics.errors.with_label_values(&["model"]).inc();
                let p = Provenance {
                    backend: self.backend(),
                    model: String::new(),
                    ..Provenance::offline()
                };
                self.client
                    .send_message(room, &reply(APOLOGY, &p), Some(&txn))
                    .await?;
            }
        }
        Ok(())
    }

    /// Intake profiles of the room's members, when the room allows searching them.
    async fn profiles_of_members(
        &self,
        room: &RoomId,
        settings: &RoomSettings,
    ) -> Result<Vec<(String, Profile)>, BoxError> {
        if !settings.profile_search {
            return Ok(Vec::new());
        }
        let mut people = Vec::new();
        for (id, name) in self.client.joined_members(room).await? {
            if let Some(p) = self.store.get::<Profile>(PROFILES, id.as_str())? {
                people.push((name, p));
            }
        }
        Ok(people)
    }
}

/// Room messages before the question, with the senders' names.
fn history_for_context(
    events: &[Value],
    members: &[(OwnedUserId, String)],
    before: &str,
) -> Vec<Said> {
    events
        .iter()
        .take_while(|e| e["event_id"] != before)
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| {
            let sender = e["sender"].as_str()?.to_owned();
            let body = e["content"]["body"].as_str()?.to_owned();
            let name = members
                .iter()
                .find(|(id, _)| id.as_str() == sender)
                .map_or_else(|| sender.clone(), |(_, n)| n.clone());
            Some(Said { sender, name, body })
        })
        .collect()
}
