//! Keyword and pattern extraction for the offline interviewer. Deterministic: the same words
//! always give the same fields.

/// `(pattern, value)`: a lower-case substring and what it means.
type Table = &'static [(&'static str, &'static str)];

const SKILLS: Table = &[
    ("lawyer", "legal"),
    ("legal", "legal"),
    ("paralegal", "legal"),
    ("attorney", "legal"),
    ("nurse", "medical"),
    ("doctor", "medical"),
    ("medical", "medical"),
    ("emt", "medical"),
    ("paramedic", "medical"),
    ("first aid", "medical"),
    ("drive", "driving"),
    ("driving", "driving"),
    ("driver", "driving"),
    ("have a car", "driving"),
    ("translat", "translation"),
    ("interpret", "translation"),
    ("counsel", "counseling"),
    ("therapist", "counseling"),
    ("social work", "counseling"),
    ("listening", "counseling"),
    ("cook", "cooking"),
    ("chef", "cooking"),
    ("kitchen", "cooking"),
    ("teach", "teaching"),
    ("tutor", "teaching"),
    ("computer", "tech"),
    ("software", "tech"),
    ("coding", "tech"),
    ("programm", "tech"),
    ("it support", "tech"),
    ("accounting", "accounting"),
    ("bookkeep", "accounting"),
    ("accountant", "accounting"),
    ("childcare", "childcare"),
    ("babysit", "childcare"),
    ("construction", "construction"),
    ("carpent", "construction"),
    ("plumb", "construction"),
    ("electrician", "construction"),
    ("admin", "admin"),
    ("office work", "admin"),
    ("data entry", "admin"),
];

const LANGUAGES: Table = &[
    ("english", "en"),
    ("spanish", "es"),
    ("español", "es"),
    ("espanol", "es"),
    ("french", "fr"),
    ("german", "de"),
    ("portuguese", "pt"),
    ("arabic", "ar"),
    ("mandarin", "zh"),
    ("chinese", "zh"),
    ("cantonese", "zh"),
    ("russian", "ru"),
    ("hindi", "hi"),
    ("vietnamese", "vi"),
    ("tagalog", "tl"),
    ("korean", "ko"),
    ("japanese", "ja"),
    ("italian", "it"),
    ("polish", "pl"),
    ("ukrainian", "uk"),
    ("somali", "so"),
    ("swahili", "sw"),
    ("farsi", "fa"),
    ("persian", "fa"),
    ("urdu", "ur"),
    ("bengali", "bn"),
    ("turkish", "tr"),
    ("haitian creole", "ht"),
    ("creole", "ht"),
    ("greek", "el"),
    ("hebrew", "he"),
    ("dutch", "nl"),
    ("amharic", "am"),
];

const CAUSES: Table = &[
    ("homeless", "housing"),
    ("housing", "housing"),
    ("shelter", "housing"),
    ("immigra", "immigration"),
    ("refugee", "immigration"),
    ("asylum", "immigration"),
    ("mental health", "mental health"),
    ("suicide", "mental health"),
    ("crisis", "mental health"),
    ("domestic violence", "domestic violence"),
    ("abuse", "domestic violence"),
    ("food", "food security"),
    ("hunger", "food security"),
    ("youth", "youth"),
    ("kids", "youth"),
    ("children", "youth"),
    ("teen", "youth"),
    ("elder", "elders"),
    ("senior", "elders"),
    ("lgbt", "lgbtq+"),
    ("queer", "lgbtq+"),
    ("trans ", "lgbtq+"),
    ("addiction", "addiction recovery"),
    ("substance", "addiction recovery"),
    ("recovery", "addiction recovery"),
    ("environment", "environment"),
    ("climate", "environment"),
    ("education", "education"),
    ("literacy", "education"),
    ("veteran", "veterans"),
];

const DAY_NAMES: &[(&str, &str)] = &[
    ("monday", "mon"),
    ("tuesday", "tue"),
    ("wednesday", "wed"),
    ("thursday", "thu"),
    ("friday", "fri"),
    ("saturday", "sat"),
    ("sunday", "sun"),
    ("mon", "mon"),
    ("tue", "tue"),
    ("wed", "wed"),
    ("thu", "thu"),
    ("fri", "fri"),
    ("sat", "sat"),
    ("sun", "sun"),
];

fn lookup(text: &str, table: Table) -> Vec<String> {
    let t = format!(" {} ", text.to_lowercase());
    let mut out: Vec<String> = table
        .iter()
        .filter(|(p, _)| t.contains(p))
        .map(|(_, v)| v.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn skills(text: &str) -> Vec<String> {
    // "I can't drive" is not a driving skill.
    let t = text.to_lowercase();
    lookup(text, SKILLS)
        .into_iter()
        .filter(|s| {
            !(s == "driving"
                && (t.contains("can't drive")
                    || t.contains("cannot drive")
                    || t.contains("don't drive")
                    || t.contains("no car")))
        })
        .collect()
}

pub fn languages(text: &str) -> Vec<String> {
    lookup(text, LANGUAGES)
}

pub fn causes(text: &str) -> Vec<String> {
    lookup(text, CAUSES)
}

/// Days and times mentioned (`None` for a slot not mentioned at all).
pub fn availability(text: &str) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let t = text.to_lowercase();
    let w = words(text);
    let mut days = Vec::new();
    if t.contains("weekend") {
        days.extend(["sat", "sun"]);
    }
    if t.contains("weekday") || t.contains("during the week") {
        days.extend(["mon", "tue", "wed", "thu", "fri"]);
    }
    if t.contains("every day")
        || t.contains("any day")
        || t.contains("daily")
        || t.contains("all week")
    {
        days.extend(crate::profile::DAYS);
    }
    // Ranges like "monday to friday", "mon-fri", "tuesday through thursday".
    let day_of = |word: &str| {
        DAY_NAMES
            .iter()
            .find(|(n, _)| word == *n || word.trim_end_matches('s') == *n)
            .map(|(_, d)| *d)
    };
    let idx = |d: &str| crate::profile::DAYS.iter().position(|x| *x == d);
    for (i, word) in w.iter().enumerate() {
        if let Some((a, b)) = word.split_once('-') {
            if let (Some(a), Some(b)) = (day_of(a), day_of(b)) {
                if let (Some(i), Some(j)) = (idx(a), idx(b)) {
                    if i <= j {
                        days.extend(&crate::profile::DAYS[i..=j]);
                    }
                }
                continue;
            }
        }
        if let Some(d) = day_of(word) {
            let next = w.get(i + 1).map(String::as_str);
            if matches!(next, Some("to" | "through" | "thru" | "until" | "till")) {
                if let Some(e) = w.get(i + 2).and_then(|x| day_of(x)) {
                    if let (Some(a), Some(b)) = (idx(d), idx(e)) {
                        if a <= b {
                            days.extend(&crate::profile::DAYS[a..=b]);
                        }
                    }
                }
            }
            days.push(d);
        }
    }
    let mut times = Vec::new();
    for (pat, v) in [
        ("morning", "morning"),
        ("afternoon", "afternoon"),
        ("evening", "evening"),
        ("after work", "evening"),
        ("night", "night"),
        ("overnight", "night"),
    ] {
        if t.contains(pat) {
            times.push(v);
        }
    }
    if t.contains("any time") || t.contains("anytime") || t.contains("all day") {
        times.extend(crate::profile::TIMES);
    }
    let days =
        (!days.is_empty()).then(|| crate::profile::order_days(days.into_iter().map(str::to_owned)));
    let times = (!times.is_empty())
        .then(|| crate::profile::order_times(times.into_iter().map(str::to_owned)));
    (days, times)
}

/// "I live in Oakland", "based in East Harlem", "I'm from Lagos": the place as said.
pub fn location(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for cue in [
        "i live in ",
        "i'm based in ",
        "i am based in ",
        "based in ",
        "located in ",
        "i'm in ",
        "i am in ",
        "living in ",
        "i'm from ",
        "i am from ",
        "near ",
    ] {
        if let Some(at) = lower.find(cue) {
            let start = at + cue.len();
            let rest = &text[start..];
            let end = rest
                .find(['.', ',', ';', '!', '?', '\n'])
                .unwrap_or(rest.len());
            let mut place = rest[..end].trim();
            for stop in [" and ", " but ", " so ", " because "] {
                if let Some(i) = place.to_lowercase().find(stop) {
                    place = place[..i].trim();
                }
            }
            if !place.is_empty() && place.len() <= 80 {
                return Some(place.to_owned());
            }
        }
    }
    None
}

pub fn willing_to_travel(text: &str) -> Option<bool> {
    let t = text.to_lowercase();
    const NO: &[&str] = &[
        "can't travel",
        "cannot travel",
        "can not travel",
        "not able to travel",
        "unable to travel",
        "don't want to travel",
        "prefer not to travel",
        "rather not travel",
        "only local",
        "stay local",
        "no travel",
        "not travel",
    ];
    const YES: &[&str] = &[
        "can travel",
        "willing to travel",
        "happy to travel",
        "able to travel",
        "don't mind travel",
        "ok to travel",
        "okay to travel",
        "open to travel",
        "will travel",
        "love to travel",
    ];
    if NO.iter().any(|p| t.contains(p)) {
        Some(false)
    } else if YES.iter().any(|p| t.contains(p)) {
        Some(true)
    } else {
        None
    }
}

/// Whether the person is correcting something they said ("actually only weekends").
pub fn is_correction(text: &str) -> bool {
    let t = format!(" {} ", text.to_lowercase());
    [
        " actually ",
        " only ",
        " instead ",
        " correction",
        " i meant ",
        " not anymore",
        " no longer ",
        " change ",
    ]
    .iter()
    .any(|c| t.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_each_field() {
        assert_eq!(
            skills("I'm a nurse and I can drive"),
            vec!["driving", "medical"]
        );
        assert_eq!(skills("I can't drive but I'm a paralegal"), vec!["legal"]);
        assert_eq!(
            languages("I speak Spanish, English and a bit of Mandarin"),
            vec!["en", "es", "zh"]
        );
        assert_eq!(
            availability("weekends, mostly mornings").0.unwrap(),
            vec!["sat", "sun"]
        );
        assert_eq!(
            availability("weekends, mostly mornings").1.unwrap(),
            vec!["morning"]
        );
        assert_eq!(
            availability("Monday to Wednesday evenings").0.unwrap(),
            vec!["mon", "tue", "wed"]
        );
        assert_eq!(
            availability("mon-fri after work").0.unwrap(),
            vec!["mon", "tue", "wed", "thu", "fri"]
        );
        assert_eq!(
            availability("mon-fri after work").1.unwrap(),
            vec!["evening"]
        );
        assert_eq!(
            availability("tuesdays and thursdays").0.unwrap(),
            vec!["tue", "thu"]
        );
        assert_eq!(availability("hello there"), (None, None));
        assert_eq!(
            location("I live in East Oakland, near the lake").as_deref(),
            Some("East Oakland")
        );
        assert_eq!(
            location("I'm based in Brooklyn and can travel").as_deref(),
            Some("Brooklyn")
        );
        assert_eq!(willing_to_travel("I'm happy to travel"), Some(true));
        assert_eq!(willing_to_travel("I can't travel far"), Some(false));
        assert_eq!(willing_to_travel("hello"), None);
        assert_eq!(
            causes("housing and refugee support"),
            vec!["housing", "immigration"]
        );
        assert!(is_correction("Actually I'm only free on weekends"));
        assert!(!is_correction("I'm free on weekends"));
    }
}
