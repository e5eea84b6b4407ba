//! The conversation commands, once the handler has checked who may run them. Each refuses
//! with what the state machine allows (changing nothing) or changes the conversation, saves
//! it, and answers with a notice.

use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::json;

use crate::{
    commands::Command,
    config::Program,
    conversation::{Conversation, Escalation, SurveyKind},
    handler::{Handler, WRITE_LEVEL},
    machine::Action,
    rooms, summary,
    timers::Timer,
};

type Reply = Result<(), appservice_runtime::BoxError>;

/// Applies `action`, or says why not (and returns false).
async fn step(
    h: &Handler,
    c: &mut Conversation,
    room: &RoomId,
    action: Action,
    by: &str,
    now: u64,
) -> Result<bool, appservice_runtime::BoxError> {
    match c.apply(action, by, now) {
        Ok(_) => Ok(true),
        Err(why) => {
            h.notice(room, &format!("#{}: {why}", c.id)).await?;
            Ok(false)
        }
    }
}

pub async fn run(
    h: &Handler,
    c: &mut Conversation,
    program: &Program,
    room: &RoomId,
    sender: &str,
    command: Command,
    now: u64,
) -> Reply {
    let conv_room = OwnedRoomId::try_from(c.room.as_str())?;
    let id = c.id;
    match command {
        Command::Accept => {
            if c.state != crate::machine::State::Transferred {
                return h
                    .notice(
                        room,
                        &format!(
                            "#{id}: {}",
                            crate::machine::refusal(c.state, Action::AcceptTransfer)
                        ),
                    )
                    .await;
            }
            h.accept_transfer(c, sender, now).await?;
            h.emit("conversation.assigned", c, json!({ "via": "transfer" }))?;
            h.save(c).await
        }
        Command::Transfer { to, note } => {
            if program.role(&to).is_none() {
                return h
                    .notice(
                        room,
                        &format!("{to} is not one of {}'s responders.", program.name),
                    )
                    .await;
            }
            if to == sender {
                return h.notice(room, "That is you already.").await;
            }
            if !step(h, c, room, Action::Transfer, sender, now).await? {
                return Ok(());
            }
            c.transfer_to = Some(to.clone());
            let events = h.client.recent_events(&conv_room, 100).await?;
            let lines = summary::transcript(&events, c);
            let intake = h
                .client
                .state(&conv_room, "org.haven.intake.summary", "")
                .await?
                .and_then(|s| s["summary"].as_str().map(str::to_owned));
            let (text, source) =
                summary::summarise(h.model.as_ref(), c, &lines, intake.as_deref()).await;
            h.emit(
                "conversation.transferred",
                c,
                json!({ "from": sender, "to": to }),
            )?;
            h.save(c).await?;
            h.bring_in(&conv_room, &to, WRITE_LEVEL).await?;
            let note = if note.is_empty() {
                String::new()
            } else {
                format!("\nNote from {sender}: {note}")
            };
            let content = json!({
                "msgtype": "m.notice",
                "body": format!("{to}: {sender} is transferring conversation #{id} to you. Send any message or !accept to take it.{note}\nSummary ({source}): {text}"),
                "m.mentions": { "user_ids": [to] },
            });
            h.client.send_message(&conv_room, &content, None).await?;
            Ok(())
        }
        Command::Escalate {
            police,
            urgency,
            location,
        } => {
            let action = if police {
                Action::EscalatePolice
            } else {
                Action::EscalateMedical
            };
            if !step(h, c, room, action, sender, now).await? {
                return Ok(());
            }
            let kind = if police { "police" } else { "medical" };
            let n: u64 = h.store.get("escalation_seq", "n")?.unwrap_or(0) + 1;
            h.store.put("escalation_seq", "n", &n)?;
            let reference = format!("ESC-{}-{n:04}", date(now));
            c.escalations.push(Escalation {
                reference: reference.clone(),
                police,
                urgency: urgency.clone(),
                location: location.clone(),
                by: sender.to_owned(),
                at_ms: now,
                resolved_ms: None,
            });
            h.metrics.escalations.with_label_values(&[kind]).inc();
            h.emit(
                "conversation.escalated",
                c,
                json!({ "reference": reference, "kind": kind, "urgency": urgency }),
            )?;
            let sup_room = h
                .dir
                .programs
                .get(&c.program)
                .map(|r| r.supervisor.to_string())
                .unwrap_or_default();
            let called = h.webhooks.emergency(
                json!({
                    "reference": reference, "kind": kind, "urgency": urgency,
                    "location": if location.is_empty() { None } else { Some(&location) },
                    "program": c.program, "affiliate": c.affiliate, "conversation": id,
                    "room_id": c.room, "responder": sender, "at": now,
                }),
                vec![sup_room, c.room.clone()],
            )?;
            h.save(c).await?;
            let place = if location.is_empty() {
                "no location given".to_owned()
            } else {
                location.clone()
            };
            let text = format!(
                "🚨 {reference}: {kind} escalation ({urgency}, {place}) of conversation #{id} by {sender}. {} !join {id} to follow it.",
                if called {
                    "Emergency services are being notified."
                } else {
                    "No emergency-services webhook is configured: call them directly."
                }
            );
            h.alert(&c.program, "escalation", &text).await?;
            for sup in &program.on_call {
                match rooms::direct_room(&h.client, &h.store, sup).await {
                    Ok(dm) => h.notice(&dm, &text).await?,
                    Err(e) => tracing::warn!(supervisor = %sup, error = %e, "on-call DM failed"),
                }
            }
            h.notice(
                room,
                &format!("Escalated ({kind}) as {reference}. Supervisors are alerted. !resolve when it is handled."),
            )
            .await
        }
        Command::Resolve => {
            if !step(h, c, room, Action::Resolve, sender, now).await? {
                return Ok(());
            }
            let reference = c
                .escalations
                .iter_mut()
                .rev()
                .find(|e| e.resolved_ms.is_none())
                .map(|e| {
                    e.resolved_ms = Some(now);
                    e.reference.clone()
                })
                .unwrap_or_default();
            h.save(c).await?;
            h.notice(
                room,
                &format!("{reference} resolved; conversation #{id} is active again."),
            )
            .await
        }
        Command::WrapUp => {
            if !step(h, c, room, Action::BeginWrapUp, sender, now).await? {
                return Ok(());
            }
            let first = program.exit_survey.first().cloned();
            if first.is_some() {
                c.surveys.asking = Some((SurveyKind::Exit, 0));
                c.surveys.asked_ms = now;
            }
            h.save(c).await?;
            h.notice(
                room,
                &format!(
                    "Conversation #{id} is in wrap-up.{}",
                    if first.is_some() {
                        " The exit survey is sent to the texter."
                    } else {
                        ""
                    }
                ),
            )
            .await?;
            if let Some(q) = first {
                c.surveys.asked_ms = h
                    .text(&conv_room, &q, &format!("survey-exit-{id}-0"))
                    .await?;
                h.save(c).await?;
            }
            Ok(())
        }
        Command::FollowUp { after_s } => {
            if !step(h, c, room, Action::ScheduleFollowUp, sender, now).await? {
                return Ok(());
            }
            let at = now + after_s * 1000;
            c.followup_at_ms = Some(at);
            h.timers.set(at, &Timer::FollowUp { conversation: id })?;
            h.emit("conversation.followup.scheduled", c, json!({ "at": at }))?;
            h.save(c).await?;
            h.notice(
                room,
                &format!(
                    "Follow-up for #{id} scheduled in {}.",
                    crate::queue::wait_text(after_s)
                ),
            )
            .await
        }
        Command::Close => {
            if !step(h, c, room, Action::Close, sender, now).await? {
                return Ok(());
            }
            c.surveys.asking = None;
            h.emit("conversation.closed", c, json!({ "by": sender }))?;
            h.save(c).await?;
            h.notice(room, &format!("Conversation #{id} is closed."))
                .await
        }
        Command::Tag(tag) => {
            if !c.tags.insert(tag.clone()) {
                return h
                    .notice(room, &format!("#{id} is already tagged {tag}."))
                    .await;
            }
            h.emit("conversation.tag.updated", c, json!({ "added": tag }))?;
            h.save(c).await?;
            h.notice(room, &format!("#{id} tagged {tag}.")).await
        }
        Command::Risk(level) => {
            let before = c.risk;
            c.risk = level;
            if level.alarming() {
                c.tags.insert(format!("risk:{}", level.as_str()));
            }
            h.emit(
                "conversation.tag.updated",
                c,
                json!({ "risk": level.as_str() }),
            )?;
            h.save(c).await?;
            h.notice(room, &format!("#{id} risk set to {}.", level.as_str()))
                .await?;
            h.risk_alert(c, before, sender).await
        }
        Command::Note(text) => {
            let Some(rooms) = h.dir.programs.get(&c.program) else {
                return Ok(());
            };
            h.notice(
                &rooms.staff,
                &format!("📝 Note on #{id} by {sender}: {text}"),
            )
            .await?;
            h.notice(
                room,
                "Note saved in the staff room (not sent to the texter).",
            )
            .await
        }
        Command::Canned(name) => match program.canned.get(&name) {
            Some(text) => {
                h.text(&conv_room, text, &format!("canned-{id}-{now}"))
                    .await?;
                if c.state == crate::machine::State::Assigned {
                    c.apply(Action::Start, sender, now)?;
                    c.first_response_ms = Some(now);
                }
                c.awaiting_since_ms = None;
                h.save(c).await
            }
            None => {
                let names: Vec<&str> = program.canned.keys().map(String::as_str).collect();
                h.notice(
                    room,
                    &format!(
                        "No canned response \"{name}\". Available: {}.",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
                .await
            }
        },
        Command::Join => {
            // Power level 0: supervisors read, and write only once assigned.
            UserId::parse(sender)?;
            h.bring_in(&conv_room, sender, 0).await?;
            h.notice(
                room,
                &format!("Invited to conversation #{id} (read-only unless it is assigned to you)."),
            )
            .await
        }
        Command::Reveal => {
            // Supervisors read conversations but cannot write in them (power level 0), and the
            // bridge is not in supervisor rooms: the handler brings the supervisor in and
            // relays the request, naming them; the bridge checks they are a supervisor,
            // audits it, and posts the one-time link (which opens only with their own token).
            UserId::parse(sender)?;
            h.bring_in(&conv_room, sender, 0).await?;
            h.client
                .send_text(&conv_room, &format!("!reveal {sender}"), false)
                .await?;
            h.notice(
                room,
                &format!("Asked the SMS bridge to reveal the number of conversation #{id} for {sender}: the one-time link is in the conversation room (accept the invitation to it)."),
            )
            .await
        }
        Command::Next | Command::Claim | Command::Retention { .. } | Command::Help => Ok(()),
    }
}

/// `YYYYMMDD` (UTC) of a Unix time in milliseconds.
pub fn date(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(super::date(0), "19700101");
        assert_eq!(super::date(1_795_219_200_000), "20261121");
        assert_eq!(super::date(951_782_400_000), "20000229");
    }
}
