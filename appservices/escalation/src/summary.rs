//! The summary a receiving responder gets with a transfer: from the intake bot's model backend
//! when one is configured, else the offline summariser. Either way it is built from this
//! room's own messages only, with the texter and staff named by role, not by identity.

use intake_bot::model::{OpenAiClient, Turn};
use serde_json::Value;

use crate::conversation::Conversation;

const PROMPT: &str = "You brief a support responder who is taking over a text conversation. \
In three or four plain sentences say what the texter is dealing with, how they are now, what \
has been tried or agreed, and any risk. Do not invent anything.";

/// "Texter: ..." / "Responder: ..." lines of the room's text messages, oldest first.
pub fn transcript(events: &[Value], conv: &Conversation) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["content"]["msgtype"] == "m.text")
        .filter_map(|e| {
            let body = e["content"]["body"].as_str()?;
            if body.trim_start().starts_with('!') {
                return None; // commands are not conversation
            }
            let who = if e["sender"].as_str() == conv.texter.as_deref() {
                "Texter"
            } else {
                "Responder"
            };
            Some(format!("{who}: {}", body.trim()))
        })
        .collect()
}

/// The offline summary: the facts the handler knows and the texter's latest words.
pub fn offline(conv: &Conversation, lines: &[String], intake: Option<&str>) -> String {
    let mut parts = vec![format!(
        "Conversation #{} ({}), risk {}{}.",
        conv.id,
        conv.program,
        conv.risk.as_str(),
        if conv.tags.is_empty() {
            String::new()
        } else {
            format!(
                ", tags: {}",
                conv.tags.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    )];
    let texter: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("Texter: "))
        .collect();
    parts.push(format!(
        "{} messages so far, {} from the texter.",
        lines.len(),
        texter.len()
    ));
    if let Some(i) = intake {
        parts.push(format!("Intake: {}", i.replace('\n', "; ")));
    }
    if !texter.is_empty() {
        let last: Vec<String> = texter
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|t| format!("“{t}”"))
            .collect();
        parts.push(format!(
            "Most recently the texter said: {}.",
            last.join(" ")
        ));
    }
    if let Some(e) = conv
        .escalations
        .iter()
        .rev()
        .find(|e| e.resolved_ms.is_none())
    {
        parts.push(format!("Open escalation {}.", e.reference));
    }
    parts.join(" ")
}

/// The model's summary, or the offline one when there is no model or it fails.
pub async fn summarise(
    model: Option<&OpenAiClient>,
    conv: &Conversation,
    lines: &[String],
    intake: Option<&str>,
) -> (String, &'static str) {
    if let Some(m) = model {
        let turn = Turn {
            role: "user".into(),
            content: lines.join("\n"),
        };
        match m.complete(PROMPT, &[turn], false).await {
            Ok(c) => return (c.text, "model"),
            Err(e) => {
                tracing::warn!(error = %e, "summary by the model failed; using the offline one")
            }
        }
    }
    (offline(conv, lines, intake), "offline")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_offline_summary_names_roles_and_skips_commands() {
        let conv = Conversation::from_bridge(
            7,
            "!r:hs",
            &json!({"program": "crisis", "puppet": "@sms_1:hs", "state": "new"}),
            0,
        )
        .unwrap();
        let events = vec![
            json!({"type": "m.room.message", "sender": "@sms_1:hs", "content": {"msgtype": "m.text", "body": "I lost my flat"}}),
            json!({"type": "m.room.message", "sender": "@ann:hs", "content": {"msgtype": "m.text", "body": "I'm sorry. Where are you now?"}}),
            json!({"type": "m.room.message", "sender": "@ann:hs", "content": {"msgtype": "m.text", "body": "!tag housing"}}),
            json!({"type": "m.room.message", "sender": "@esc:hs", "content": {"msgtype": "m.notice", "body": "Tagged"}}),
            json!({"type": "m.room.message", "sender": "@sms_1:hs", "content": {"msgtype": "m.text", "body": "At the station"}}),
        ];
        let lines = transcript(&events, &conv);
        assert_eq!(
            lines,
            [
                "Texter: I lost my flat",
                "Responder: I'm sorry. Where are you now?",
                "Texter: At the station"
            ]
        );
        let s = offline(&conv, &lines, Some("How old are you? — 17"));
        assert!(s.starts_with("Conversation #7 (crisis), risk low."), "{s}");
        assert!(s.contains("3 messages so far, 2 from the texter"));
        assert!(s.contains("Intake: How old are you? — 17"));
        assert!(s.contains("“I lost my flat” “At the station”"));
        assert!(!s.contains("@sms_1"));
    }
}
