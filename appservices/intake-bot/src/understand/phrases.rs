//! Open vocabulary: the skills and causes a person names, as they name them ("welder",
//! "wildfire relief"), with known synonyms folded into one term ("homeless shelters" →
//! housing) and fillers, roles and hedges taken off ("a pretty good photographer" →
//! photographer).

use super::lexicon::{find, Lexicon};
use super::text::{items, seq_at, words, Word};

/// Which open list a phrase is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    Skills,
    Causes,
}

/// Openings taken off a phrase, longest first ("i used to work as a" before "i").
const LEADS: &[&str] = &[
    "i used to work as a",
    "i used to work as an",
    "i used to be a",
    "i used to be an",
    "used to be a",
    "i have been a",
    "i've been a",
    "ive been a",
    "i worked as a",
    "i work as a",
    "i work as an",
    "worked as a",
    "work as a",
    "i work as",
    "i'm good at",
    "im good at",
    "i am good at",
    "good at",
    "good with",
    "skilled in",
    "skilled at",
    "experience in",
    "experience with",
    "experience as a",
    "background in",
    "i am a",
    "i am an",
    "i'm a",
    "i'm an",
    "im a",
    "im an",
    "i was a",
    "i was an",
    "grad student in",
    "student in",
    "studying",
    "i study",
    "i do",
    "i can",
    "i could",
    "i know",
    "i have",
    "i've done",
    "ive done",
    "i am",
    "i'm",
    "im",
    "i",
    "a bit of",
    "a little",
    "a lot of",
    "lots of",
    "pretty good",
    "anything related to",
    "anything to do with",
    "to do with",
    "working with",
    "work with",
    "help with",
    "helping with",
    "help for",
    "helping",
    "i care about",
    "care about",
    "passionate about",
    "interested in",
    "support for",
    "trabajo en",
    "trabajo como",
    "soy",
    "some",
    "basic",
    "good",
    "great",
    "decent",
    "pretty",
    "very",
    "really",
    "quite",
    "certified",
    "retired",
    "former",
    "licensed",
    "registered",
    "experienced",
    "professional",
    "trained",
    "qualified",
    "amateur",
    "mostly",
    "mainly",
    "especially",
    "also",
    "a",
    "an",
    "the",
    "my",
    "so",
    "well",
    "um",
    "uh",
    "oh",
    "and",
    "or",
    "like",
    "maybe",
    "probably",
    "un",
    "una",
    "el",
    "la",
    "los",
    "las",
    "de",
    "done",
    "do",
    "can",
    "know",
    "plus",
    "then",
    "but",
    "though",
    "pero",
    "i worked in",
    "i work in",
    "worked in",
    "worked with",
    "worked on",
    "work in",
    "i worked",
    "worked",
    "now",
    "currently",
    "ayudar a",
    "ayudar",
    "a little bit",
    "little bit",
    "i mean",
    "wait",
    "anything with",
    "anything for",
    "anything involving",
    "something with",
    "something for",
    "tambien se de",
    "tambien se",
    "se de",
    "tambien",
];

/// Words a phrase ends before ("social worker for fifteen years", "mechanic for cars").
const SKILL_ENDS: &[&str] = &[
    "for",
    "at",
    "since",
    "who",
    "that",
    "which",
    "because",
    "when",
    "from",
    "in",
    "by",
    "years",
    "honestly",
    "though",
    "too",
    "etc",
    "really",
    "please",
    "now",
    "obviously",
    "lol",
    "mostly",
    "with",
    "but",
    "so",
    "if",
    "as",
    "on",
    "to",
    "of",
];
const CAUSE_ENDS: &[&str] = &[
    "because",
    "since",
    "who",
    "that",
    "which",
    "when",
    "etc",
    "too",
    "really",
    "please",
    "honestly",
    "lol",
    "obviously",
    "is",
    "are",
    "but",
    "so",
    "if",
];

/// Endings that say nothing of the skill ("marketing person", "accountant here").
const SKILL_TAILS: &[&str] = &[
    "person",
    "guy",
    "gal",
    "type",
    "here",
    "stuff",
    "things",
    "by trade",
    "for a living",
    "work",
];

/// Words that may sit beside a known term without changing it ("refugee families",
/// "tenants rights", "legal aid volunteer").
const GENERIC: &[&str] = &[
    "support",
    "supporting",
    "rights",
    "right",
    "services",
    "service",
    "programs",
    "program",
    "programmes",
    "issues",
    "issue",
    "work",
    "working",
    "people",
    "peoples",
    "folks",
    "families",
    "family",
    "survivors",
    "victims",
    "prevention",
    "awareness",
    "advocacy",
    "care",
    "line",
    "lines",
    "relief",
    "help",
    "helping",
    "community",
    "communities",
    "justice",
    "action",
    "groups",
    "group",
    "organizations",
    "organization",
    "orgs",
    "org",
    "cause",
    "causes",
    "stuff",
    "things",
    "related",
    "in",
    "of",
    "for",
    "the",
    "a",
    "an",
    "and",
    "with",
    "to",
    "on",
    "my",
    "our",
    "their",
    "general",
    "derechos",
    "apoyo",
    "familias",
    "personas",
    "gente",
    "de",
    "del",
    "la",
    "las",
    "los",
    "el",
    "para",
    "con",
    "experience",
    "skills",
    "skill",
    "background",
    "job",
    "jobs",
    "volunteer",
    "volunteering",
    "engineer",
    "developer",
    "guy",
    "person",
    "here",
    "tools",
    "aid",
    "field",
    "industry",
    "sector",
    "banks",
    "bank",
    "shelters",
    "wellness",
    "systems",
    "system",
    "kids",
    "children",
    "seekers",
    "seeker",
    "needs",
    "education",
    "teen",
    "teens",
    "youths",
    "programs",
    "health",
    "prep",
    "women",
    "men",
    "girls",
    "boys",
    "mothers",
    "moms",
    "fathers",
    "single",
    "local",
    "type",
    "kind",
    "sort",
    "mujeres",
    "hombres",
];

/// Heads that are not skills ("college student", "mom of two").
const NOT_SKILLS: &[&str] = &[
    "student",
    "mom",
    "dad",
    "mother",
    "father",
    "parent",
    "retiree",
    "person",
    "volunteer",
    "beginner",
    "member",
    "resident",
    "native",
    "citizen",
    "immigrant",
    "refugee",
    "veteran",
    "woman",
    "man",
    "guy",
    "fan",
    "bit",
    "little",
    "lot",
    "human",
    "grandma",
    "grandmother",
    "grandpa",
    "newbie",
    "speaker",
    "bilingual",
    "fluent",
    "local",
    "here",
    "mum",
    "trilingual",
    "multilingual",
    "polyglot",
];

/// Never a phrase worth recording, whatever the field.
const EMPTY: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "ok",
    "okay",
    "yes",
    "no",
    "sure",
    "none",
    "nothing",
    "idk",
    "dunno",
    "anything",
    "everything",
    "whatever",
    "stuff",
    "things",
    "honestly",
    "well",
    "hmm",
    "not",
    "don't",
    "dont",
    "all",
    "it",
    "that",
    "this",
    "these",
    "those",
    "you",
    "we",
    "they",
    "he",
    "she",
    "something",
    "nada",
    "lots",
    "many",
    "much",
    "more",
    "other",
    "others",
    "same",
    "languages",
    "language",
    "hola",
    "gracias",
    "bueno",
    "it's",
    "its",
    "that's",
    "thats",
    "there's",
    "originally",
    "born",
    "grew",
    "raised",
    "flexible",
    "available",
    "free",
    "happy",
    "glad",
    "excited",
    "interested",
    "new",
    "sorry",
    "fine",
    "volunteering",
    "helping",
    "yeah",
    "yep",
    "nope",
    "maybe",
    "unsure",
    "wait",
    "oops",
    "skills",
    "skill",
    "availability",
    "location",
    "causes",
    "cause",
    "schedule",
    "experience",
    "stay",
    "open",
    "whenever",
    "anywhere",
    "actually",
    "sorry",
    "mean",
    "hiya",
    "howdy",
    "greetings",
    "buenas",
    "buenos",
    "good",
];

/// Openings that introduce a name, not a skill ("me llamo Rosa", "I'm Dana").
const NAME_CUES: &[&str] = &[
    "me llamo",
    "my name is",
    "my name's",
    "i'm called",
    "this is",
    "name is",
    "i go by",
];

const FUNCTION: &[&str] = &[
    "in", "of", "for", "the", "a", "an", "and", "with", "to", "on", "at", "by", "from", "or", "de",
    "la", "el", "los", "las", "en", "con", "para", "y", "is", "are", "was", "be",
];

fn starts_with_seq(w: &[Word<'_>], seq: &str) -> usize {
    seq_at(w, 0, seq)
}

fn ends_with_seq(w: &[Word<'_>], seq: &str) -> usize {
    let n = seq.split(' ').count();
    if w.len() < n {
        return 0;
    }
    seq_at(w, w.len() - n, seq)
}

/// "IT" (the trade, in capitals) is a skill; "it" is not.
fn it_trade(w: &Word<'_>) -> bool {
    w.raw == "IT"
}

/// What one list item names, as terms for `field`.
pub fn terms(item: &str, field: Open) -> Vec<String> {
    let all: Vec<Word<'_>> = words(item).into_iter().filter(|w| !w.is_punct()).collect();
    if NAME_CUES.iter().any(|c| starts_with_seq(&all, c) > 0) {
        return Vec::new();
    }
    // Known terms among openings and fillers: "I have a car" is driving.
    if let Some(values) = known(item, &all, field, true) {
        return values;
    }
    let mut w: &[Word<'_>] = &all;
    // Openings, repeatedly: "I'm a pretty good photographer" → "photographer".
    let mut introduced_by_name = false;
    let mut after_can = false;
    loop {
        let cut = LEADS
            .iter()
            .map(|l| starts_with_seq(w, l))
            .find(|n| *n > 0)
            .unwrap_or(0);
        if cut == 0 {
            break;
        }
        introduced_by_name = matches!(w[cut - 1].key.as_str(), "i'm" | "im" | "am" | "soy");
        after_can = matches!(w[cut - 1].key.as_str(), "can" | "could");
        w = &w[cut..];
    }
    // "I'm Dana": a name, not a trade.
    if introduced_by_name && w.first().is_some_and(|x| x.capitalised()) {
        return Vec::new();
    }
    let ends = if field == Open::Skills {
        SKILL_ENDS
    } else {
        CAUSE_ENDS
    };
    if let Some(stop) = w
        .iter()
        .position(|x| ends.contains(&x.key.as_str()) || x.key.chars().any(|c| c.is_ascii_digit()))
    {
        w = &w[..stop];
    }
    if let Some(values) = known(item, w, field, false) {
        return values;
    }
    if field == Open::Skills {
        while let Some(n) = SKILL_TAILS
            .iter()
            .map(|t| ends_with_seq(w, t))
            .find(|n| *n > 0)
        {
            if w.len() <= n {
                break;
            }
            w = &w[..w.len() - n];
        }
        if let Some(values) = known(item, w, field, false) {
            return values;
        }
    }
    if w.is_empty() || EMPTY.contains(&w[0].key.as_str()) {
        return Vec::new();
    }
    let head = w[w.len() - 1].key.as_str();
    if w.len() > 4
        || FUNCTION.contains(&w[0].key.as_str())
        || FUNCTION.contains(&head)
        || (field == Open::Skills && NOT_SKILLS.contains(&head))
        || w.iter().any(|x| {
            !x.key
                .chars()
                .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
        })
    {
        return Vec::new();
    }
    // "I can clean": the skill is cleaning.
    if field == Open::Skills && after_can && w.len() == 1 {
        return vec![gerund(&w[0].key)];
    }
    let start = w[0].raw.as_ptr() as usize - item.as_ptr() as usize;
    let last = &w[w.len() - 1];
    let end = last.raw.as_ptr() as usize - item.as_ptr() as usize + last.raw.len();
    vec![item[start..end].to_lowercase()]
}

/// "clean" → "cleaning", "bake" → "baking", "dig" → "digging".
pub fn gerund(verb: &str) -> String {
    if verb.ends_with("ing") {
        return verb.to_owned();
    }
    let chars: Vec<char> = verb.chars().collect();
    let vowel = |c: char| "aeiou".contains(c);
    match chars.as_slice() {
        [.., a, 'e'] if *a != 'e' && chars.len() > 2 => format!("{}ing", &verb[..verb.len() - 1]),
        [a, b, c] if !vowel(*a) && vowel(*b) && !vowel(*c) && !"wxy".contains(*c) => {
            format!("{verb}{c}ing")
        }
        _ => format!("{verb}ing"),
    }
}

/// The known terms a phrase is made of, if it is only those and words that do not change
/// them; a known word inside a name of something else ("hurricane recovery") is not folded.
fn known(item: &str, w: &[Word<'_>], field: Open, fillers_ok: bool) -> Option<Vec<String>> {
    let lexicon = match field {
        Open::Skills => Lexicon::Skills,
        Open::Causes => Lexicon::Causes,
    };
    let hits = find(w, lexicon);
    let mut values: Vec<String> = Vec::new();
    let mut covered = vec![false; w.len()];
    for h in &hits {
        covered[h.start..h.end].iter_mut().for_each(|c| *c = true);
        if !values.iter().any(|v| v == h.value) {
            values.push(h.value.to_owned());
        }
    }
    if field == Open::Skills {
        for (i, x) in w.iter().enumerate() {
            if it_trade(x) {
                covered[i] = true;
                if !values.iter().any(|v| v == "tech") {
                    values.push("tech".to_owned());
                }
            }
        }
    }
    if values.is_empty() {
        return None;
    }
    // A skill term names the skill whatever surrounds it ("I tutor math"). A cause term
    // is folded unless it ends a name of something else ("hurricane recovery").
    if field == Open::Skills {
        return Some(values);
    }
    let filler = |k: &str| {
        GENERIC.contains(&k) || (fillers_ok && LEADS.iter().any(|l| l.split(' ').any(|x| x == k)))
    };
    // "Ukrainian refugees": a people's name beside the term does not change it.
    let named = find(w, Lexicon::Languages);
    for h in named {
        covered[h.start..h.end].iter_mut().for_each(|c| *c = true);
    }
    let left = |i: usize| !covered[i] && !filler(&w[i].key);
    // Words right before a term name a kind of it ("hurricane recovery", "early childhood
    // education", "financial literacy for seniors"): kept as said. Words after it, or apart
    // from it, say what is done for it ("food insecurity", "home repairs for seniors"): the
    // term is the cause.
    let mut out: Vec<String> = Vec::new();
    let mut used = vec![false; w.len()];
    for h in &hits {
        let at = |x: &Word<'_>| x.raw.as_ptr() as usize - item.as_ptr() as usize;
        let hyphen_before = |i: usize| {
            i > 0 && item.get(at(&w[i - 1]) + w[i - 1].raw.len()..at(&w[i])) == Some("-")
        };
        let mut s = h.start;
        while s > 0 && (left(s - 1) || hyphen_before(s)) {
            s -= 1;
        }
        let value = if s < h.start {
            used[s..h.start].iter_mut().for_each(|u| *u = true);
            let last = &w[h.end - 1];
            item[at(&w[s])..at(last) + last.raw.len()].to_lowercase()
        } else {
            h.value.to_owned()
        };
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Some(out)
}

/// The known terms of an item that is nothing else ("Veterans", "refugee families"); none
/// otherwise.
pub fn only_known(item: &str, field: Open) -> Vec<String> {
    let w: Vec<Word<'_>> = words(item).into_iter().filter(|w| !w.is_punct()).collect();
    let lexicon = match field {
        Open::Skills => Lexicon::Skills,
        Open::Causes => Lexicon::Causes,
    };
    let hits = find(&w, lexicon);
    let mut covered = vec![false; w.len()];
    for h in &hits {
        covered[h.start..h.end].iter_mut().for_each(|c| *c = true);
    }
    if hits.is_empty() || (0..w.len()).any(|i| !covered[i] && !GENERIC.contains(&w[i].key.as_str()))
    {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for h in hits {
        if !out.iter().any(|v| v == h.value) {
            out.push(h.value.to_owned());
        }
    }
    out
}

/// Every term of a list said for `field` ("carpentry, some welding and bike repair").
pub fn list(text: &str, field: Open) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items(text) {
        for t in terms(item, field) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_kept_as_said_and_synonyms_folded() {
        assert_eq!(list("welder", Open::Skills), vec!["welder"]);
        assert_eq!(
            list("I do dog walking and some gardening", Open::Skills),
            vec!["dog walking", "gardening"]
        );
        assert_eq!(
            list("I'm a pretty good photographer", Open::Skills),
            vec!["photographer"]
        );
        assert_eq!(
            list("Barista and college student", Open::Skills),
            vec!["barista"]
        );
        assert_eq!(list("Marketing person", Open::Skills), vec!["marketing"]);
        assert_eq!(list("IT guy", Open::Skills), vec!["tech"]);
        assert_eq!(
            list("social worker for about fifteen years", Open::Skills),
            vec!["counseling"]
        );
        assert_eq!(
            list("homeless shelters and refugee families", Open::Causes),
            vec!["housing", "immigration"]
        );
        assert_eq!(
            list("animal welfare and hurricane recovery", Open::Causes),
            vec!["animal welfare", "hurricane recovery"]
        );
        assert_eq!(list("kids in foster care", Open::Causes), vec!["youth"]);
        assert_eq!(list("help for old people", Open::Causes), vec!["elders"]);
        assert_eq!(
            list("los niños y la educacion", Open::Causes),
            vec!["youth", "education"]
        );
        assert_eq!(list("at-risk youth", Open::Causes), vec!["at-risk youth"]);
        assert_eq!(
            list("financial literacy for seniors", Open::Causes),
            vec!["financial literacy", "elders"]
        );
        assert_eq!(list("food insecurity", Open::Causes), vec!["food security"]);
        assert_eq!(list("mom of three", Open::Skills), Vec::<String>::new());
        assert_eq!(gerund("clean"), "cleaning");
        assert_eq!(gerund("bake"), "baking");
    }
}
