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

impl Profile {
    /// Rebuilds `searchable_text` from the fields.
    pub fn summarise(&mut self) {
        let mut parts = Vec::new();
        if !self.skills.is_empty() {
            parts.push(format!("Skills: {}.", self.skills.join(", ")));
        }
        if !self.languages.is_empty() {
            parts.push(format!("Speaks: {}.", self.languages.join(", ")));
        }
        if !self.availability.days.is_empty() || !self.availability.times.is_empty() {
            let days = if self.availability.days.is_empty() {
                "any day".to_owned()
            } else {
                self.availability.days.join(", ")
            };
            let times = if self.availability.times.is_empty() {
                "any time".to_owned()
            } else {
                self.availability.times.join(", ")
            };
            parts.push(format!("Available {days} ({times})."));
        }
        if let Some(l) = &self.location {
            parts.push(format!("Based in {l}."));
        }
        match self.willing_to_travel {
            Some(true) => parts.push("Willing to travel.".into()),
            Some(false) => parts.push("Prefers not to travel.".into()),
            None => {}
        }
        if !self.causes.is_empty() {
            parts.push(format!("Cares about: {}.", self.causes.join(", ")));
        }
        self.searchable_text = parts.join(" ");
    }
}
