//! Where someone is and whether they would travel: a place after a cue ("I live in", "vivo
//! en"), or said on its own in answer to the location question, kept as said ("St. Cloud,
//! MN"); travel from what they say about it, or a bare yes or no to the travel question.

use super::text::{self, clauses, words, Word};

/// How sure a place is: "I live in" is firm; "I'm from" is only used when nothing firmer is
/// known (it may be where they grew up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmness {
    Firm,
    Weak,
}

const FIRM_CUES: &[&str] = &[
    "currently in",
    "now in",
    "located near",
    "located outside",
    "location to",
    "my location is",
    "my city is",
    "live in",
    "living in",
    "lives in",
    "live near",
    "live outside",
    "live just",
    "live close",
    "live right",
    "live around",
    "living near",
    "living outside",
    "based near",
    "based just",
    "based outside",
    "based in",
    "based out of",
    "based around",
    "located in",
    "reside in",
    "residing in",
    "i'm in",
    "im in",
    "i am in",
    "we're in",
    "moved to",
    "relocated to",
    "home is in",
    "home is",
    "i stay in",
    "staying in",
    "vivo en",
    "estoy en",
    "resido en",
    "radico en",
    "me mude a",
    "location :",
    "location is",
    "city :",
    "town :",
    "ubicacion :",
    "ciudad :",
];
const WEAK_CUES: &[&str] = &["i'm from", "im from", "i am from", "soy de"];

/// Words before a cue that make it about someone or somewhen else ("my parents live in",
/// "I used to live in", "originally from").
const NOT_NOW: &[&str] = &[
    "used",
    "grew",
    "born",
    "raised",
    "parents",
    "family",
    "mom",
    "mother",
    "dad",
    "father",
    "sister",
    "brother",
    "son",
    "daughter",
    "friend",
    "friends",
    "wife",
    "husband",
    "partner",
    "originally",
    "was",
    "were",
    "kids",
];

/// Words that end a place name written in lower case, or that are never the start of one.
const STOP: &[&str] = &[
    "and",
    "but",
    "so",
    "i",
    "im",
    "i'm",
    "with",
    "near",
    "for",
    "because",
    "since",
    "now",
    "currently",
    "too",
    "also",
    "y",
    "pero",
    "con",
    "por",
    "para",
    "es",
    "though",
    "right",
    "at",
    "on",
    "last",
    "this",
    "these",
    "days",
    "my",
    "a",
    "an",
    "school",
    "college",
    "recovery",
    "town",
    "love",
    "need",
    "between",
    "healthcare",
    "the",
    "it",
    "but",
    "where",
    "yes",
    "no",
    "sure",
    "ok",
    "okay",
    "not",
    "can",
    "could",
    "will",
    "would",
    "happy",
    "willing",
    "travel",
    "if",
    "when",
    "which",
    "who",
    "anywhere",
    "everywhere",
    "here",
    "there",
    "home",
    "general",
    "mostly",
    "usually",
    "around",
    "about",
    "like",
    "just",
    "y",
    "puedo",
    "no",
    "and",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "gracias",
    "hola",
    "nothing",
    "none",
    "that's",
    "thats",
    "to",
    "from",
    "in",
    "of",
    "don't",
    "dont",
    "i'd",
    "id",
    "whenever",
    "wherever",
    "anytime",
    "flexible",
    "retired",
    "sometimes",
    "usually",
    "often",
    "availability",
    "location",
    "skills",
    "languages",
    "causes",
    "schedule",
    "experience",
    "open",
    "anything",
    "everything",
    "depends",
    "same",
    "well",
    "oh",
    "ah",
    "um",
    "lol",
    "rather",
    "unsure",
    "maybe",
    "dunno",
    "idk",
    "prefer",
    "some",
    "any",
    "every",
];

/// Words that may join the parts of a name ("Stratford upon Avon", "Santa Fe de Bogotá").
const JOINERS: &[&str] = &[
    "of", "de", "del", "la", "upon", "on", "the", "los", "las", "el",
];

/// The byte range of `w` within `s` (both from the same text).
fn offset(s: &str, w: &Word<'_>) -> (usize, usize) {
    let start = w.raw.as_ptr() as usize - s.as_ptr() as usize;
    (start, start + w.raw.len())
}

fn seq_at(words: &[Word<'_>], i: usize, cue: &str) -> bool {
    super::text::seq_at(words, i, cue) > 0
}

/// A place named after a cue in this sentence. `capitals` says the message uses capital
/// letters for names, so a name is its capitalised words.
pub fn cued(
    sentence: &str,
    capitals: bool,
    is_known: &dyn Fn(&str) -> bool,
) -> Option<(String, Firmness)> {
    let w = words(sentence);
    let mut best: Option<(String, Firmness)> = None;
    // "Chicago-based", "a Fargo resident": the name before.
    for i in 1..w.len() {
        let based = w[i].key == "based" && w[i - 1].key == "-";
        let resident = w[i].key == "resident" || w[i].key == "local";
        let end = if based {
            i - 1
        } else if resident {
            i
        } else {
            continue;
        };
        let mut start = end;
        while start > 0
            && w[start - 1].capitalised()
            && !is_known(&w[start - 1].key)
            && w[start - 1].key != "i"
        {
            start -= 1;
        }
        if start < end && (based || resident) {
            let (s, _) = offset(sentence, &w[start]);
            let (_, e) = offset(sentence, &w[end - 1]);
            best = Some((sentence[s..e].to_owned(), Firmness::Firm));
        }
    }
    for i in 0..w.len() {
        for (cues, firmness) in [(FIRM_CUES, Firmness::Firm), (WEAK_CUES, Firmness::Weak)] {
            let Some(cue) = cues.iter().find(|c| seq_at(&w, i, c)) else {
                continue;
            };
            let before = &w[i.saturating_sub(3)..i];
            let later = w.get(i..).unwrap_or_default();
            if before.iter().any(|b| NOT_NOW.contains(&b.key.as_str()))
                || later.iter().take(8).any(|b| b.key == "originally")
            {
                continue;
            }
            let from = i + cue.split(' ').count();
            if let Some(place) = name_at(sentence, &w, from, capitals, is_known) {
                let better = match &best {
                    None => true,
                    Some((_, Firmness::Weak)) => firmness == Firmness::Firm,
                    Some(_) => false,
                };
                if better {
                    best = Some((place, firmness));
                }
            }
        }
    }
    best
}

/// Whether a clause says where someone is (or was), whatever the name.
pub fn has_cue(clause: &str) -> bool {
    let w = words(clause);
    (0..w.len()).any(|i| {
        FIRM_CUES
            .iter()
            .chain(WEAK_CUES)
            .chain(&["originally from", "grew up in", "born in"])
            .any(|c| seq_at(&w, i, c))
    })
}

/// The place name starting at word `from`, with a following ", MN" or ", Oregon".
fn name_at(
    sentence: &str,
    w: &[Word<'_>],
    from: usize,
    capitals: bool,
    is_known: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let mut i = from;
    // "near Duluth", "in the Bronx"
    while w.get(i).is_some_and(|x| {
        matches!(
            x.key.as_str(),
            "near" | "around" | "in" | "outside" | "en" | "just" | "of" | "right" | "close" | "to"
        )
    }) {
        i += 1;
    }
    let start = i;
    let mut end = i;
    while let Some(x) = w.get(end) {
        if end - start >= 5 || x.is_punct() {
            break;
        }
        let ok = if capitals {
            x.capitalised() && x.key != "i" && x.key != "i'm"
                || (JOINERS.contains(&x.key.as_str())
                    && w.get(end + 1).is_some_and(|n| n.capitalised()))
        } else {
            !STOP.contains(&x.key.as_str()) || (end > start && JOINERS.contains(&x.key.as_str()))
        };
        if !ok || is_known(&x.key) {
            break;
        }
        end += 1;
    }
    while end > start && JOINERS.contains(&w[end - 1].key.as_str()) {
        end -= 1;
    }
    // "the Bronx": a leading "the" belongs to the name when a name follows.
    let the_name = w[start].key == "the" && w.get(start + 1).is_some_and(|n| n.capitalised());
    if end == start || STOP.contains(&w[start].key.as_str()) && !the_name {
        return None;
    }
    let (s, _) = offset(sentence, &w[start]);
    let (_, mut e) = offset(sentence, &w[end - 1]);
    // ", MN" / ", Oregon": a region after a comma, if what follows ends the clause.
    let rest = &sentence[e..];
    if let Some(after) = rest.strip_prefix(',').or_else(|| rest.strip_prefix(" ,")) {
        let region: Vec<Word<'_>> = words(after).into_iter().take(3).collect();
        let n = region
            .iter()
            .take_while(|r| {
                r.capitalised()
                    && !r.is_punct()
                    && r.key != "i"
                    && r.key != "i'm"
                    && !is_known(&r.key)
                    && !STOP.contains(&r.key.as_str())
            })
            .count()
            .min(2);
        if n > 0 {
            let (_, re) = offset(after, &region[n - 1]);
            let tail = after[re..].trim_start();
            let abbreviation = n == 1
                && region[0].raw.len() == 2
                && region[0].raw.chars().all(|c| c.is_ascii_uppercase());
            if abbreviation || tail.is_empty() || tail.starts_with([',', '.', ';', '!', '?']) {
                e += 1 + re;
            }
        }
    }
    let place = sentence[s..e]
        .trim()
        .trim_end_matches([',', '.'])
        .to_owned();
    (!place.is_empty() && place.len() <= 80).then_some(place)
}

/// A sentence that is only a place, said in answer to "Where are you based?" ("Fargo.",
/// "Astoria, Queens", "near Duluth"): its leading clauses that look like a name.
pub fn bare(sentence: &str, capitals: bool, is_known: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut span: Option<(usize, usize)> = None;
    for clause in clauses(sentence) {
        let w: Vec<Word<'_>> = words(clause)
            .into_iter()
            .filter(|x| !x.is_punct())
            .collect();
        let lead = w
            .iter()
            .take_while(|x| {
                matches!(
                    x.key.as_str(),
                    "in" | "near" | "around" | "en" | "just" | "outside"
                )
            })
            .count();
        let name = &w[lead..];
        let looks = !name.is_empty()
            && name.len() <= 4
            && name.iter().enumerate().all(|(i, x)| {
                !STOP.contains(&x.key.as_str()) || (i > 0 && JOINERS.contains(&x.key.as_str()))
            })
            && name.iter().all(|x| {
                !is_known(&x.key) && x.key.chars().all(|c| c.is_alphabetic() || c == '\'')
            })
            && (!capitals || name[0].capitalised() && name[0].key != "i");
        if !looks || !super::when::find(&w, true).is_empty() {
            break;
        }
        let s = clause.as_ptr() as usize - sentence.as_ptr() as usize;
        let (ns, _) = offset(clause, &name[0]);
        let (_, ne) = offset(clause, &name[name.len() - 1]);
        span = Some(match span {
            None => (s + ns, s + ne),
            Some((a, _)) => (a, s + ne),
        });
        if span.is_some_and(|(a, b)| b - a > 60) {
            return None;
        }
    }
    span.map(|(a, b)| sentence[a..b].to_owned())
}

/// Fillers dropped before matching what is said about travel.
const FILLERS: &[&str] = &[
    "really",
    "definitely",
    "totally",
    "also",
    "absolutely",
    "usually",
    "probably",
    "certainly",
    "always",
    "even",
    "just",
    "def",
    "totally",
    "generally",
];

/// The sentence in folded words with contractions written one way ("can't" → "cant").
/// `text::plain` without fillers, "cannot" written "cant", and a space at each end so
/// phrases match as whole words.
fn padded(sentence: &str) -> String {
    let plain = text::plain(sentence);
    let words: Vec<&str> = plain
        .split(' ')
        .filter(|w| !FILLERS.contains(w))
        .map(|w| if w == "cannot" { "cant" } else { w })
        .collect::<Vec<_>>();
    format!(" {} ", words.join(" ").replace("can not", "cant"))
}

const NO_TRAVEL: &[&str] = &[
    "travel is hard",
    "travel is difficult",
    "hard for me to travel",
    "only locally",
    "volunteer locally",
    "travelling is hard",
    "traveling is hard",
    "cant travel",
    "not able to travel",
    "unable to travel",
    "dont want to travel",
    "prefer not to travel",
    "rather not travel",
    "rather stay local",
    "rather stay close",
    "stay close to home",
    "close to home",
    "stay local",
    "only local",
    "local only",
    "locally only",
    "mostly local",
    "no travel",
    "not travel",
    "dont travel",
    "wont travel",
    "cant get around",
    "way to get around",
    "cant commute",
    "no puedo viajar",
    "prefiero no viajar",
    "no puedo desplazarme",
    "only in my neighborhood",
    "cant go far",
    "rather stay",
    "prefer to stay",
    "stay in town",
    "stay nearby",
    "not far",
    "stay in my area",
];
const TRAVEL: &[&str] = &[
    "can travel",
    "could travel",
    "willing to travel",
    "happy to travel",
    "glad to travel",
    "able to travel",
    "dont mind travel",
    "ok to travel",
    "okay to travel",
    "open to travel",
    "will travel",
    "love to travel",
    "like to travel",
    "travel is fine",
    "travel is ok",
    "travel is okay",
    "travel no problem",
    "travel is no problem",
    "traveling is fine",
    "travelling is fine",
    "travel fine",
    "can commute",
    "commute anywhere",
    "drive anywhere",
    "go anywhere",
    "go wherever",
    "travel anywhere",
    "wherever im needed",
    "wherever needed",
    "subway anywhere",
    "bus anywhere",
    "train anywhere",
    "road trips are fine",
    "can go to other",
    "puedo viajar",
    "puedo desplazarme",
    "puedo moverme",
    "can get around",
    "happy to drive",
    "willing to drive",
    "can drive to",
    "travel a bit",
    "can travel a little",
    "get about",
    "a donde sea",
    "donde sea",
    "a cualquier lugar",
    "can get about",
    "dont mind driving",
    "dont mind the drive",
    "dont mind commuting",
    "travel isnt a problem",
    "travel is not a problem",
    "travel isnt an issue",
    "travel is not an issue",
];

/// Ways of getting somewhere, and where: "driving to other towns", "take the train".
const MOVING: &[&str] = &[
    "drive",
    "driving",
    "travel",
    "traveling",
    "travelling",
    "commute",
    "commuting",
    "go",
    "going",
    "get",
    "take the train",
    "take train",
    "take the bus",
    "take bus",
    "take the subway",
];
const FAR: &[&str] = &[
    "to other",
    "anywhere",
    "wherever",
    "around",
    "nearby",
    "elsewhere",
];

/// Whether `phrase` occurs in the space-padded `text` as whole words (no allocation: this runs
/// for every phrase list on every sentence).
fn contains_words(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase)
        .any(|(i, _)| text[..i].ends_with(' ') && text[i + phrase.len()..].starts_with(' '))
}

/// Whether `first` then `second` occur together, as whole words, in the space-padded `text`.
fn contains_pair(text: &str, first: &str, second: &str) -> bool {
    text.match_indices(first).any(|(i, _)| {
        text[..i].ends_with(' ')
            && text[i + first.len()..]
                .strip_prefix(' ')
                .and_then(|rest| rest.strip_prefix(second))
                .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// What the sentence says about travelling, if anything.
pub fn travel(sentence: &str) -> Option<bool> {
    let p = padded(sentence);
    let has = |phrase: &str| contains_words(&p, phrase);
    if NO_TRAVEL.iter().any(|n| has(n)) {
        return Some(false);
    }
    let moving = MOVING
        .iter()
        .any(|m| FAR.iter().any(|f| contains_pair(&p, m, f)) || (m.starts_with("take") && has(m)))
        || (has("take") && FAR.iter().any(|f| has(f)));
    let by_transit = [
        "by train",
        "by bus",
        "by car",
        "public transport",
        "public transit",
        "on the metro",
    ]
    .iter()
    .any(|t| has(t));
    // "up to 30 miles", "within 10 km": a distance they would go.
    let distance = ["miles", "mile", "km", "kilometers", "kilometres", "minutes"]
        .iter()
        .any(|u| has(u))
        && ["up to", "within", "go", "drive", "travel"]
            .iter()
            .any(|c| has(c));
    if TRAVEL.iter().any(|y| has(y)) || moving || by_transit || distance {
        Some(true)
    } else {
        None
    }
}

/// A clause said in answer to "would you be willing to travel?": a bare yes or no, or a way
/// of getting about ("I can drive", "I've got a car", "tengo carro").
pub fn travel_answer(clause: &str) -> Option<bool> {
    const MEANS: &[&str] = &[
        "have a car",
        "got a car",
        "tengo carro",
        "tengo coche",
        "tengo auto",
        "puedo manejar",
        "puedo conducir",
    ];
    let p = padded(clause);
    let can_drive = matches!(
        p.trim(),
        "i can drive" | "can drive" | "i drive" | "yes i can drive"
    ) || (MEANS.iter().any(|m| contains_words(&p, m))
        && !p
            .split(' ')
            .any(|x| matches!(x, "no" | "not" | "dont" | "cant" | "never" | "without")));
    yes_no(clause).or(can_drive.then_some(true))
}

/// A bare yes or no ("Sure!", "not really", "claro").
pub fn yes_no(clause: &str) -> Option<bool> {
    let p = padded(clause);
    let p = p.trim();
    const YES: &[&str] = &[
        "yes",
        "yeah",
        "yep",
        "yup",
        "sure",
        "of course",
        "definitely",
        "absolutely",
        "ok",
        "okay",
        "yes i can",
        "yes please",
        "si",
        "claro",
        "por supuesto",
        "sure thing",
        "i can",
        "i could",
        "certainly",
        "yes i would",
        "i would",
        "yes definitely",
        "why not",
    ];
    const NO: &[&str] = &[
        "no",
        "nope",
        "not really",
        "no thanks",
        "nah",
        "i cant",
        "no puedo",
        "not at all",
        "id rather not",
        "rather not",
        "no i cant",
        "not possible",
        "no sorry",
        "sorry no",
    ];
    if YES.contains(&p) {
        Some(true)
    } else if NO.contains(&p) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn places_after_cues_and_alone() {
        let c = |s: &str| cued(s, true, &none).map(|p| p.0);
        assert_eq!(
            c("living in St. Cloud, MN").as_deref(),
            Some("St. Cloud, MN")
        );
        assert_eq!(
            c("Originally from Lagos but I live in Leeds now").as_deref(),
            Some("Leeds")
        );
        assert_eq!(
            c("I'm in Redding, CA, weekends work best").as_deref(),
            Some("Redding, CA")
        );
        assert_eq!(c("I live in Leeds, I can travel").as_deref(), Some("Leeds"));
        assert_eq!(c("my parents live in Ohio"), None);
        assert_eq!(
            cued("i live in fresno", false, &none)
                .map(|p| p.0)
                .as_deref(),
            Some("fresno")
        );
        assert_eq!(
            cued("I'm from Boise, I'm a pharmacist", true, &none).map(|p| p.1),
            Some(Firmness::Weak)
        );
        assert_eq!(bare("Fargo", true, &none).as_deref(), Some("Fargo"));
        assert_eq!(
            bare("Astoria, Queens", true, &none).as_deref(),
            Some("Astoria, Queens")
        );
        assert_eq!(
            bare("Bronx, no travel", true, &none).as_deref(),
            Some("Bronx")
        );
        assert_eq!(bare("yes I can", true, &none), None);
        assert_eq!(travel("happy to drive anywhere nearby"), Some(true));
        assert_eq!(travel("I can't really travel"), Some(false));
        assert_eq!(travel("Travel is fine if it's not too far"), Some(true));
        assert_eq!(yes_no("Sure"), Some(true));
        assert_eq!(
            c("Chicago-based, I don't mind driving").as_deref(),
            Some("Chicago")
        );
        assert_eq!(
            c("can you change my location to Moorhead").as_deref(),
            Some("Moorhead")
        );
        assert_eq!(travel("I can go up to 30 miles"), Some(true));
        assert_eq!(travel("Travel is hard for me"), Some(false));
    }
}
