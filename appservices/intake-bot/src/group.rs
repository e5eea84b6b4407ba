//! Group rooms: the per-room settings state event, what counts as a mention, the context a
//! model answer is built from, and the offline answer (finding room members by their intake
//! profiles, when the room allows it).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{model::Turn, profile::Profile, understand};

/// The per-room settings state event (empty state key); room admins change it like any other
/// state, so the room's power levels decide who may.
pub const SETTINGS_EVENT: &str = "org.haven.intake.settings";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomSettings {
    /// The bot answers nothing in this room when false.
    pub enabled: bool,
    /// A message starting with this asks the bot (besides mentions).
    pub trigger: String,
    /// Replaces the default instructions given to the model.
    pub system_prompt: Option<String>,
    /// The offline backend may list members of this room matching a question from their
    /// intake profiles.
    pub profile_search: bool,
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            trigger: "!ai".into(),
            system_prompt: None,
            profile_search: false,
        }
    }
}

pub const DEFAULT_GROUP_PROMPT: &str = "You are the assistant of a volunteer support network, \
answering a question asked in a group chat. Answer briefly and kindly from the conversation shown; \
say so when you do not know. Never invent facts about people.";

/// The question, when `content` (an `m.room.message`) asks the bot: a message starting with the
/// room's trigger, an `m.mentions` naming the bot, or the bot's ID, `@localpart` or display
/// name in the text. Quoted reply fallbacks (`> ` lines) do not count.
pub fn question(
    content: &Value,
    bot: &str,
    display_name: &str,
    settings: &RoomSettings,
) -> Option<String> {
    let body = content["body"].as_str()?;
    let own: Vec<&str> = body
        .lines()
        .skip_while(|l| l.starts_with("> "))
        .skip_while(|l| l.trim().is_empty())
        .collect();
    let text = own.join("\n");
    let trimmed = text.trim();
    let trigger = settings.trigger.trim();
    if !trigger.is_empty() {
        if let Some(rest) = strip_prefix_ci(trimmed, trigger) {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                return Some(rest.trim().to_owned());
            }
        }
    }
    let localpart = bot.trim_start_matches('@').split(':').next().unwrap_or("");
    let listed = content["m.mentions"]["user_ids"]
        .as_array()
        .is_some_and(|ids| ids.iter().any(|i| i == bot));
    let mut found = listed;
    let mut q = trimmed.to_owned();
    // Anywhere: the full ID, `@localpart`, `@display name` (longest first, so the full ID goes
    // before its `@localpart` prefix). The bare display name only when the message starts with
    // it ("Intake, ..."), since it may be an ordinary word.
    let mut tagged = vec![bot.to_owned(), format!("@{localpart}")];
    let display_name = display_name.trim();
    if !display_name.is_empty() {
        tagged.push(format!("@{display_name}"));
    }
    tagged.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in &tagged {
        if let Some(at) = find_word_ci(&q, n) {
            found = true;
            q.replace_range(at..at + n.len(), "");
        }
    }
    if !display_name.is_empty() && find_word_ci(&q, display_name) == Some(0) {
        found = true;
        q.replace_range(..display_name.len(), "");
    }
    found.then(|| {
        q.trim_matches(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '-'))
            .to_owned()
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Byte offset of `needle` in `hay` (ASCII case-insensitive) as a whole word.
fn find_word_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.to_ascii_lowercase();
    let n = needle.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = h[from..].find(&n) {
        let at = from + i;
        let end = at + n.len();
        let before = h[..at].chars().next_back();
        let after = h[end..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if boundary(before) && boundary(after) {
            return Some(at);
        }
        from = at + n.len().max(1);
    }
    None
}

/// Where the answer goes: in the thread the question was asked in, else as a reply to it.
pub fn reply_relation(question_event: &Value) -> Value {
    let event_id = question_event["event_id"].clone();
    let rel = &question_event["content"]["m.relates_to"];
    if rel["rel_type"] == "m.thread" {
        json!({
            "rel_type": "m.thread",
            "event_id": rel["event_id"],
            "is_falling_back": true,
            "m.in_reply_to": { "event_id": event_id },
        })
    } else {
        json!({ "m.in_reply_to": { "event_id": event_id } })
    }
}

/// One room message as context: who said it and what.
#[derive(Debug, Clone)]
pub struct Said {
    pub sender: String,
    pub name: String,
    pub body: String,
}

/// The model's conversation for a group question: instructions with the member list, then the
/// recent messages (the bot's own as `assistant`), newest last, within `budget_chars`.
pub fn context(
    settings: &RoomSettings,
    members: &[(String, String)],
    history: &[Said],
    bot: &str,
    question: &str,
    asker: &str,
    budget_chars: usize,
) -> (String, Vec<Turn>) {
    let mut system = settings
        .system_prompt
        .clone()
        .unwrap_or_else(|| DEFAULT_GROUP_PROMPT.to_owned());
    let names: Vec<String> = members
        .iter()
        .map(|(id, name)| format!("{name} ({id})"))
        .collect();
    system.push_str("\nRoom members: ");
    system.push_str(&names.join(", "));
    let final_turn = Turn {
        role: "user".into(),
        content: format!("{asker}: {question}"),
    };
    let mut used = system.len() + final_turn.content.len();
    let mut turns = Vec::new();
    for s in history.iter().rev() {
        let turn = if s.sender == bot {
            Turn {
                role: "assistant".into(),
                content: s.body.clone(),
            }
        } else {
            Turn {
                role: "user".into(),
                content: format!("{}: {}", s.name, s.body),
            }
        };
        used += turn.content.len();
        if used > budget_chars {
            break;
        }
        turns.push(turn);
    }
    turns.reverse();
    turns.push(final_turn);
    (system, turns)
}

/// The offline answer: members whose profiles match what the question names (skills,
/// languages, days, times, causes), or what the bot can do when it names nothing.
pub fn offline_answer(
    question: &str,
    settings: &RoomSettings,
    people: &[(String, Profile)],
) -> String {
    const HELP: &str = "I'm the intake assistant. Without a language model configured I can only \
find people in this room by what they told me at intake — for example \"who speaks Spanish?\" or \
\"who can drive on weekends?\" — when the room's admins turn on profile search.";
    let understand::Terms {
        skills,
        languages,
        causes,
        days,
        times,
    } = understand::terms(question);
    let asked = !(skills.is_empty()
        && languages.is_empty()
        && causes.is_empty()
        && days.is_empty()
        && times.is_empty());
    if !asked || !settings.profile_search {
        return HELP.to_owned();
    }
    let has_all = |have: &[String], want: &[String]| want.iter().all(|w| have.contains(w));
    let matching: Vec<String> = people
        .iter()
        .filter(|(_, p)| {
            has_all(&p.skills, &skills)
                && has_all(&p.languages, &languages)
                && has_all(&p.causes, &causes)
                && has_all(&p.availability.days, &days)
                && has_all(&p.availability.times, &times)
        })
        .map(|(name, p)| format!("{name} — {}", p.searchable_text))
        .collect();
    if matching.is_empty() {
        "Nobody in this room matches that in their intake profile.".to_owned()
    } else {
        format!(
            "From their intake profiles:\n{}",
            matching
                .iter()
                .map(|m| format!("• {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "@intake:hs";

    fn q(body: &str) -> Option<String> {
        question(
            &json!({ "body": body }),
            BOT,
            "Intake Assistant",
            &RoomSettings::default(),
        )
    }

    #[test]
    fn mentions_triggers_and_names_ask_the_bot() {
        assert_eq!(q("!ai who is on call?").as_deref(), Some("who is on call?"));
        assert_eq!(q("!AI  help").as_deref(), Some("help"));
        assert_eq!(q("!aiden is here"), None);
        assert_eq!(
            q("@intake what's the shelter's address?").as_deref(),
            Some("what's the shelter's address?")
        );
        assert_eq!(
            q("@intake:hs: summarise please").as_deref(),
            Some("summarise please")
        );
        assert_eq!(
            q("Intake assistant, who speaks Tagalog?").as_deref(),
            Some("who speaks Tagalog?")
        );
        assert_eq!(q("the intake form is long"), None);
        assert_eq!(
            question(
                &json!({ "body": "the intake form is long" }),
                BOT,
                "intake",
                &RoomSettings::default()
            ),
            None
        );
        assert_eq!(
            question(
                &json!({ "body": "intake: hi" }),
                BOT,
                "intake",
                &RoomSettings::default()
            )
            .as_deref(),
            Some("hi")
        );
        assert_eq!(q("thanks @Intake Assistant!").as_deref(), Some("thanks !"));
        assert_eq!(q("email me at x@intakes.org"), None);
        assert_eq!(q("> <@intake:hs> earlier answer\n\nthanks all"), None);
        let listed = json!({ "body": "Assistant: thoughts?", "m.mentions": { "user_ids": [BOT] } });
        assert_eq!(
            question(&listed, BOT, "Assistant", &RoomSettings::default()).as_deref(),
            Some("thoughts?")
        );
        let custom = RoomSettings {
            trigger: "?bot".into(),
            ..RoomSettings::default()
        };
        assert_eq!(
            question(&json!({ "body": "?bot hi" }), BOT, "", &custom).as_deref(),
            Some("hi")
        );
    }

    #[test]
    fn answers_go_to_the_thread_of_the_question() {
        let in_thread = json!({ "event_id": "$q", "content": { "m.relates_to": { "rel_type": "m.thread", "event_id": "$root" } } });
        let r = reply_relation(&in_thread);
        assert_eq!(
            (r["rel_type"].as_str(), r["event_id"].as_str()),
            (Some("m.thread"), Some("$root"))
        );
        assert_eq!(r["m.in_reply_to"]["event_id"], "$q");
        let plain = reply_relation(&json!({ "event_id": "$q", "content": {} }));
        assert_eq!(plain, json!({ "m.in_reply_to": { "event_id": "$q" } }));
    }

    #[test]
    fn context_is_bounded_and_keeps_the_question() {
        let history: Vec<Said> = (0..50)
            .map(|i| Said {
                sender: if i % 5 == 0 {
                    BOT.into()
                } else {
                    "@a:hs".into()
                },
                name: "Ana".into(),
                body: format!("message number {i}"),
            })
            .collect();
        let members = vec![("@a:hs".to_owned(), "Ana".to_owned())];
        let (system, turns) = context(
            &RoomSettings::default(),
            &members,
            &history,
            BOT,
            "what now?",
            "Ana",
            DEFAULT_GROUP_PROMPT.len() + 200,
        );
        assert!(system.ends_with("Room members: Ana (@a:hs)"));
        assert_eq!(turns.last().unwrap().content, "Ana: what now?");
        assert!(turns.len() > 2 && turns.len() < 12, "{}", turns.len());
        assert_eq!(turns[turns.len() - 2].content, "Ana: message number 49");
        assert!(turns.iter().any(|t| t.role == "assistant"));
    }

    #[test]
    fn offline_answers_search_profiles_only_when_allowed() {
        let mut ana = Profile {
            languages: vec!["es".into()],
            skills: vec!["driving".into()],
            ..Profile::default()
        };
        ana.availability.days = vec!["sat".into(), "sun".into()];
        ana.summarise();
        let people = vec![
            ("Ana".to_owned(), ana),
            ("Bo".to_owned(), Profile::default()),
        ];
        let open = RoomSettings {
            profile_search: true,
            ..RoomSettings::default()
        };
        let a = offline_answer(
            "who speaks Spanish and can drive on weekends?",
            &open,
            &people,
        );
        assert!(a.contains("Ana") && !a.contains("Bo"), "{a}");
        assert!(offline_answer("who speaks Korean?", &open, &people).starts_with("Nobody"));
        assert!(offline_answer("what's the address?", &open, &people).contains("language model"));
        let closed = offline_answer("who speaks Spanish?", &RoomSettings::default(), &people);
        assert!(!closed.contains("Ana"));
    }
}
