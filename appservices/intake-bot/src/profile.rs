//! The structured profile written as the `org.haven.intake.profile` state event.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub const PROFILE_EVENT: &str = "org.haven.intake.profile";

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
pub const TIMES: [&str; 4] = ["morning", "afternoon", "evening", "night"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Subset of `mon`..`sun`, in week order.
    pub days: Vec<String>,
    /// Subset of `morning`, `afternoon`, `evening`, `night`.
    pub times: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Lower-case skills ("legal", "medical", "driving", ...).
    pub skills: Vec<String>,
    /// ISO 639-1 codes.
    pub languages: Vec<String>,
    pub availability: Availability,
    /// As the person said it.
    pub location: Option<String>,
    pub willing_to_travel: Option<bool>,
    /// Lower-case causes.
    pub causes: Vec<String>,
    /// A readable one-paragraph summary.
    pub searchable_text: String,
    pub complete: bool,
}

/// Sorted, de-duplicated.
pub fn merge(into: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    let set: BTreeSet<String> = into.drain(..).chain(more).collect();
    into.extend(set);
}

/// Days in week order.
pub fn order_days(days: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = days.into_iter().collect();
    DAYS.iter()
        .filter(|d| set.contains(**d))
        .map(|d| d.to_string())
        .collect()
}

pub fn order_times(times: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = times.into_iter().collect();
    TIMES
        .iter()
        .filter(|t| set.contains(**t))
        .map(|t| t.to_string())
        .collect()
}

/// "a", "a and b", "a, b and c".
pub fn and_list(items: &[String], and: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} {and} {last}", rest.join(", ")),
    }
}

/// A language code's English name ("vi" → "Vietnamese"); the code itself if unknown.
pub fn language_name(code: &str) -> String {
    match crate::understand::lexicon::language_name(code) {
        Some(name) => {
            let mut c = name.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        None => code.to_owned(),
    }
}

/// A day code's English name ("sat" → "Saturday").
pub fn day_name(day: &str) -> &'static str {
    const NAMES: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    DAYS.iter()
        .position(|d| *d == day)
        .map(|i| NAMES[i])
        .unwrap_or("")
}

impl Profile {
    /// Rebuilds `searchable_text` from the fields: a readable paragraph, with languages and
    /// days by name so that a search for "Vietnamese" or "Saturday" finds it.
    pub fn summarise(&mut self) {
        let mut parts = Vec::new();
        if !self.skills.is_empty() {
            parts.push(format!("Skills: {}.", self.skills.join(", ")));
        }
        if !self.languages.is_empty() {
            let names: Vec<String> = self.languages.iter().map(|l| language_name(l)).collect();
            parts.push(format!("Speaks {}.", and_list(&names, "and")));
        }
        let days: Vec<String> = self
            .availability
            .days
            .iter()
            .map(|d| day_name(d).to_owned())
            .collect();
        let times = and_list(&self.availability.times, "or");
        match (days.is_empty(), times.is_empty()) {
            (false, false) => {
                parts.push(format!("Available {} ({times}).", and_list(&days, "and")))
            }
            (false, true) => parts.push(format!("Available {}.", and_list(&days, "and"))),
            (true, false) => parts.push(format!("Available: {times}.")),
            (true, true) => {}
        }
        match (&self.location, self.willing_to_travel) {
            (Some(l), Some(true)) => parts.push(format!("Based in {l}; willing to travel.")),
            (Some(l), Some(false)) => parts.push(format!("Based in {l}; prefers not to travel.")),
            (Some(l), None) => parts.push(format!("Based in {l}.")),
            (None, Some(true)) => parts.push("Willing to travel.".into()),
            (None, Some(false)) => parts.push("Prefers not to travel.".into()),
            (None, None) => {}
        }
        if !self.causes.is_empty() {
            parts.push(format!("Cares about {}.", and_list(&self.causes, "and")));
        }
        self.searchable_text = parts.join(" ");
    }
}
