//! The bot on the Application Service API: it greets the person in their intake room, runs
//! the interview with every message they send, and writes the profile state event.

use std::time::Instant;

use appservice_runtime::{AsClient, BoxError, Store};
use ruma::{
    api::client::{message::send_message_event, state::send_state_event},
    events::{AnyMessageLikeEventContent, AnyStateEventContent},
    serde::Raw,
    OwnedRoomId, OwnedUserId, RoomId, TransactionId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{interview::Interview, profile::PROFILE_EVENT};

const ROOMS: &str = "intake_rooms";

/// One intake room: who is being interviewed and how far along.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntakeRoom {
    pub interviewee: OwnedUserId,
    pub interview: Interview,
    /// The conversation so far, for the model backend.
    #[serde(default)]
    pub history: Vec<crate::model::Turn>,
}

/// Where a bot message came from (`org.haven.ai`).
pub struct Provenance {
    pub backend: &'static str,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Provenance {
    fn offline() -> Self {
        Self {
            backend: "offline",
            model: "haven-slot-filling-1".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }
}

pub struct Bot {
    pub client: AsClient,
    pub store: Store,
    pub bot: OwnedUserId,
    pub max_exchanges: u32,
    /// The language model, when configured; the offline interviewer otherwise.
    pub model: Option<crate::model::OpenAiClient>,
}

fn raw<T>(v: &Value) -> Result<Raw<T>, BoxError> {
    Ok(Raw::from_json(serde_json::value::to_raw_value(v)?))
}

impl Bot {
    /// Sends a message with its provenance (`org.haven.ai`).
    async fn say(
        &self,
        room: &RoomId,
        text: &str,
        started: Instant,
        p: Provenance,
        notice: bool,
    ) -> Result<(), BoxError> {
        let content = json!({
            "msgtype": if notice { "m.notice" } else { "m.text" },
            "body": text,
            "org.haven.ai": {
                "backend": p.backend,
                "model": p.model,
                "prompt_tokens": p.prompt_tokens,
                "completion_tokens": p.completion_tokens,
                "latency_ms": started.elapsed().as_millis() as u64,
            },
        });
        let req = send_message_event::v3::Request::new_raw(
            room.to_owned(),
            TransactionId::new(),
            "m.room.message".into(),
            raw::<AnyMessageLikeEventContent>(&content)?,
        );
        self.client.send(req).await?;
        Ok(())
    }

    async fn write_profile(&self, room: &RoomId, intake: &IntakeRoom) -> Result<(), BoxError> {
        let content = serde_json::to_value(&intake.interview.profile)?;
        let req = send_state_event::v3::Request::new_raw(
            room.to_owned(),
            PROFILE_EVENT.into(),
            String::new(),
            raw::<AnyStateEventContent>(&content)?,
        );
        self.client.send(req).await?;
        Ok(())
    }

    async fn start(&self, room: &RoomId, interviewee: OwnedUserId) -> Result<(), BoxError> {
        let started = Instant::now();
        let mut intake = IntakeRoom {
            interviewee,
            interview: Interview::new(self.max_exchanges),
            history: Vec::new(),
        };
        let greeting = intake.interview.greeting();
        intake.history.push(crate::model::Turn {
            role: "assistant".into(),
            content: greeting.clone(),
        });
        self.store.put(ROOMS, room.as_str(), &intake)?;
        self.store.flush().await?;
        self.say(room, &greeting, started, Provenance::offline(), false)
            .await
    }

    /// Handles one event from the homeserver.
    pub async fn event(&self, ev: &Value) -> Result<(), BoxError> {
        let Some(room) = ev["room_id"].as_str() else {
            return Ok(());
        };
        let room: OwnedRoomId = room.try_into()?;
        let sender = ev["sender"].as_str().unwrap_or_default();
        let existing: Option<IntakeRoom> = self.store.get(ROOMS, room.as_str())?;
        match ev["type"].as_str() {
            Some("m.room.member") => {
                let target = ev["state_key"].as_str().unwrap_or_default();
                let membership = ev["content"]["membership"].as_str().unwrap_or_default();
                if target == self.bot.as_str() && membership == "invite" {
                    // Invited into a room: join and interview whoever invited the bot.
                    self.client.join(&room).await?;
                    if existing.is_none() {
                        self.start(&room, sender.try_into()?).await?;
                    }
                } else if membership == "join"
                    && target != self.bot.as_str()
                    && existing.is_none()
                    && sender == target
                {
                    // Someone joined a room the bot is in (the greeting room the homeserver made).
                    self.start(&room, target.try_into()?).await?;
                }
            }
            Some("m.room.message") => {
                let Some(mut intake) = existing else {
                    return Ok(());
                };
                // Only the interviewee's own text is answered; never the bot's or anyone else's.
                if sender != intake.interviewee.as_str() || ev["content"]["msgtype"] != "m.text" {
                    return Ok(());
                }
                let started = Instant::now();
                let text = ev["content"]["body"].as_str().unwrap_or_default();
                intake.history.push(crate::model::Turn {
                    role: "user".into(),
                    content: text.to_owned(),
                });
                match &self.model {
                    None => {
                        let turn = intake.interview.answer(text);
                        intake.history.push(crate::model::Turn {
                            role: "assistant".into(),
                            content: turn.reply.clone(),
                        });
                        self.store.put(ROOMS, room.as_str(), &intake)?;
                        self.store.flush().await?;
                        if turn.changed {
                            self.write_profile(&room, &intake).await?;
                        }
                        self.say(&room, &turn.reply, started, Provenance::offline(), false)
                            .await?;
                    }
                    Some(model) => match model.next(&intake.history).await {
                        Ok(r) => {
                            intake.history.push(crate::model::Turn {
                                role: "assistant".into(),
                                content: r.reply.clone(),
                            });
                            let changed = r
                                .profile
                                .as_ref()
                                .is_some_and(|p| *p != intake.interview.profile);
                            if let Some(p) = r.profile {
                                intake.interview.profile = p;
                            }
                            self.store.put(ROOMS, room.as_str(), &intake)?;
                            self.store.flush().await?;
                            if changed {
                                self.write_profile(&room, &intake).await?;
                            }
                            let prov = Provenance {
                                backend: "openai",
                                model: r.model,
                                prompt_tokens: r.prompt_tokens,
                                completion_tokens: r.completion_tokens,
                            };
                            self.say(&room, &r.reply, started, prov, false).await?;
                        }
                        Err(e) => {
                            // The person's message is kept; the conversation goes on next time.
                            tracing::warn!(error = %e, "model call failed");
                            self.store.put(ROOMS, room.as_str(), &intake)?;
                            self.store.flush().await?;
                            let prov = Provenance {
                                backend: "openai",
                                model: String::new(),
                                prompt_tokens: 0,
                                completion_tokens: 0,
                            };
                            self.say(&room, "Sorry, I couldn't answer just now. Please send that again in a moment.", started, prov, true).await?;
                        }
                    },
                }
            }
            _ => {}
        }
        Ok(())
    }
}
