//! One support conversation as the handler keeps it, and its `org.haven.conversation` state
//! event (which keeps the SMS bridge's own fields: affiliate, program, provider, puppet,
//! deletion_requested).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{
    machine::{self, Action, State},
    risk::Risk,
};

pub const CONVERSATION_EVENT: &str = "org.haven.conversation";

/// One step of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub from: State,
    pub to: State,
    pub by: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub reference: String,
    pub police: bool,
    pub urgency: String,
    pub location: String,
    pub by: String,
    pub at_ms: u64,
    pub resolved_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    Entry,
    Exit,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surveys {
    pub entry: Vec<(String, String)>,
    pub exit: Vec<(String, String)>,
    /// The survey being asked and the index of the question awaiting an answer.
    pub asking: Option<(SurveyKind, usize)>,
    /// When that question was sent: the texter's messages from before it are not answers.
    pub asked_ms: u64,
    /// The entry survey waits for the intake bot to finish (its summary), so the texter is
    /// never asked two things at once.
    #[serde(default)]
    pub after_intake: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The short number staff use (`!claim 42`).
    pub id: u64,
    pub room: String,
    pub program: String,
    pub affiliate: String,
    /// The texter's puppet (SMS bridge).
    pub texter: Option<String>,
    pub state: State,
    pub history: Vec<Step>,
    pub risk: Risk,
    pub tags: BTreeSet<String>,
    /// The assigned responder.
    pub responder: Option<String>,
    /// Who a transfer is waiting for.
    pub transfer_to: Option<String>,
    pub created_ms: u64,
    pub queued_ms: Option<u64>,
    pub assigned_ms: Option<u64>,
    pub first_response_ms: Option<u64>,
    /// Since when a texter's message has been waiting for a responder's answer.
    pub awaiting_since_ms: Option<u64>,
    pub escalations: Vec<Escalation>,
    pub followup_at_ms: Option<u64>,
    pub surveys: Surveys,
    pub deletion_requested: bool,
    pub closed_ms: Option<u64>,
    /// The bridge's fields of the state event, kept as they were.
    pub bridge_fields: Map<String, Value>,
}

impl Conversation {
    /// The intake bot asking this conversation's first questions, as the bridge declared it.
    pub fn intake_bot(&self) -> Option<&str> {
        self.bridge_fields.get("intake").and_then(Value::as_str)
    }

    /// Whether `user` is one of the conversation's bots (the bridge declares them): their
    /// messages are never a responder's.
    pub fn is_bot(&self, user: &str) -> bool {
        self.bridge_fields
            .get("bots")
            .and_then(Value::as_array)
            .is_some_and(|bots| bots.iter().any(|b| b.as_str() == Some(user)))
    }

    /// A conversation from the bridge's first state event (state `new`).
    pub fn from_bridge(id: u64, room: &str, content: &Value, now_ms: u64) -> Option<Self> {
        let program = content["program"].as_str()?.to_owned();
        let mut bridge_fields = Map::new();
        for k in [
            "affiliate",
            "program",
            "provider",
            "puppet",
            "intake",
            "bots",
        ] {
            if let Some(v) = content.get(k) {
                bridge_fields.insert(k.to_owned(), v.clone());
            }
        }
        Some(Self {
            id,
            room: room.to_owned(),
            program,
            affiliate: content["affiliate"].as_str().unwrap_or_default().to_owned(),
            texter: content["puppet"].as_str().map(str::to_owned),
            state: content["state"]
                .as_str()
                .and_then(State::parse)
                .unwrap_or(State::New),
            history: Vec::new(),
            risk: Risk::Low,
            tags: BTreeSet::new(),
            responder: None,
            transfer_to: None,
            created_ms: now_ms,
            queued_ms: None,
            assigned_ms: None,
            first_response_ms: None,
            awaiting_since_ms: None,
            escalations: Vec::new(),
            followup_at_ms: None,
            surveys: Surveys::default(),
            deletion_requested: content["deletion_requested"] == true,
            closed_ms: None,
            bridge_fields,
        })
    }

    /// Moves the conversation by `action`, or explains what is allowed and changes nothing.
    pub fn apply(&mut self, action: Action, by: &str, now_ms: u64) -> Result<State, String> {
        let to = machine::next(self.state, action)
            .ok_or_else(|| machine::refusal(self.state, action))?;
        self.history.push(Step {
            action,
            from: self.state,
            to,
            by: by.to_owned(),
            at_ms: now_ms,
        });
        self.state = to;
        match to {
            State::Queued => self.queued_ms = Some(now_ms),
            State::Closed | State::Expired => self.closed_ms = Some(now_ms),
            _ => {}
        }
        Ok(to)
    }

    /// Minutes waited in the queue at `now_ms`.
    pub fn waited_s(&self, now_ms: u64) -> u64 {
        self.queued_ms
            .map_or(0, |q| now_ms.saturating_sub(q) / 1000)
    }

    /// The state event's content.
    pub fn content(&self) -> Value {
        let mut c = self.bridge_fields.clone();
        let extra = json!({
            "state": self.state.as_str(),
            "number": self.id,
            "history": self.history.iter().map(|s| json!({
                "action": s.action, "from": s.from.as_str(), "to": s.to.as_str(),
                "by": s.by, "at": s.at_ms,
            })).collect::<Vec<_>>(),
            "risk": self.risk.as_str(),
            "tags": self.tags,
            "responder": self.responder,
            "escalations": self.escalations.iter().map(|e| json!({
                "reference": e.reference, "kind": if e.police { "police" } else { "medical" },
                "urgency": e.urgency, "resolved": e.resolved_ms.is_some(),
            })).collect::<Vec<_>>(),
            "surveys": { "entry": pairs(&self.surveys.entry), "exit": pairs(&self.surveys.exit) },
            "followup_at": self.followup_at_ms,
            "deletion_requested": self.deletion_requested,
        });
        if let Value::Object(m) = extra {
            c.extend(m);
        }
        Value::Object(c)
    }
}

fn pairs(p: &[(String, String)]) -> Vec<Value> {
    p.iter()
        .map(|(q, a)| json!({ "question": q, "answer": a }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conv() -> Conversation {
        Conversation::from_bridge(
            1,
            "!r:hs",
            &json!({"program": "crisis", "affiliate": "riverside", "puppet": "@sms_1:hs", "provider": "twilio", "state": "new"}),
            0,
        )
        .unwrap()
    }

    #[test]
    fn a_refused_action_changes_nothing_and_the_content_keeps_the_bridges_fields() {
        let mut c = conv();
        let before = c.clone();
        let err = c.apply(Action::Close, "@a:hs", 5).unwrap_err();
        assert!(err.contains("routing"), "{err}");
        assert_eq!(c, before);
        assert_eq!(c.apply(Action::Route, "@esc:hs", 10), Ok(State::Queued));
        assert_eq!(c.waited_s(70_010), 70);
        let content = c.content();
        assert_eq!(content["state"], "queued");
        assert_eq!(content["provider"], "twilio");
        assert_eq!(content["puppet"], "@sms_1:hs");
        assert_eq!(content["history"][0]["from"], "new");
    }

    fn action() -> impl Strategy<Value = Action> {
        proptest::sample::select(machine::ACTIONS.to_vec())
    }

    proptest! {
        /// Any sequence of commands leaves the conversation in a state the machine reaches,
        /// with a history of allowed steps ending where it is.
        #[test]
        fn random_sequences_stay_inside_the_machine(actions in proptest::collection::vec(action(), 0..60)) {
            let mut c = conv();
            for (i, a) in actions.iter().enumerate() {
                let before = c.clone();
                match c.apply(*a, "@x:hs", i as u64) {
                    Ok(to) => prop_assert_eq!(Some(to), machine::next(before.state, *a)),
                    Err(_) => prop_assert_eq!(&c, &before),
                }
            }
            let mut state = State::New;
            for s in &c.history {
                prop_assert_eq!(s.from, state);
                prop_assert_eq!(machine::next(s.from, s.action), Some(s.to));
                state = s.to;
            }
            prop_assert_eq!(state, c.state);
            prop_assert!(c.state != State::Failed);
        }
    }
}
