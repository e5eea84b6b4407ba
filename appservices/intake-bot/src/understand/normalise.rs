//! A model's profile brought to the same contract as the offline interviewer's: language
//! names to ISO 639-1 codes, day and time words to `mon`..`sun` and the four parts of the
//! day, skills and causes lower-cased with known synonyms folded. Anything of the wrong type
//! is dropped rather than trusted.

use serde_json::Value;

use super::lexicon::{self, Lexicon};
use super::phrases::{self, Open};
use super::text::words;
use super::when;
use crate::profile::{order_days, order_times, Availability, Profile, DAYS, TIMES};

/// The strings of a JSON list (or of a comma-separated string, which models also send).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= 80)
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty() && x.len() <= 80)
            .collect(),
        _ => Vec::new(),
    }
}

fn open(values: Vec<String>, field: Open) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let mut terms = phrases::terms(&v, field);
        if terms.is_empty() && v.split_whitespace().count() <= 4 {
            terms.push(v.to_lowercase());
        }
        for t in terms {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out.sort();
    out
}

fn languages(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let code = v.to_lowercase();
        let codes = if code.len() == 2 && lexicon::language_name(&code).is_some() {
            vec![code]
        } else {
            lexicon::values(&words(&v), Lexicon::Languages)
        };
        out.extend(codes);
    }
    out.sort();
    out.dedup();
    out
}

fn availability(days: Vec<String>, times: Vec<String>) -> Availability {
    let mut d = Vec::new();
    let mut t = Vec::new();
    for v in days.iter().chain(&times) {
        let key = v.to_lowercase();
        if DAYS.contains(&key.as_str()) {
            d.push(key);
            continue;
        }
        if TIMES.contains(&key.as_str()) {
            t.push(key);
            continue;
        }
        for h in when::find(&words(v), true) {
            d.extend(h.days.iter().map(|x| x.to_string()));
            t.extend(h.times.iter().map(|x| x.to_string()));
        }
    }
    Availability {
        days: order_days(d),
        times: order_times(t),
    }
}

/// The profile in a model's JSON answer, if there is one (an object).
pub fn profile(v: &Value) -> Option<Profile> {
    let o = v.as_object()?;
    let get = |k: &str| o.get(k).cloned().unwrap_or(Value::Null);
    let avail = get("availability");
    let mut p = Profile {
        skills: open(strings(&get("skills")), Open::Skills),
        languages: languages(strings(&get("languages"))),
        availability: availability(strings(&avail["days"]), strings(&avail["times"])),
        location: get("location")
            .as_str()
            .map(str::trim)
            .filter(|l| !l.is_empty() && l.len() <= 80)
            .map(str::to_owned),
        willing_to_travel: match get("willing_to_travel") {
            Value::Bool(b) => Some(b),
            Value::String(s) => match s.to_lowercase().as_str() {
                "yes" | "true" => Some(true),
                "no" | "false" => Some(false),
                _ => None,
            },
            _ => None,
        },
        causes: open(strings(&get("causes")), Open::Causes),
        searchable_text: String::new(),
        complete: get("complete").as_bool().unwrap_or(false),
    };
    p.summarise();
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_models_words_become_the_contract() {
        let p = profile(&json!({
            "skills": ["Nurse", "dog walking"], "languages": ["Spanish", "en", "Deutsch"],
            "availability": {"days": ["Saturday", "weekdays"], "times": ["evenings", "9am"]},
            "location": " St. Cloud, MN ", "willing_to_travel": "yes",
            "causes": "homeless shelters, wildfire relief", "complete": true
        }))
        .unwrap();
        assert_eq!(p.skills, vec!["dog walking", "medical"]);
        assert_eq!(p.languages, vec!["de", "en", "es"]);
        assert_eq!(
            p.availability.days,
            vec!["mon", "tue", "wed", "thu", "fri", "sat"]
        );
        assert_eq!(p.availability.times, vec!["morning", "evening"]);
        assert_eq!(p.location.as_deref(), Some("St. Cloud, MN"));
        assert_eq!(p.willing_to_travel, Some(true));
        assert_eq!(p.causes, vec!["housing", "wildfire relief"]);
        assert!(p.complete);
        assert_eq!(profile(&json!("nothing")), None);
        let odd =
            profile(&json!({"skills": 5, "languages": [1, "klingon"], "location": 3})).unwrap();
        assert!(odd.skills.is_empty() && odd.languages.is_empty() && odd.location.is_none());
    }
}
