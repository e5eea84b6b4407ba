//! Scores the offline interviewer on its evaluation set, `tests/eval/conversations.txt`
//! (the format is described at the top of that file): each conversation is played through the
//! interviewer as the person wrote it, and the profile it ends with is compared field by field
//! with the one a careful person would have written down.
//!
//! Per field: precision, recall and F1 over all conversations (a list field scores each
//! value; location and travel score one value each, location compared without regard to case).
//! Macro-F1 is the mean of the seven fields' F1. The test fails below 0.90 macro-F1, if any
//! profile ends incomplete, or if the bot asks any question twice in a conversation.
//! It also prints the time each turn took (p50, p99, max) — measured, not asserted.
//!
//! Run: `cargo test -p intake-bot --release --test eval -- --nocapture` (with
//! `EVAL_TRANSCRIPTS=1` it prints every conversation, not only those with a wrong field).

use std::time::{Duration, Instant};

use intake_bot::interview::Interview;

const FIELDS: [&str; 7] = [
    "skills",
    "languages",
    "days",
    "times",
    "location",
    "travel",
    "causes",
];

struct Conversation {
    id: String,
    messages: Vec<String>,
    gold: [Vec<String>; 7],
}

fn parse(text: &str) -> Vec<Conversation> {
    let mut out: Vec<Conversation> = Vec::new();
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("# ") {
            if head
                .split(' ')
                .next()
                .is_some_and(|id| id.contains(|c: char| c.is_ascii_digit()))
            {
                out.push(Conversation {
                    id: head.split(' ').next().unwrap_or_default().to_owned(),
                    messages: Vec::new(),
                    gold: Default::default(),
                });
            }
        } else if let Some(m) = line.strip_prefix("> ") {
            out.last_mut()
                .expect("a message before any conversation")
                .messages
                .push(m.to_owned());
        } else if let Some(g) = line.strip_prefix("= ") {
            let conv = out.last_mut().expect("a profile before any conversation");
            for part in g.split(" | ") {
                let (name, value) = part.split_once(':').expect("field: value");
                let k = FIELDS
                    .iter()
                    .position(|f| *f == name.trim())
                    .expect("a known field");
                let value = value.trim();
                conv.gold[k] = match name.trim() {
                    "skills" | "causes" => value
                        .split(';')
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .collect(),
                    "location" | "travel" if value == "-" || value.is_empty() => Vec::new(),
                    "location" | "travel" => vec![value.to_owned()],
                    _ => value.split_whitespace().map(str::to_owned).collect(),
                };
            }
        }
    }
    out
}

#[derive(Default, Clone, Copy)]
struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Score {
    fn add(&mut self, got: &[String], want: &[String]) {
        let norm = |v: &String| v.to_lowercase();
        let want: Vec<String> = want.iter().map(norm).collect();
        let got: Vec<String> = got.iter().map(norm).collect();
        self.tp += got.iter().filter(|g| want.contains(g)).count();
        self.fp += got.iter().filter(|g| !want.contains(g)).count();
        self.fn_ += want.iter().filter(|w| !got.contains(w)).count();
    }
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// The questions in a bot message ("...?" sentences).
fn questions(reply: &str) -> Vec<String> {
    reply
        .split_inclusive(['?', '.', '!'])
        .map(str::trim)
        .filter(|q| q.ends_with('?'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn offline_interviewer_scores() {
    let data = parse(include_str!("eval/conversations.txt"));
    assert!(data.len() >= 60, "{} conversations", data.len());
    let mut scores = [Score::default(); 7];
    let mut turns: Vec<Duration> = Vec::new();
    let mut failures = Vec::new();
    for conv in &data {
        let mut i = Interview::new(8);
        let mut asked: Vec<String> = questions(&i.greeting());
        let mut transcript = Vec::new();
        for m in &conv.messages {
            let started = Instant::now();
            let t = i.answer(m);
            turns.push(started.elapsed());
            transcript.push(format!("  > {m}\n  < {}", t.reply));
            for q in questions(&t.reply) {
                if asked.contains(&q) {
                    failures.push(format!("{}: asked again: {q}", conv.id));
                }
                asked.push(q);
            }
        }
        let p = &i.profile;
        let got: [Vec<String>; 7] = [
            p.skills.clone(),
            p.languages.clone(),
            p.availability.days.clone(),
            p.availability.times.clone(),
            p.location.iter().cloned().collect(),
            p.willing_to_travel
                .map(|t| if t { "yes" } else { "no" }.to_owned())
                .into_iter()
                .collect(),
            p.causes.clone(),
        ];
        let mut wrong = Vec::new();
        for k in 0..7 {
            scores[k].add(&got[k], &conv.gold[k]);
            let mut a: Vec<String> = got[k].iter().map(|v| v.to_lowercase()).collect();
            let mut b: Vec<String> = conv.gold[k].iter().map(|v| v.to_lowercase()).collect();
            a.sort();
            b.sort();
            if a != b {
                wrong.push(format!(
                    "{}: got {:?}, want {:?}",
                    FIELDS[k], got[k], conv.gold[k]
                ));
            }
        }
        if !p.complete {
            failures.push(format!("{}: profile not complete", conv.id));
        }
        if !wrong.is_empty() || std::env::var_os("EVAL_TRANSCRIPTS").is_some() {
            println!(
                "{} — {}\n{}",
                conv.id,
                wrong.join("; "),
                transcript.join("\n")
            );
        }
    }
    println!("\nfield | precision | recall | F1");
    println!("--- | --- | --- | ---");
    let mut macro_f1 = 0.0;
    for (f, s) in FIELDS.iter().zip(&scores) {
        println!(
            "{f} | {:.2} | {:.2} | {:.2}",
            s.precision(),
            s.recall(),
            s.f1()
        );
        macro_f1 += s.f1() / FIELDS.len() as f64;
    }
    turns.sort();
    let pct = |q: f64| {
        turns[((turns.len() as f64 * q).ceil() as usize)
            .saturating_sub(1)
            .min(turns.len() - 1)]
    };
    println!(
        "\nconversations: {}, turns: {}, macro-F1: {macro_f1:.3}\nturn time: p50 {:?}, p99 {:?}, max {:?}",
        data.len(),
        turns.len(),
        pct(0.5),
        pct(0.99),
        turns[turns.len() - 1]
    );
    // The longest message read (4,000 characters, the cap): everything said many times over.
    let dump = data
        .iter()
        .flat_map(|c| &c.messages)
        .max_by_key(|m| m.len())
        .cloned()
        .unwrap_or_default();
    let long: String = std::iter::repeat_n(dump.as_str(), 4000 / dump.len().max(1) + 1)
        .collect::<Vec<_>>()
        .join(" ");
    let mut i = Interview::new(8);
    i.greeting();
    let started = Instant::now();
    i.answer(&long);
    println!(
        "a {}-character message: {:?}",
        long.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(macro_f1 >= 0.90, "macro-F1 {macro_f1:.3}");
}
