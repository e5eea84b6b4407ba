//! The offline interviewer: asks one or two questions at a time about what is still unknown,
//! fills the profile from every answer, accepts corrections, and finishes after enough is known
//! (or after a configurable number of exchanges).

use crate::{
    extract,
    profile::{merge, Profile},
};

/// What the interview still wants to know, in the order it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Skills,
    Languages,
    Availability,
    Location,
    Causes,
}

impl Slot {
    fn question(self) -> &'static str {
        match self {
            Slot::Skills => "What skills or experience would you bring (for example legal, medical, driving, languages, listening)?",
            Slot::Languages => "Which languages do you speak?",
            Slot::Availability => "When are you usually free — which days, and mornings, afternoons, evenings or nights?",
            Slot::Location => "Where are you based, and would you be willing to travel?",
            Slot::Causes => "Which causes matter most to you (housing, immigration, mental health, youth...)?",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Interview {
    pub profile: Profile,
    pub exchanges: u32,
    /// Exchanges after which the interview ends even with gaps.
    pub max_exchanges: u32,
}

/// The bot's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub reply: String,
    /// The profile changed and should be written again.
    pub changed: bool,
}

impl Interview {
    pub fn new(max_exchanges: u32) -> Self {
        Self {
            profile: Profile::default(),
            exchanges: 0,
            max_exchanges,
        }
    }

    pub fn greeting(&self) -> String {
        format!(
            "Hi, and welcome! I'm the intake assistant. A few quick questions help us match you with the right people and shifts. {} {}",
            Slot::Skills.question(),
            Slot::Languages.question()
        )
    }

    fn missing(&self) -> Vec<Slot> {
        let p = &self.profile;
        let mut m = Vec::new();
        if p.skills.is_empty() {
            m.push(Slot::Skills);
        }
        if p.languages.is_empty() {
            m.push(Slot::Languages);
        }
        if p.availability.days.is_empty() && p.availability.times.is_empty() {
            m.push(Slot::Availability);
        }
        if p.location.is_none() && p.willing_to_travel.is_none() {
            m.push(Slot::Location);
        }
        if p.causes.is_empty() {
            m.push(Slot::Causes);
        }
        m
    }

    /// Reads everything the message says into the profile. Returns whether anything changed.
    fn absorb(&mut self, text: &str) -> bool {
        let before = self.profile.clone();
        let correcting = extract::is_correction(text);
        let p = &mut self.profile;
        let (skills, languages, causes) = (
            extract::skills(text),
            extract::languages(text),
            extract::causes(text),
        );
        for (field, found) in [
            (&mut p.skills, skills),
            (&mut p.languages, languages),
            (&mut p.causes, causes),
        ] {
            if !found.is_empty() {
                if correcting {
                    field.clear();
                }
                merge(field, found);
            }
        }
        let (days, times) = extract::availability(text);
        if let Some(d) = days {
            p.availability.days = if correcting {
                d
            } else {
                crate::profile::order_days(p.availability.days.drain(..).chain(d))
            };
        }
        if let Some(t) = times {
            p.availability.times = if correcting {
                t
            } else {
                crate::profile::order_times(p.availability.times.drain(..).chain(t))
            };
        }
        if let Some(l) = extract::location(text) {
            p.location = Some(l);
        }
        if let Some(t) = extract::willing_to_travel(text) {
            p.willing_to_travel = Some(t);
        }
        p.summarise();
        self.profile != before
    }

    /// Takes the person's message and says what to answer.
    pub fn answer(&mut self, text: &str) -> Turn {
        let was_complete = self.profile.complete;
        let changed = self.absorb(text);
        if was_complete {
            let reply = if changed {
                format!(
                    "Thanks, I've updated your profile: {}",
                    self.profile.searchable_text
                )
            } else {
                "Thanks! Your profile is complete; tell me if anything changes.".to_owned()
            };
            return Turn { reply, changed };
        }
        self.exchanges += 1;
        let missing = self.missing();
        if missing.is_empty() || self.exchanges >= self.max_exchanges {
            self.profile.complete = true;
            let reply = format!(
                "Thank you — that's everything I need. Here's what I noted: {} If anything changes, just tell me here.",
                self.profile.searchable_text
            );
            return Turn {
                reply,
                changed: true,
            };
        }
        let questions: Vec<&str> = missing.iter().take(2).map(|s| s.question()).collect();
        let ack = if changed { "Thanks, noted. " } else { "" };
        Turn {
            reply: format!("{ack}{}", questions.join(" ")),
            changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_interview_fills_the_profile_and_takes_corrections() {
        let mut i = Interview::new(5);
        assert!(i.greeting().contains("skills"));
        let t = i.answer("I'm a nurse and I speak English and Spanish");
        assert!(t.changed && t.reply.contains("free"));
        let t = i.answer("Weekday evenings mostly. I live in Oakland and I can travel.");
        assert!(t.changed && t.reply.contains("causes"), "{}", t.reply);
        let t = i.answer("Mental health and housing");
        assert!(i.profile.complete && t.reply.starts_with("Thank you"));
        let p = &i.profile;
        assert_eq!(p.skills, vec!["medical"]);
        assert_eq!(p.languages, vec!["en", "es"]);
        assert_eq!(p.availability.days, vec!["mon", "tue", "wed", "thu", "fri"]);
        assert_eq!(p.availability.times, vec!["evening"]);
        assert_eq!(p.location.as_deref(), Some("Oakland"));
        assert_eq!(p.willing_to_travel, Some(true));
        assert_eq!(p.causes, vec!["housing", "mental health"]);
        assert!(p.searchable_text.contains("Oakland"));

        // "actually I'm only free weekends" replaces the days.
        let t = i.answer("Actually I'm only free weekends");
        assert!(t.changed && t.reply.contains("updated"));
        assert_eq!(i.profile.availability.days, vec!["sat", "sun"]);
        assert_eq!(i.profile.availability.times, vec!["evening"]);
    }

    #[test]
    fn it_stops_asking_after_the_configured_exchanges() {
        let mut i = Interview::new(2);
        i.answer("hello");
        let t = i.answer("not sure");
        assert!(i.profile.complete && t.reply.starts_with("Thank you"));
    }
}
