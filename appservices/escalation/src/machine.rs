//! The conversation state machine: its states, the actions between them, and nothing else.
//! Every change of a conversation's state goes through [`next`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    New,
    Queued,
    Assigned,
    Active,
    Transferred,
    EscalatedMedical,
    EscalatedPolice,
    WrapUp,
    FollowUpScheduled,
    FollowUpActive,
    Closed,
    Expired,
    /// Part of the vocabulary (the SMS bridge treats it as ended); no action leads here.
    Failed,
}

pub const STATES: [State; 13] = [
    State::New,
    State::Queued,
    State::Assigned,
    State::Active,
    State::Transferred,
    State::EscalatedMedical,
    State::EscalatedPolice,
    State::WrapUp,
    State::FollowUpScheduled,
    State::FollowUpActive,
    State::Closed,
    State::Expired,
    State::Failed,
];

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Queued => "queued",
            State::Assigned => "assigned",
            State::Active => "active",
            State::Transferred => "transferred",
            State::EscalatedMedical => "escalated_medical",
            State::EscalatedPolice => "escalated_police",
            State::WrapUp => "wrap_up",
            State::FollowUpScheduled => "follow_up_scheduled",
            State::FollowUpActive => "follow_up_active",
            State::Closed => "closed",
            State::Expired => "expired",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        STATES.into_iter().find(|st| st.as_str() == s)
    }

    /// No action leaves these.
    pub fn is_final(self) -> bool {
        matches!(self, State::Closed | State::Expired | State::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Route,
    Assign,
    Start,
    Transfer,
    AcceptTransfer,
    EscalateMedical,
    EscalatePolice,
    Resolve,
    BeginWrapUp,
    ScheduleFollowUp,
    TriggerFollowUp,
    Close,
    Expire,
}

pub const ACTIONS: [Action; 13] = [
    Action::Route,
    Action::Assign,
    Action::Start,
    Action::Transfer,
    Action::AcceptTransfer,
    Action::EscalateMedical,
    Action::EscalatePolice,
    Action::Resolve,
    Action::BeginWrapUp,
    Action::ScheduleFollowUp,
    Action::TriggerFollowUp,
    Action::Close,
    Action::Expire,
];

impl Action {
    /// How a person asks for it (for "allowed from here" notices); automatic ones in words.
    pub fn how(self) -> &'static str {
        match self {
            Action::Route => "routing to the queue (automatic)",
            Action::Assign => "!next or !claim (in the queue room)",
            Action::Start => "the responder's first message",
            Action::Transfer => "!transfer @user [note]",
            Action::AcceptTransfer => "!accept (by the new responder)",
            Action::EscalateMedical => "!escalate medical [urgency] [location]",
            Action::EscalatePolice => "!escalate police [urgency] [location]",
            Action::Resolve => "!resolve",
            Action::BeginWrapUp => "!wrapup",
            Action::ScheduleFollowUp => "!followup <when>",
            Action::TriggerFollowUp => "the follow-up time (automatic)",
            Action::Close => "!close",
            Action::Expire => "expiry after waiting too long (automatic)",
        }
    }
}

/// The state `action` leads to from `from`, if the machine allows it.
pub fn next(from: State, action: Action) -> Option<State> {
    use Action as A;
    use State as S;
    Some(match (from, action) {
        (S::New, A::Route) => S::Queued,
        (S::Queued, A::Assign) => S::Assigned,
        (S::Assigned, A::Start) => S::Active,
        (S::Active, A::Transfer) => S::Transferred,
        (S::Transferred, A::AcceptTransfer) => S::Active,
        (S::Active, A::EscalateMedical) => S::EscalatedMedical,
        (S::Active, A::EscalatePolice) => S::EscalatedPolice,
        (S::EscalatedMedical | S::EscalatedPolice, A::Resolve) => S::Active,
        (S::Active, A::BeginWrapUp) => S::WrapUp,
        (S::WrapUp, A::ScheduleFollowUp) => S::FollowUpScheduled,
        (S::FollowUpScheduled, A::TriggerFollowUp) => S::FollowUpActive,
        (S::Active | S::WrapUp | S::FollowUpActive, A::Close) => S::Closed,
        (S::Queued, A::Expire) => S::Expired,
        _ => return None,
    })
}

/// The actions allowed from `from`.
pub fn allowed(from: State) -> Vec<Action> {
    ACTIONS
        .into_iter()
        .filter(|a| next(from, *a).is_some())
        .collect()
}

/// "what is allowed from here" for a refusal notice.
pub fn refusal(from: State, action: Action) -> String {
    let options = allowed(from);
    let list = if options.is_empty() {
        "nothing: the conversation has ended".to_owned()
    } else {
        options
            .iter()
            .map(|a| a.how())
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "Not possible: the conversation is {} and cannot {}. Allowed from here: {list}.",
        from.as_str(),
        describe(action)
    )
}

fn describe(a: Action) -> &'static str {
    match a {
        Action::Route => "be routed",
        Action::Assign => "be assigned",
        Action::Start => "start",
        Action::Transfer => "be transferred",
        Action::AcceptTransfer => "accept a transfer",
        Action::EscalateMedical => "be escalated (medical)",
        Action::EscalatePolice => "be escalated (police)",
        Action::Resolve => "be resolved",
        Action::BeginWrapUp => "begin wrap-up",
        Action::ScheduleFollowUp => "schedule a follow-up",
        Action::TriggerFollowUp => "trigger a follow-up",
        Action::Close => "be closed",
        Action::Expire => "expire",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_listed_transitions_exist() {
        let mut n = 0;
        for s in STATES {
            for a in ACTIONS {
                if next(s, a).is_some() {
                    n += 1;
                }
            }
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        // route, assign, start, transfer, accept, 2 escalations, 2 resolves, wrap-up,
        // schedule, trigger, 3 closes, expire.
        assert_eq!(n, 16);
        for s in [State::Closed, State::Expired, State::Failed] {
            assert!(allowed(s).is_empty() && s.is_final());
        }
        assert!(refusal(State::Queued, Action::Close).contains("!next or !claim"));
        assert!(refusal(State::Closed, Action::Close).contains("has ended"));
    }
}
