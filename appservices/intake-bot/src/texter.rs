//! Texter intake: in a conversation room the SMS bridge opened, the program's own questions are
//! asked one at a time, and the answers are summarised for the responder who picks the
//! conversation up (a `org.haven.intake.summary` state event and a notice, which the bridge
//! does not text out).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::ProgramIntake;

/// The summary state event (empty state key).
pub const SUMMARY_EVENT: &str = "org.haven.intake.summary";
/// The bridge's conversation state event, naming the program and the texter's puppet.
pub const CONVERSATION_EVENT: &str = "org.haven.conversation";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TexterIntake {
    pub program: String,
    /// The texter's puppet user.
    pub texter: String,
    /// (question, answer) so far.
    pub answers: Vec<(String, String)>,
    /// Index of the question awaiting an answer.
    pub asking: usize,
    /// Finished or handed over: the bot says nothing more here.
    pub done: bool,
    /// Every question was answered.
    #[serde(default)]
    pub complete: bool,
    /// The homeserver's timestamp of the opening question: the texter's messages from before
    /// it (typically their first text) are not answers to it.
    #[serde(default)]
    pub opened_ts: u64,
    /// What the texter said before the first question.
    #[serde(default)]
    pub before: Vec<String>,
    /// The opening has been sent (after the texter's first message, which opens every SMS
    /// conversation: asking earlier could cross it).
    #[serde(default)]
    pub opened: bool,
    /// The conversation's bots, as the bridge declared them: their messages (the escalation
    /// handler's survey, say) are never a responder taking over.
    #[serde(default)]
    pub bots: Vec<String>,
}

/// What to do after a texter's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Their first message: send the opening (intro and first question) now, then record its
    /// time in `opened_ts`.
    Open(String),
    Ask(String),
    /// All answered: say the closing words and write the summary.
    Finish(String),
    /// Nothing (already done).
    Quiet,
}

impl TexterIntake {
    pub fn new(program: &str, texter: &str) -> Self {
        Self {
            program: program.to_owned(),
            texter: texter.to_owned(),
            answers: Vec::new(),
            asking: 0,
            done: false,
            complete: false,
            opened_ts: 0,
            before: Vec::new(),
            opened: false,
            bots: Vec::new(),
        }
    }

    /// The first message: the intro (if any) and the first question.
    pub fn opening(&self, p: &ProgramIntake) -> String {
        match &p.intro {
            Some(intro) => format!("{} {}", intro.trim_end(), p.questions[0]),
            None => p.questions[0].clone(),
        }
    }

    /// Records a texter's message sent at `ts`: the answer to the question being asked, or
    /// (sent before the first question) what they opened with.
    pub fn answer(&mut self, p: &ProgramIntake, text: &str, ts: u64) -> Next {
        if self.done {
            return Next::Quiet;
        }
        if !self.opened {
            self.opened = true;
            self.before.push(text.trim().to_owned());
            return Next::Open(self.opening(p));
        }
        if ts <= self.opened_ts {
            self.before.push(text.trim().to_owned());
            return Next::Quiet;
        }
        let q = p.questions.get(self.asking).cloned().unwrap_or_default();
        self.answers.push((q, text.trim().to_owned()));
        self.asking += 1;
        match p.questions.get(self.asking) {
            Some(next) => Next::Ask(next.clone()),
            None => {
                self.done = true;
                self.complete = true;
                Next::Finish(p.closing.clone())
            }
        }
    }

    /// The offline summary: the answers, question by question.
    pub fn summary_text(&self) -> String {
        let mut lines: Vec<String> = self
            .before
            .iter()
            .map(|m| format!("First message — {m}"))
            .collect();
        if self.answers.is_empty() {
            lines.push("The texter has not answered any intake questions.".into());
        }
        lines.extend(self.answers.iter().map(|(q, a)| format!("{q} — {a}")));
        lines.join("\n")
    }

    /// The summary state event's content.
    pub fn summary_content(&self, summary: &str) -> Value {
        json!({
            "program": self.program,
            "first_messages": self.before,
            "answers": self.answers.iter().map(|(q, a)| json!({ "question": q, "answer": a })).collect::<Vec<_>>(),
            "summary": summary,
            "complete": self.complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> ProgramIntake {
        ProgramIntake {
            intro: Some("Before a counsellor joins:".into()),
            questions: vec!["How old are you?".into(), "Where are you?".into()],
            closing: "Thanks, someone is coming.".into(),
        }
    }

    #[test]
    fn questions_are_asked_in_order_then_summarised() {
        let p = program();
        let mut t = TexterIntake::new("crisis", "@sms_1:hs");
        assert_eq!(
            t.answer(&p, "hi, I need help", 990),
            Next::Open("Before a counsellor joins: How old are you?".into())
        );
        t.opened_ts = 1000;
        assert_eq!(t.answer(&p, "hello??", 999), Next::Quiet);
        assert_eq!(
            t.answer(&p, " 16 ", 1001),
            Next::Ask("Where are you?".into())
        );
        assert_eq!(
            t.answer(&p, "Leeds", 1002),
            Next::Finish("Thanks, someone is coming.".into())
        );
        assert_eq!(t.answer(&p, "hello?", 1003), Next::Quiet);
        assert_eq!(
            t.summary_text(),
            "First message — hi, I need help\nFirst message — hello??\nHow old are you? — 16\nWhere are you? — Leeds"
        );
        let c = t.summary_content("s");
        assert_eq!(
            c["answers"][1],
            json!({"question": "Where are you?", "answer": "Leeds"})
        );
        assert_eq!(c["complete"], true);
    }
}
