//! Risk levels and the lexicon every inbound texter message is scored against.

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    #[default]
    Low,
    Medium,
    High,
    Imminent,
}

impl Risk {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(Risk::Low),
            "medium" => Some(Risk::Medium),
            "high" => Some(Risk::High),
            "imminent" => Some(Risk::Imminent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Imminent => "imminent",
        }
    }

    /// High and imminent conversations alert supervisors.
    pub fn alarming(self) -> bool {
        self >= Risk::High
    }
}

/// Phrases per level, matched case-insensitively on word boundaries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicon {
    #[serde(default)]
    pub imminent: Vec<String>,
    #[serde(default)]
    pub high: Vec<String>,
    #[serde(default)]
    pub medium: Vec<String>,
}

impl Default for Lexicon {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Self {
            imminent: v(&[
                "kill myself tonight",
                "end it tonight",
                "taken pills",
                "took pills",
                "took an overdose",
                "have a gun",
                "going to jump",
                "goodbye forever",
                "this is my last message",
            ]),
            high: v(&[
                "kill myself",
                "suicide",
                "suicidal",
                "want to die",
                "end my life",
                "self harm",
                "self-harm",
                "hurt myself",
                "cutting myself",
                "overdose",
                "he will kill me",
                "going to hurt me",
            ]),
            medium: v(&[
                "hopeless",
                "can't go on",
                "cannot go on",
                "no way out",
                "unsafe",
                "scared for my life",
                "abuse",
                "hit me",
                "homeless tonight",
            ]),
        }
    }
}

impl Lexicon {
    /// The highest level whose phrase appears in `text`, with the phrase.
    pub fn score(&self, text: &str) -> (Risk, Option<String>) {
        let t = normalise(text);
        for (level, phrases) in [
            (Risk::Imminent, &self.imminent),
            (Risk::High, &self.high),
            (Risk::Medium, &self.medium),
        ] {
            for p in phrases {
                let p = normalise(p);
                if !p.is_empty() && format!(" {t} ").contains(&format!(" {p} ")) {
                    return (level, Some(p));
                }
            }
        }
        (Risk::Low, None)
    }
}

/// Lower case, apostrophes kept, other punctuation as spaces, single spaces.
fn normalise(s: &str) -> String {
    s.to_lowercase()
        .replace('’', "'")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '-' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_matching_level_wins_on_word_boundaries() {
        let l = Lexicon::default();
        assert_eq!(l.score("I took pills, I want to die").0, Risk::Imminent);
        assert_eq!(l.score("Sometimes I think about SUICIDE.").0, Risk::High);
        assert_eq!(l.score("I feel hopeless").0, Risk::Medium);
        assert_eq!(l.score("my exam went fine").0, Risk::Low);
        assert_eq!(l.score("the unsafety report").0, Risk::Low);
        assert_eq!(l.score("I can’t go on").0, Risk::Medium);
        assert!(Risk::Imminent.alarming() && !Risk::Medium.alarming());
        assert_eq!(Risk::parse("HIGH"), Some(Risk::High));
    }
}
