//! The handler on the Application Service API: it adopts each conversation room the SMS bridge
//! opens, keeps the conversation's state event, reads texters' and responders' messages
//! (risk, timers, surveys), and answers staff commands. All changes run one at a time under
//! one lock, are stored and flushed, then written to the room.

use std::{collections::BTreeMap, sync::Arc};

use appservice_runtime::{AsClient, BoxError, Store};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::{
    commands::{self, Command, Parsed},
    config::{EscConfig, Program, Role},
    conversation::{Conversation, SurveyKind, CONVERSATION_EVENT},
    machine::{Action, State, STATES},
    metrics::Metrics,
    now_ms, queue,
    risk::{Lexicon, Risk},
    rooms::{self, Directory, Kind},
    timers::{Timer, Timers},
    webhooks::Webhooks,
};

const CONVS: &str = "conversations";
/// `asked_ms` of a survey question not sent yet.
const NOT_ASKED: u64 = u64::MAX;
/// The intake bot's summary of a conversation (state, empty key): it has finished.
const INTAKE_SUMMARY_EVENT: &str = "org.haven.intake.summary";
const SEQ: &str = "conversation_seq";

/// Power levels in conversation rooms: writing takes [`WRITE`]; supervisors not assigned stay
/// below it (they read), the handler alone writes the conversation state.
const WRITE: i64 = 10;
const STATE_ONLY_HANDLER: i64 = 100;

/// States in which a conversation counts against its responder's maximum.
const BUSY: [State; 6] = [
    State::Assigned,
    State::Active,
    State::Transferred,
    State::EscalatedMedical,
    State::EscalatedPolice,
    State::WrapUp,
];

pub struct Handler {
    pub client: AsClient,
    pub store: Store,
    pub bot: OwnedUserId,
    pub config: EscConfig,
    pub lexicon: Lexicon,
    pub model: Option<intake_bot::model::OpenAiClient>,
    pub metrics: Arc<Metrics>,
    pub webhooks: Webhooks,
    pub timers: Timers,
    pub dir: Directory,
    /// Every conversation, by number; written through to the store.
    pub(crate) convs: Mutex<BTreeMap<u64, Conversation>>,
    /// Texter messages for the model's risk assessment, when `risk_model` is on.
    risk_model: Option<tokio::sync::mpsc::UnboundedSender<(u64, String)>>,
}

const RISK_PROMPT: &str = "You assess messages sent to a crisis support line. Answer ONLY with \
JSON {\"risk\": \"low\" | \"medium\" | \"high\" | \"imminent\"}: imminent when the person \
is in danger now (an attempt under way, a plan for today), high for suicidal thoughts, self-harm \
or violence against them, medium for distress without danger, low otherwise.";

/// Scores texters' messages with the model and raises conversations' risk, for ever.
pub async fn risk_worker(
    h: Arc<Handler>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(u64, String)>,
) {
    while let Some((id, text)) = rx.recv().await {
        let Some(model) = &h.model else { continue };
        let turn = intake_bot::model::Turn {
            role: "user".into(),
            content: text,
        };
        let level = match model.complete(RISK_PROMPT, &[turn], true).await {
            Ok(c) => serde_json::from_str::<Value>(&c.text)
                .ok()
                .and_then(|v| v["risk"].as_str().and_then(Risk::parse)),
            Err(e) => {
                tracing::warn!(error = %e, "risk assessment by the model failed");
                None
            }
        };
        if let Some(level) = level {
            if let Err(e) = h.raise_risk(id, level).await {
                tracing::warn!(error = %e, "risk not raised");
            }
        }
    }
}

/// Something said back: the room and the text (notices unless `text`).
type Reply = Result<(), BoxError>;

impl Handler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: AsClient,
        store: Store,
        bot: OwnedUserId,
        config: EscConfig,
        model: Option<intake_bot::model::OpenAiClient>,
        metrics: Arc<Metrics>,
        webhooks: Webhooks,
        dir: Directory,
        risk_model: Option<tokio::sync::mpsc::UnboundedSender<(u64, String)>>,
    ) -> Result<Self, BoxError> {
        let mut convs = BTreeMap::new();
        for (_, c) in store.entries::<Conversation>(CONVS)? {
            convs.insert(c.id, c);
        }
        let lexicon = config.risk.clone().unwrap_or_default();
        let h = Self {
            timers: Timers::new(store.clone()),
            client,
            store,
            bot,
            config,
            lexicon,
            model,
            metrics,
            webhooks,
            dir,
            convs: Mutex::new(convs),
            risk_model,
        };
        Ok(h)
    }

    pub(crate) async fn notice(&self, room: &RoomId, text: &str) -> Reply {
        self.client.send_text(room, text, true).await?;
        Ok(())
    }

    /// A text the SMS bridge sends to the texter; `txn` keeps a retried send single.
    /// Answers the homeserver's timestamp of the message.
    pub(crate) async fn text(&self, room: &RoomId, text: &str, txn: &str) -> Result<u64, BoxError> {
        let content = json!({ "msgtype": "m.text", "body": text });
        let id = self.client.send_message(room, &content, Some(txn)).await?;
        let ev = self.client.event(room, &id).await?;
        Ok(ev["origin_server_ts"].as_u64().unwrap_or_else(now_ms))
    }

    pub(crate) fn program(&self, c: &Conversation) -> Option<&Program> {
        self.config.program(&c.program)
    }

    /// Stores and flushes the conversation, then writes its state event. A room that refuses
    /// the handler's state (misconfigured power levels) is logged, not retried for ever.
    pub(crate) async fn save(&self, c: &Conversation) -> Reply {
        self.store.put(CONVS, &format!("{:012}", c.id), c)?;
        self.store.flush().await?;
        let room = OwnedRoomId::try_from(c.room.as_str())?;
        match self
            .client
            .send_state(&room, CONVERSATION_EVENT, "", &c.content())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                tracing::error!(room = %c.room, "the handler may not write the conversation state here");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Recomputes the state and queue gauges.
    fn gauges(&self, convs: &BTreeMap<u64, Conversation>) {
        for s in STATES {
            let n = convs.values().filter(|c| c.state == s).count();
            self.metrics
                .conversations
                .with_label_values(&[s.as_str()])
                .set(n as i64);
        }
        let now = now_ms();
        for p in &self.config.programs {
            let w = queue::waiting(convs.values(), &p.id);
            self.metrics
                .queue_depth
                .with_label_values(&[p.id.as_str()])
                .set(w.len() as i64);
            let longest = w.iter().map(|c| c.waited_s(now)).max().unwrap_or(0);
            self.metrics
                .queue_wait
                .with_label_values(&[p.id.as_str()])
                .set(longest as i64);
        }
    }

    /// Redraws a program's queue board.
    pub(crate) async fn board(&self, convs: &BTreeMap<u64, Conversation>, program: &str) -> Reply {
        self.gauges(convs);
        let (Some(p), Some(rooms)) = (self.config.program(program), self.dir.programs.get(program))
        else {
            return Ok(());
        };
        let text = queue::board(&p.name, &queue::waiting(convs.values(), program), now_ms());
        rooms::show_board(&self.client, &self.store, program, &rooms.queue, &text).await
    }

    /// Refreshes every non-empty board (wait times move on).
    pub async fn refresh_boards(&self) -> Reply {
        let convs = self.convs.lock().await;
        for p in &self.config.programs {
            if !queue::waiting(convs.values(), &p.id).is_empty() {
                self.board(&convs, &p.id).await?;
            }
        }
        self.gauges(&convs);
        Ok(())
    }

    /// Posts to the program's supervisor room.
    pub(crate) async fn alert(&self, program: &str, kind: &str, text: &str) -> Reply {
        self.metrics.alerts.with_label_values(&[kind]).inc();
        if let Some(r) = self.dir.programs.get(program) {
            self.notice(&r.supervisor, text).await?;
        }
        Ok(())
    }

    fn event_data(c: &Conversation) -> Value {
        json!({
            "conversation": c.id, "room_id": c.room, "program": c.program,
            "affiliate": c.affiliate, "state": c.state.as_str(), "risk": c.risk.as_str(),
            "responder": c.responder, "tags": c.tags,
        })
    }

    /// Queues a lifecycle event (sent after the next flush).
    pub(crate) fn emit(&self, event: &str, c: &Conversation, extra: Value) -> Reply {
        let mut data = Self::event_data(c);
        if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
            d.extend(e);
        }
        self.webhooks.event(event, data)
    }

    /// Handles one event from the homeserver.
    pub async fn event(&self, ev: &Value) -> Reply {
        let Some(room) = ev["room_id"].as_str() else {
            return Ok(());
        };
        let room = OwnedRoomId::try_from(room)?;
        let sender = ev["sender"].as_str().unwrap_or_default();
        if sender == self.bot.as_str() {
            return Ok(());
        }
        let mut convs = self.convs.lock().await;
        let result = match ev["type"].as_str() {
            Some("m.room.member")
                if ev["state_key"] == self.bot.as_str()
                    && ev["content"]["membership"] == "invite" =>
            {
                self.client.join(&room).await?;
                if let Some(content) = self.client.state(&room, CONVERSATION_EVENT, "").await? {
                    self.adopt(&mut convs, &room, &content).await?;
                }
                Ok(())
            }
            Some(CONVERSATION_EVENT) if ev["state_key"] == "" => {
                match convs.values_mut().find(|c| c.room == room.as_str()) {
                    Some(c) => {
                        // The bridge marks a texter's DELETE; everything else here is ours.
                        if ev["content"]["deletion_requested"] == true && !c.deletion_requested {
                            c.deletion_requested = true;
                            let c = c.clone();
                            self.store.put(CONVS, &format!("{:012}", c.id), &c)?;
                            self.store.flush().await?;
                        }
                        Ok(())
                    }
                    None => self.adopt(&mut convs, &room, &ev["content"]).await,
                }
            }
            Some("m.room.message") => self.message(&mut convs, &room, ev).await,
            Some(INTAKE_SUMMARY_EVENT) if ev["state_key"] == "" => {
                self.intake_finished(&mut convs, &room, sender, ev).await
            }
            _ => Ok(()),
        };
        self.store.flush().await?;
        self.webhooks.kick();
        result
    }

    /// Takes over a conversation the bridge opened: numbers it, routes it to its program's
    /// queue, locks its state to the handler, starts the expiry timer and the entry survey.
    async fn adopt(
        &self,
        convs: &mut BTreeMap<u64, Conversation>,
        room: &RoomId,
        content: &Value,
    ) -> Reply {
        if content["state"] != "new" || convs.values().any(|c| c.room == room.as_str()) {
            return Ok(());
        }
        let program_id = content["program"].as_str().unwrap_or_default();
        let Some(program) = self.config.program(program_id) else {
            return self
                .notice(room, &format!("No program \"{program_id}\" is configured in the escalation handler; this conversation is not queued."))
                .await;
        };
        let id: u64 = self.store.get(SEQ, "n")?.unwrap_or(0) + 1;
        self.store.put(SEQ, "n", &id)?;
        let now = now_ms();
        let Some(mut c) = Conversation::from_bridge(id, room.as_str(), content, now) else {
            return Ok(());
        };
        if c.affiliate.is_empty() {
            c.affiliate = program.affiliate.clone();
        }
        c.apply(Action::Route, self.bot.as_str(), now)
            .map_err(|e| e.to_string())?;
        self.timers.set(
            now + program.queue_timeout_s * 1000,
            &Timer::Expire { conversation: id },
        )?;
        self.lock_room(room, c.texter.as_deref()).await?;
        if !program.entry_survey.is_empty() {
            // Asked once the texter's first message (which opens every SMS conversation) is
            // in: asking earlier could cross it, and it would be taken as the answer. With an
            // intake bot, once it has finished (its summary): one question at a time.
            c.surveys.asking = Some((SurveyKind::Entry, 0));
            c.surveys.asked_ms = NOT_ASKED;
            c.surveys.after_intake = c.intake_bot().is_some();
        }
        self.emit("conversation.created", &c, json!({}))?;
        self.save(&c).await?;
        convs.insert(id, c.clone());
        self.notice(
            room,
            &format!(
                "Conversation #{id} is waiting in the {} queue.",
                program.name
            ),
        )
        .await?;
        self.board(convs, &c.program).await
    }

    /// Conversation-room power levels: writing takes [`WRITE`] (the texter's puppet has it,
    /// responders get it when assigned), the conversation state only the handler.
    async fn lock_room(&self, room: &RoomId, texter: Option<&str>) -> Reply {
        let mut pl = self
            .client
            .state(room, "m.room.power_levels", "")
            .await?
            .unwrap_or_else(|| json!({}));
        pl["events_default"] = WRITE.into();
        pl["events"][CONVERSATION_EVENT] = STATE_ONLY_HANDLER.into();
        if let Some(t) = texter {
            pl["users"][t] = WRITE.into();
        }
        if let Err(e) = self
            .client
            .send_state(room, "m.room.power_levels", "", &pl)
            .await
        {
            tracing::warn!(%room, error = %e, "conversation power levels not written (the handler needs power level 100 in conversation rooms)");
        }
        Ok(())
    }

    /// Gives `user` power level `level` in a conversation room and invites them if needed.
    pub(crate) async fn bring_in(&self, room: &RoomId, user: &str, level: i64) -> Reply {
        let user = UserId::parse(user)?;
        self.client.set_power_level(room, &user, level).await?;
        self.client.invite(room, &user).await?;
        Ok(())
    }

    async fn message(
        &self,
        convs: &mut BTreeMap<u64, Conversation>,
        room: &RoomId,
        ev: &Value,
    ) -> Reply {
        let sender = ev["sender"].as_str().unwrap_or_default();
        let body = ev["content"]["body"].as_str().unwrap_or_default();
        let msgtype = ev["content"]["msgtype"].as_str().unwrap_or_default();
        if msgtype == "m.notice" {
            return Ok(()); // bots' notices (the bridge's, the intake bot's)
        }
        if let Some(id) = convs
            .values()
            .find(|c| c.room == room.as_str())
            .map(|c| c.id)
        {
            let is_texter = convs[&id].texter.as_deref() == Some(sender);
            if is_texter {
                return self.inbound(convs, id, ev).await;
            }
            return match commands::parse(body) {
                Some(Ok(p)) => self.command(convs, room, sender, Some(id), p).await,
                Some(Err(usage)) => self.notice(room, &usage).await,
                None => self.outbound(convs, id, sender, msgtype).await,
            };
        }
        if self.dir.rooms.contains_key(room) {
            return match commands::parse(body) {
                Some(Ok(p)) => {
                    let target = p.conversation;
                    self.command(convs, room, sender, target, p).await
                }
                Some(Err(usage)) => self.notice(room, &usage).await,
                None => Ok(()),
            };
        }
        Ok(())
    }

    /// The intake bot's summary: its questions are done, the entry survey may begin.
    async fn intake_finished(
        &self,
        convs: &mut BTreeMap<u64, Conversation>,
        room: &RoomId,
        sender: &str,
        ev: &Value,
    ) -> Reply {
        let Some(c) = convs.values_mut().find(|c| c.room == room.as_str()) else {
            return Ok(());
        };
        if !c.surveys.after_intake || c.intake_bot() != Some(sender) {
            return Ok(());
        }
        c.surveys.after_intake = false;
        let question = match c.surveys.asking {
            Some((SurveyKind::Entry, i)) if c.surveys.asked_ms == NOT_ASKED => self
                .config
                .program(&c.program)
                .and_then(|p| p.entry_survey.get(i).cloned())
                .map(|q| (q, format!("survey-entry-{}-{i}", c.id))),
            _ => None,
        };
        let id = c.id;
        let c = c.clone();
        self.save(&c).await?;
        if let Some((q, txn)) = question {
            let asked = self.text(room, &q, &txn).await?;
            if let Some(c) = convs.get_mut(&id) {
                c.surveys.asked_ms = asked.max(ev["origin_server_ts"].as_u64().unwrap_or(0));
                let c = c.clone();
                self.save(&c).await?;
            }
        }
        Ok(())
    }

    /// A texter's message: risk scoring, survey answers, the next-response timer.
    async fn inbound(&self, convs: &mut BTreeMap<u64, Conversation>, id: u64, ev: &Value) -> Reply {
        let Some(c) = convs.get_mut(&id) else {
            return Ok(());
        };
        if c.state.is_final() {
            return Ok(());
        }
        let Some(program) = self.config.program(&c.program).cloned() else {
            return Ok(());
        };
        let room = OwnedRoomId::try_from(c.room.as_str())?;
        let body = ev["content"]["body"].as_str().unwrap_or_default();
        let ts = ev["origin_server_ts"].as_u64().unwrap_or_else(now_ms);
        let mut say: Vec<(String, String)> = Vec::new();
        // Surveys: the texter's answer to the question being asked.
        let window_ms = self.config.survey_answer_window_s * 1000;
        if let Some((kind, i)) = c.surveys.asking {
            if c.surveys.asked_ms == NOT_ASKED {
                if let (false, Some(q)) = (c.surveys.after_intake, program.entry_survey.get(i)) {
                    say.push((q.clone(), format!("survey-entry-{id}-{i}")));
                }
            } else if ts > c.surveys.asked_ms.saturating_add(window_ms) {
                // Too long after the question to be its answer: the survey is dropped, the
                // message is just a message.
                c.surveys.asking = None;
            } else if ts > c.surveys.asked_ms {
                let questions = match kind {
                    SurveyKind::Entry => &program.entry_survey,
                    SurveyKind::Exit => &program.exit_survey,
                };
                let q = questions.get(i).cloned().unwrap_or_default();
                let answers = match kind {
                    SurveyKind::Entry => &mut c.surveys.entry,
                    SurveyKind::Exit => &mut c.surveys.exit,
                };
                answers.push((q, body.trim().to_owned()));
                match questions.get(i + 1) {
                    Some(next) => {
                        c.surveys.asking = Some((kind, i + 1));
                        c.surveys.asked_ms = ts;
                        let k = if kind == SurveyKind::Entry {
                            "entry"
                        } else {
                            "exit"
                        };
                        say.push((next.clone(), format!("survey-{k}-{id}-{}", i + 1)));
                    }
                    None => {
                        c.surveys.asking = None;
                        let k = if kind == SurveyKind::Entry {
                            "entry"
                        } else {
                            "exit"
                        };
                        let c2 = c.clone();
                        self.emit("conversation.survey.completed", &c2, json!({ "survey": k }))?;
                    }
                }
            }
        }
        // Risk.
        let (level, phrase) = self.lexicon.score(body);
        let raised = level > c.risk;
        if raised {
            c.risk = level;
            if level.alarming() {
                c.tags.insert(format!("risk:{}", level.as_str()));
            }
        }
        // The next-response timer (someone is assigned and the texter waits for them).
        if c.responder.is_some()
            && c.awaiting_since_ms.is_none()
            && !matches!(c.state, State::Queued)
        {
            c.awaiting_since_ms = Some(ts);
            self.timers.set(
                ts + program.next_response_target_s * 1000,
                &Timer::NextResponse {
                    conversation: id,
                    since_ms: ts,
                },
            )?;
        }
        let c = c.clone();
        self.emit("conversation.message.inbound", &c, json!({}))?;
        self.save(&c).await?;
        if raised && level.alarming() {
            let who = c
                .responder
                .as_deref()
                .map_or("unassigned".to_owned(), |r| format!("assigned to {r}"));
            self.alert(
                &c.program,
                "risk",
                &format!(
                    "⚠️ Risk {} in conversation #{} ({who}, {}): the texter wrote “{}”. !join {} to read it.",
                    level.as_str(),
                    c.id,
                    c.state.as_str(),
                    phrase.unwrap_or_default(),
                    c.id
                ),
            )
            .await?;
        }
        if raised && c.state == State::Queued {
            self.board(convs, &c.program).await?;
        }
        if level < Risk::High {
            if let Some(tx) = &self.risk_model {
                // The lexicon found nothing alarming: the model has a look, off this path.
                let _ = tx.send((id, body.to_owned()));
            }
        }
        for (text, txn) in say {
            let asked = self.text(&room, &text, &txn).await?;
            if let Some(c) = convs.get_mut(&id) {
                c.surveys.asked_ms = asked;
                let c = c.clone();
                self.store.put(CONVS, &format!("{:012}", c.id), &c)?;
            }
        }
        Ok(())
    }

    /// A staff member's text in the conversation: the assigned responder's first message
    /// starts the conversation; any responder message answers the texter.
    async fn outbound(
        &self,
        convs: &mut BTreeMap<u64, Conversation>,
        id: u64,
        sender: &str,
        msgtype: &str,
    ) -> Reply {
        let Some(c) = convs.get_mut(&id) else {
            return Ok(());
        };
        if !matches!(msgtype, "m.text" | "m.image") {
            return Ok(());
        }
        let now = now_ms();
        let mut changed = false;
        // Staff talking to the texter ends an entry survey still waiting for answers: what
        // the texter says next answers them, not the survey.
        if !c.is_bot(sender) && matches!(c.surveys.asking, Some((SurveyKind::Entry, _))) {
            c.surveys.asking = None;
            changed = true;
        }
        if c.state == State::Transferred && c.transfer_to.as_deref() == Some(sender) {
            self.accept_transfer(c, sender, now).await?;
            changed = true;
        }
        if c.responder.as_deref() != Some(sender) {
            if changed {
                let c = c.clone();
                self.save(&c).await?;
            }
            return Ok(());
        }
        if c.state == State::Assigned {
            c.apply(Action::Start, sender, now)?;
            c.first_response_ms = Some(now);
            if let Some(a) = c.assigned_ms {
                self.metrics
                    .first_response
                    .observe(now.saturating_sub(a) as f64 / 1000.0);
            }
            changed = true;
        }
        if c.awaiting_since_ms.take().is_some() {
            changed = true;
        }
        let c = c.clone();
        self.emit("conversation.message.outbound", &c, json!({}))?;
        if changed {
            self.save(&c).await?;
        }
        Ok(())
    }

    pub(crate) async fn accept_transfer(&self, c: &mut Conversation, by: &str, now: u64) -> Reply {
        c.apply(Action::AcceptTransfer, by, now)?;
        let room = OwnedRoomId::try_from(c.room.as_str())?;
        if let Some(old) = c.responder.replace(by.to_owned()) {
            if old != by {
                self.client
                    .set_power_level(&room, &UserId::parse(old.as_str())?, 0)
                    .await?;
            }
        }
        c.transfer_to = None;
        self.notice(
            &room,
            &format!("{by} has taken over conversation #{}.", c.id),
        )
        .await
    }

    /// Runs a staff command (`target`: the conversation it is about, if any).
    async fn command(
        &self,
        convs: &mut BTreeMap<u64, Conversation>,
        room: &RoomId,
        sender: &str,
        target: Option<u64>,
        p: Parsed,
    ) -> Reply {
        let now = now_ms();
        // Programs this room belongs to (a staff room), or the conversation's program.
        let staff_kinds: Vec<(String, Kind)> =
            self.dir.rooms.get(room).cloned().unwrap_or_default();
        match p.command {
            Command::Help => return self.notice(room, commands::HELP).await,
            Command::Next | Command::Claim => {
                let Some((program, _)) = staff_kinds.iter().find(|(_, k)| *k == Kind::Queue) else {
                    return self
                        .notice(room, "!next and !claim work in a program's queue room.")
                        .await;
                };
                return self
                    .assign(convs, room, program, sender, p.conversation, now)
                    .await;
            }
            Command::Retention { purge } => {
                let admin = staff_kinds.iter().any(|(prog, _)| {
                    self.config.program(prog).and_then(|p| p.role(sender)) == Some(Role::Admin)
                });
                if !admin {
                    return self
                        .notice(room, "Only a program admin can run retention.")
                        .await;
                }
                let report = crate::retention::sweep(self, convs, purge).await?;
                return self.notice(room, &report).await;
            }
            _ => {}
        }
        let Some(id) = target else {
            return self
                .notice(
                    room,
                    "Which conversation? Give its number first, e.g. !close 42.",
                )
                .await;
        };
        let Some(c) = convs.get(&id).cloned() else {
            return self
                .notice(room, &format!("There is no conversation #{id}."))
                .await;
        };
        let in_conversation = c.room == room.as_str();
        let Some(program) = self.program(&c).cloned() else {
            return Ok(());
        };
        if !in_conversation && !staff_kinds.iter().any(|(prog, _)| *prog == c.program) {
            return self
                .notice(room, &format!("Conversation #{id} is not in this program."))
                .await;
        }
        let role = program.role(sender);
        let assigned = c.responder.as_deref() == Some(sender);
        let supervisor = role.is_some_and(|r| r >= Role::Supervisor);
        // Who may do what: the assigned responder runs their conversation; supervisors may
        // resolve, close, tag, set risk and join; only responders escalate and transfer.
        let allowed = match &p.command {
            Command::Accept => c.transfer_to.as_deref() == Some(sender),
            Command::Transfer { .. }
            | Command::Escalate { .. }
            | Command::WrapUp
            | Command::FollowUp { .. }
            | Command::Canned(_) => assigned,
            Command::Resolve | Command::Close | Command::Tag(_) | Command::Risk(_) => {
                assigned || supervisor
            }
            Command::Note(_) => role.is_some(),
            Command::Join | Command::Reveal => supervisor,
            _ => false,
        };
        let reply_room = room.to_owned();
        if !allowed {
            let why = match &p.command {
                Command::Accept => {
                    "Only the responder this conversation is being transferred to can accept it."
                }
                Command::Join => "Only this program's supervisors can join its conversations.",
                Command::Reveal => "Only this program's supervisors can reveal a texter's number.",
                Command::Note(_) => "Only this program's staff can add notes.",
                Command::Transfer { .. } | Command::Escalate { .. } => {
                    "Only the assigned responder can transfer or escalate this conversation."
                }
                _ => "Only the assigned responder (or a supervisor) can do that.",
            };
            return self.notice(&reply_room, why).await;
        }
        let Some(c) = convs.get_mut(&id) else {
            return Ok(());
        };
        crate::actions::run(self, c, &program, &reply_room, sender, p.command, now).await?;
        let program_id = c.program.clone();
        let queued = c.state == State::Queued;
        if queued || matches!(c.history.last(), Some(s) if s.from == State::Queued) {
            self.board(convs, &program_id).await?;
        } else {
            self.gauges(convs);
        }
        Ok(())
    }

    /// `!next` / `!claim N` in a queue room.
    async fn assign(
        &self,
        convs: &mut BTreeMap<u64, Conversation>,
        room: &RoomId,
        program_id: &str,
        sender: &str,
        wanted: Option<u64>,
        now: u64,
    ) -> Reply {
        let Some(program) = self.config.program(program_id).cloned() else {
            return Ok(());
        };
        if program.role(sender).is_none() {
            return self
                .notice(
                    room,
                    &format!("Only {}'s responders can take conversations.", program.name),
                )
                .await;
        }
        let busy = convs
            .values()
            .filter(|c| c.responder.as_deref() == Some(sender) && BUSY.contains(&c.state))
            .count();
        if busy >= program.max_concurrent {
            return self
                .notice(
                    room,
                    &format!(
                        "{sender} already has {busy} conversations (the most allowed is {}). Close or transfer one first.",
                        program.max_concurrent
                    ),
                )
                .await;
        }
        let id = match wanted {
            Some(id) => id,
            None => match queue::waiting(convs.values(), program_id).first() {
                Some(c) => c.id,
                None => return self.notice(room, "Nobody is waiting.").await,
            },
        };
        let Some(c) = convs.get_mut(&id).filter(|c| c.program == program_id) else {
            return self
                .notice(
                    room,
                    &format!("There is no conversation #{id} in this queue."),
                )
                .await;
        };
        if let Err(why) = c.apply(Action::Assign, sender, now) {
            return self.notice(room, &format!("#{id}: {why}")).await;
        }
        c.responder = Some(sender.to_owned());
        c.assigned_ms = Some(now);
        self.timers.set(
            now + program.first_response_target_s * 1000,
            &Timer::FirstResponse {
                conversation: id,
                since_ms: now,
            },
        )?;
        let c = c.clone();
        self.emit("conversation.assigned", &c, json!({}))?;
        self.save(&c).await?;
        let conv_room = OwnedRoomId::try_from(c.room.as_str())?;
        self.bring_in(&conv_room, sender, WRITE).await?;
        self.notice(
            &conv_room,
            &format!(
                "{sender} has taken conversation #{id} (risk {}).",
                c.risk.as_str()
            ),
        )
        .await?;
        self.notice(
            room,
            &format!("#{id} is assigned to {sender}; you're invited to its room."),
        )
        .await?;
        self.board(convs, program_id).await
    }

    /// A retention sweep (reporting only unless `purge`); answers its report.
    pub async fn retention(&self, purge: bool) -> Result<String, BoxError> {
        let mut convs = self.convs.lock().await;
        let report = crate::retention::sweep(self, &mut convs, purge).await?;
        self.gauges(&convs);
        Ok(report)
    }

    /// Fires a due timer; each acts only if the conversation still waits for it.
    pub async fn fire(&self, timer: &Timer) -> Reply {
        let mut convs = self.convs.lock().await;
        let id = match timer {
            Timer::Expire { conversation }
            | Timer::FollowUp { conversation }
            | Timer::FirstResponse { conversation, .. }
            | Timer::NextResponse { conversation, .. } => *conversation,
        };
        let Some(c) = convs.get_mut(&id) else {
            return Ok(());
        };
        let Some(program) = self.config.program(&c.program).cloned() else {
            return Ok(());
        };
        let room = OwnedRoomId::try_from(c.room.as_str())?;
        let now = now_ms();
        match timer {
            Timer::Expire { .. } => {
                if c.apply(Action::Expire, self.bot.as_str(), now).is_err() {
                    return Ok(());
                }
                c.surveys.asking = None;
                let c = c.clone();
                self.emit("conversation.closed", &c, json!({ "reason": "expired" }))?;
                self.save(&c).await?;
                self.text(&room, &program.expiry_message, &format!("expired-{id}"))
                    .await?;
                self.notice(&room, &format!("Conversation #{id} expired in the queue."))
                    .await?;
                self.board(&convs, &program.id).await?;
            }
            Timer::FollowUp { .. } => {
                if c.apply(Action::TriggerFollowUp, self.bot.as_str(), now)
                    .is_err()
                {
                    return Ok(());
                }
                let c = c.clone();
                self.emit("conversation.followup.triggered", &c, json!({}))?;
                self.save(&c).await?;
                self.text(
                    &room,
                    &program.followup_message,
                    &format!("followup-{id}-{}", c.followup_at_ms.unwrap_or(0)),
                )
                .await?;
                let who = c.responder.clone().unwrap_or_default();
                self.notice(&room, &format!("{who}: the follow-up for conversation #{id} is due; the texter has been messaged."))
                    .await?;
                self.gauges(&convs);
            }
            Timer::FirstResponse { since_ms, .. } => {
                if c.state == State::Assigned && c.assigned_ms == Some(*since_ms) {
                    let who = c.responder.clone().unwrap_or_default();
                    let text = format!(
                        "⏱ Conversation #{id}: no first response from {who} within {} s of assignment (the program's target).",
                        program.first_response_target_s
                    );
                    self.alert(&program.id, "first_response", &text).await?;
                }
            }
            Timer::NextResponse { since_ms, .. } => {
                if c.awaiting_since_ms == Some(*since_ms) && !c.state.is_final() {
                    let who = c.responder.clone().unwrap_or_default();
                    let text = format!(
                        "⏱ Conversation #{id}: the texter has waited more than {} s for an answer from {who}.",
                        program.next_response_target_s
                    );
                    self.alert(&program.id, "next_response", &text).await?;
                }
            }
        }
        self.store.flush().await?;
        self.webhooks.kick();
        Ok(())
    }

    /// The model judged conversation `id` at `level`: raise it if that is higher.
    async fn raise_risk(&self, id: u64, level: Risk) -> Reply {
        let mut convs = self.convs.lock().await;
        let Some(c) = convs.get_mut(&id) else {
            return Ok(());
        };
        if level <= c.risk || c.state.is_final() {
            return Ok(());
        }
        c.risk = level;
        if level.alarming() {
            c.tags.insert(format!("risk:{}", level.as_str()));
        }
        let c = c.clone();
        self.emit(
            "conversation.tag.updated",
            &c,
            json!({ "risk": level.as_str(), "by": "model" }),
        )?;
        self.save(&c).await?;
        if level.alarming() {
            self.alert(
                &c.program,
                "risk",
                &format!(
                    "⚠️ Risk {} in conversation #{} ({}): assessed by the model from the texter's latest message. !join {} to read it.",
                    level.as_str(),
                    c.id,
                    c.state.as_str(),
                    c.id
                ),
            )
            .await?;
        }
        if c.state == State::Queued {
            self.board(&convs, &c.program).await?;
        }
        self.store.flush().await?;
        self.webhooks.kick();
        Ok(())
    }

    /// Makes a notice for risk tagging (`!risk`) and alerts supervisors if it became alarming.
    pub(crate) async fn risk_alert(&self, c: &Conversation, before: Risk, by: &str) -> Reply {
        if c.risk.alarming() && c.risk > before {
            self.alert(
                &c.program,
                "risk",
                &format!(
                    "⚠️ {by} set conversation #{} to risk {}. !join {} to read it.",
                    c.id,
                    c.risk.as_str(),
                    c.id
                ),
            )
            .await?;
        }
        Ok(())
    }
}

pub const WRITE_LEVEL: i64 = WRITE;
