//! A program's queue: waiting conversations ordered by severity, then by how long they have
//! waited, and the board responders see in the queue room.

use crate::{conversation::Conversation, machine::State};

/// The waiting conversations of `program`, most urgent first.
pub fn waiting<'a>(
    all: impl IntoIterator<Item = &'a Conversation>,
    program: &str,
) -> Vec<&'a Conversation> {
    let mut q: Vec<&Conversation> = all
        .into_iter()
        .filter(|c| c.program == program && c.state == State::Queued)
        .collect();
    q.sort_by(|a, b| {
        b.risk
            .cmp(&a.risk)
            .then(a.queued_ms.cmp(&b.queued_ms))
            .then(a.id.cmp(&b.id))
    });
    q
}

/// "4 min", "1 h 05 min".
pub fn wait_text(s: u64) -> String {
    let m = s / 60;
    if m < 60 {
        format!("{m} min")
    } else {
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// The board: position, number, risk, wait, program.
pub fn board(program_name: &str, waiting: &[&Conversation], now_ms: u64) -> String {
    if waiting.is_empty() {
        return format!("{program_name} queue: nobody is waiting.");
    }
    let mut lines = vec![format!(
        "{program_name} queue: {} waiting (!next takes the first, !claim <number> a specific one)",
        waiting.len()
    )];
    for (i, c) in waiting.iter().enumerate() {
        let tags = if c.tags.is_empty() {
            String::new()
        } else {
            format!(
                " · {}",
                c.tags.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        lines.push(format!(
            "{}. #{} · risk {} · waiting {} · {program_name}{tags}",
            i + 1,
            c.id,
            c.risk.as_str(),
            wait_text(c.waited_s(now_ms)),
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{machine::Action, risk::Risk};
    use serde_json::json;

    fn queued(id: u64, at: u64, risk: Risk) -> Conversation {
        let mut c = Conversation::from_bridge(
            id,
            "!r:hs",
            &json!({"program": "crisis", "state": "new"}),
            at,
        )
        .unwrap();
        c.apply(Action::Route, "@esc:hs", at).unwrap();
        c.risk = risk;
        c
    }

    #[test]
    fn severity_first_then_wait() {
        let cs = [
            queued(1, 1_000, Risk::Low),
            queued(2, 2_000, Risk::High),
            queued(3, 500, Risk::Low),
            queued(4, 3_000, Risk::Imminent),
        ];
        let ids: Vec<u64> = waiting(&cs, "crisis").iter().map(|c| c.id).collect();
        assert_eq!(ids, [4, 2, 3, 1]);
        assert!(waiting(&cs, "other").is_empty());
        let b = board("Crisis line", &waiting(&cs, "crisis"), 241_000);
        assert!(b.contains("1. #4 · risk imminent · waiting 3 min"), "{b}");
        assert_eq!(wait_text(3_900), "1 h 05 min");
    }
}
