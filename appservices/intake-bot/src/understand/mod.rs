//! Understanding what a volunteer says, one message at a time, the way a careful person
//! taking notes would: each message is read with the question it answers, cut into sentences,
//! clauses and list items, and turned into changes to the profile in the order said —
//! additions, removals ("not Mondays", "drop French") and replacements ("actually only
//! weekends"). Deterministic and offline: the same words always give the same changes.

pub mod lexicon;
pub mod normalise;
pub mod phrases;
pub mod place;
pub mod text;
pub mod when;

use serde::{Deserialize, Serialize};

use lexicon::Lexicon;
use phrases::Open;
pub use place::Firmness;
use text::{clauses, fold, items, plain, sentences, words, Word};

/// What the interview asks about. `Travel` rides along with `Location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Skills,
    Languages,
    Availability,
    Location,
    Travel,
    Causes,
}

/// The profile's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Skills,
    Languages,
    Days,
    Times,
    Causes,
}

/// One change a message makes, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(Field, String),
    Remove(Field, String),
    /// "only weekends", "solo hablo español": the field becomes exactly these.
    Only(Field, Vec<String>),
    Location(String, Firmness),
    Travel(bool),
}

/// Everything one message says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub changes: Vec<Change>,
    /// "that's all", "eso es todo": stop asking.
    pub finished: bool,
    /// "I'd rather not say where I live": these questions were answered with nothing.
    pub declined: Vec<Slot>,
    /// "not sure", "no": a refusal that does not say which question it answers.
    pub declined_unsaid: bool,
    /// Written in Spanish (`Some(true)`) or English (`Some(false)`); `None` when too short to
    /// tell.
    pub spanish: Option<bool>,
}

/// Longer messages are read up to here: enough for any intake answer, and a bound on the
/// time a turn takes.
const MAX_CHARS: usize = 4000;

fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Reads one message given what the bot asked just before it.
pub fn read(text: &str, asked: &[Slot]) -> Reading {
    let text = cut(text);
    let ask = |s: Slot| asked.contains(&s);
    let capitals = uses_capitals(text);
    let mut r = Reading {
        spanish: spanish(text),
        finished: finished(text),
        ..Reading::default()
    };
    let all = sentences(text);
    let cued: Vec<Option<(String, Firmness)>> = all
        .iter()
        .map(|s| place::cued(s, capitals, &known_word))
        .collect();
    // A place said on its own counts only in answer to the question, once.
    let mut bare_allowed = ask(Slot::Location) && cued.iter().all(Option::is_none);
    for (sentence, cued) in all.into_iter().zip(cued) {
        let mut place = cued;
        if bare_allowed && !declines(sentence) {
            place = place::bare(sentence, capitals, &known_word).map(|p| (p, Firmness::Firm));
            bare_allowed = place.is_none();
        }
        if let Some((p, f)) = &place {
            r.changes.push(Change::Location(p.clone(), *f));
        }
        if let Some(t) = place::travel(sentence) {
            r.changes.push(Change::Travel(t));
        }
        let cause = cause_cue(sentence);
        if let Some((_, phrase)) = cause {
            for t in phrases::list(phrase, Open::Causes) {
                r.changes.push(Change::Add(Field::Causes, t));
            }
        }
        for clause in clauses(sentence) {
            let in_place = place
                .as_ref()
                .is_some_and(|(p, _)| p.contains(clause.trim()) || clause.contains(p.as_str()))
                || place::has_cue(clause);
            let in_cause = cause.is_some_and(|(cue, phrase)| {
                overlaps(clause, cue, sentence) || overlaps(clause, phrase, sentence)
            });
            read_clause(clause, asked, in_place, in_cause, &mut r);
        }
    }
    r.changes = without_repeats(r.changes);
    r
}

/// Drops an addition that repeats the last change made to the same value ("I'm a
/// certified interpreter" found as an item and as an introduced trade).
fn without_repeats(changes: Vec<Change>) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for c in changes {
        if let Change::Add(field, v) = &c {
            let last = out.iter().rev().find(|o| match o {
                Change::Add(f, x) | Change::Remove(f, x) => f == field && x == v,
                Change::Only(f, _) => f == field,
                _ => false,
            });
            if last == Some(&c) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn read_clause(clause: &str, asked: &[Slot], in_place: bool, in_cause: bool, r: &mut Reading) {
    let ask = |s: Slot| asked.contains(&s);
    // "Good morning!", "Buenas tardes": a greeting, not a time of day.
    if greeting(clause) {
        return;
    }
    let w = words(clause);
    let only = w.iter().any(|x| {
        matches!(
            x.key.as_str(),
            "only" | "just" | "solo" | "solamente" | "instead" | "unicamente"
        )
    });
    let open_causes = (ask(Slot::Causes) && !ask(Slot::Skills) && !in_place) || in_cause;
    // Languages ("Ukrainian refugees" names a cause, not a language the person speaks).
    let lang_hits = lexicon::find(&w, Lexicon::Languages);
    let langs: Vec<(String, usize)> = lang_hits
        .iter()
        .filter(|h| language_meant(&w, h, ask(Slot::Languages)))
        .filter(|h| !(open_causes && describes_people(&w, h)))
        .filter(|h| !h.value.is_empty())
        .map(|h| (h.value.to_owned(), h.start))
        .collect();
    emit(r, Field::Languages, &langs, &w, only, false);
    // Days and times.
    let talking_time = ask(Slot::Availability)
        || w.iter().any(|x| {
            matches!(
                x.key.as_str(),
                "free"
                    | "available"
                    | "availability"
                    | "libre"
                    | "disponible"
                    | "can"
                    | "work"
                    | "works"
                    | "best"
            )
        });
    let when = when::find(&w, talking_time);
    let days: Vec<(String, usize)> = when
        .iter()
        .flat_map(|h| h.days.iter().map(|d| (d.to_string(), h.at)))
        .collect();
    let times: Vec<(String, usize)> = when
        .iter()
        .flat_map(|h| h.times.iter().map(|t| (t.to_string(), h.at)))
        .collect();
    emit(r, Field::Days, &days, &w, only, true);
    emit(r, Field::Times, &times, &w, only, true);
    let travel = place::travel(clause).is_some();
    let consumed = in_place || in_cause || travel || !lang_hits.is_empty() || !when.is_empty();
    if !consumed && ask(Slot::Travel) {
        if let Some(yes) = place::travel_answer(clause) {
            r.changes.push(Change::Travel(yes));
            return;
        }
    }
    if !consumed && declines(clause) {
        match declined_topic(&w) {
            Some(s) if !r.declined.contains(&s) => r.declined.push(s),
            Some(_) => {}
            None => r.declined_unsaid = true,
        }
        return;
    }
    // "... im a barber i speak ...": a trade introduced anywhere, even without punctuation.
    for phrase in introduced(clause, &w) {
        for t in phrases::terms(phrase, Open::Skills) {
            r.changes.push(Change::Add(Field::Skills, t));
        }
    }
    if finished(clause) || travel {
        return;
    }
    if in_cause {
        return;
    }
    // Skills and causes: open vocabulary where asked, known terms anywhere.
    let open_skills = ask(Slot::Skills) || skill_cue(&w);
    let can_list = text::seq_at(&w, 0, "i can") > 0 || text::seq_at(&w, 0, "can") > 0;
    for item in items(clause) {
        let iw = words(item);
        if place::yes_no(item).is_some() {
            continue;
        }
        let other = lexicon::find(&iw, Lexicon::Languages)
            .iter()
            .any(|h| !(open_causes && describes_people(&iw, h)))
            || !when::find(&iw, talking_time).is_empty()
            || spoken_language_item(&iw);
        let negated = negation_outside_terms(&iw);
        if negated {
            // "remove immigration" edits the causes at any time; "I don't have kids" is not
            // about them unless causes are the subject.
            let edit = iw
                .iter()
                .any(|x| EDITS.contains(&x.key.as_str()) || x.key == "off");
            for (field, lexicon) in [
                (Field::Skills, Lexicon::Skills),
                (Field::Causes, Lexicon::Causes),
            ] {
                if field == Field::Causes && !open_causes && !edit {
                    continue;
                }
                for v in lexicon::values(&iw, lexicon) {
                    r.changes.push(Change::Remove(field, v));
                }
            }
            continue;
        }
        let mut add = |field: Field, values: Vec<String>| {
            for v in values {
                r.changes.push(Change::Add(field, v));
            }
        };
        if open_skills && !other && !in_place {
            let terms = phrases::terms(item, Open::Skills);
            // "I can cook and clean": the second verb is a skill too.
            let bare_verb = can_list
                && iw.len() == 1
                && !terms.is_empty()
                && lexicon::find(&iw, Lexicon::Skills).is_empty();
            if bare_verb {
                add(Field::Skills, vec![phrases::gerund(&iw[0].key)]);
            } else {
                add(Field::Skills, terms);
            }
        } else if open_causes && !other && !in_place {
            // A lone name said while the place is asked is more likely a place ("I work in
            // Manhattan").
            let lone = iw.len() == 1 && lexicon::find(&iw, Lexicon::Causes).is_empty();
            let terms: Vec<String> = phrases::terms(item, Open::Causes)
                .into_iter()
                .filter(|t| {
                    !(ask(Slot::Location)
                        && !t.contains(' ')
                        && (lone || iw.iter().any(|x| x.capitalised() && x.key == *t)))
                })
                .collect();
            add(Field::Causes, terms);
        } else if !open_causes {
            let mut skills = lexicon::values(&iw, Lexicon::Skills);
            if iw.iter().any(|x| x.raw == "IT") {
                skills.push("tech".into());
            }
            add(Field::Skills, skills);
            // An item that is only a cause ("Veterans", said late) is one.
            add(Field::Causes, phrases::only_known(item, Open::Causes));
        }
    }
}

/// A language name used of people ("Ukrainian refugees", "the Vietnamese community").
fn describes_people(w: &[Word<'_>], h: &lexicon::Hit) -> bool {
    const PEOPLE: &[&str] = &[
        "community",
        "communities",
        "families",
        "family",
        "refugee",
        "refugees",
        "immigrant",
        "immigrants",
        "people",
        "kids",
        "children",
        "youth",
        "speakers",
        "speaking",
        "women",
        "men",
        "elders",
        "seniors",
        "students",
        "neighbors",
        "neighbours",
        "folks",
        "migrants",
        "asylum",
        "diaspora",
        "workers",
        "moms",
        "mothers",
        "veterans",
        "newcomers",
        "families'",
    ];
    w.get(h.end)
        .is_some_and(|n| PEOPLE.contains(&n.key.as_str()))
}

/// "little bit Ilocano", "conversational Hmong": a language the interviewer has no code for,
/// said as one.
fn spoken_language_item(w: &[Word<'_>]) -> bool {
    w.iter().any(|x| {
        matches!(
            x.key.as_str(),
            "conversational"
                | "fluent"
                | "native"
                | "speak"
                | "speaks"
                | "basic"
                | "bilingual"
                | "hablo"
        )
    }) || (w.len() <= 4
        && w.windows(2)
            .any(|p| p[0].key == "little" && p[1].key == "bit"))
}

/// A negation that is not part of a known term ("sin hogar" is homelessness, not a "no").
fn negation_outside_terms(w: &[Word<'_>]) -> bool {
    let mut covered = vec![false; w.len()];
    for l in [Lexicon::Skills, Lexicon::Causes, Lexicon::Languages] {
        for h in lexicon::find(w, l) {
            covered[h.start..h.end].iter_mut().for_each(|c| *c = true);
        }
    }
    let take_off = w.iter().any(|x| x.key == "take") && w.iter().any(|x| x.key == "off");
    take_off
        || w.iter()
            .enumerate()
            .any(|(i, x)| !covered[i] && negation(&x.key))
}

/// Which question a refusal is about, when it says ("I'd rather not say where I live").
fn declined_topic(w: &[Word<'_>]) -> Option<Slot> {
    w.iter().find_map(|x| match x.key.as_str() {
        "live" | "where" | "location" | "address" | "based" | "vivo" | "donde" => {
            Some(Slot::Location)
        }
        "job" | "work" | "skills" | "experience" | "trabajo" => Some(Slot::Skills),
        "language" | "languages" | "idiomas" => Some(Slot::Languages),
        "schedule" | "availability" | "days" | "horario" => Some(Slot::Availability),
        "cause" | "causes" | "causas" => Some(Slot::Causes),
        _ => None,
    })
}

/// Openings anywhere in a clause that introduce a trade ("im a barber", "I work as a cook"),
/// with the words that follow up to the next pronoun or joiner.
fn introduced<'a>(clause: &'a str, w: &[Word<'a>]) -> Vec<&'a str> {
    const CUES: &[&[&str]] = &[
        &["i'm", "a"],
        &["i'm", "an"],
        &["im", "a"],
        &["im", "an"],
        &["i", "am", "a"],
        &["i", "am", "an"],
        &["work", "as", "a"],
        &["work", "as", "an"],
        &["worked", "as", "a"],
        &["i", "was", "a"],
        &["i've", "been", "a"],
        &["ive", "been", "a"],
    ];
    const ENDS: &[&str] = &[
        "i", "im", "i'm", "and", "but", "who", "that", "so", "because", "with", "my", "we", "you",
        "for", "at", "in", "from", "living", "based", "speak", "can", "y", "and", "or", "since",
        "to", "by", "of", "on", "who's", "which",
    ];
    let mut out = Vec::new();
    for i in 0..w.len() {
        // Only cues in the middle of a clause; one at the start is the clause's own item.
        if i == 0 {
            continue;
        }
        let Some(cue) = CUES
            .iter()
            .find(|c| w.len() > i + c.len() && c.iter().zip(&w[i..]).all(|(p, x)| x.key == *p))
        else {
            continue;
        };
        let from = i + cue.len();
        let to = (from..w.len().min(from + 4))
            .find(|j| ENDS.contains(&w[*j].key.as_str()) || w[*j].is_punct())
            .unwrap_or(w.len().min(from + 4));
        if to > from {
            let start = w[from].raw.as_ptr() as usize - clause.as_ptr() as usize;
            let last = &w[to - 1];
            let end = last.raw.as_ptr() as usize - clause.as_ptr() as usize + last.raw.len();
            out.push(&clause[start..end]);
        }
    }
    out
}

/// Words that edit the profile ("drop French", "please remove immigration"): negations
/// that may be said of anything, at any time.
const EDITS: &[&str] = &[
    "drop", "remove", "delete", "minus", "scratch", "forget", "quita", "quitar",
];

/// Words that say the opposite of what follows them in a clause (with [`EDITS`]).
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "don't",
    "dont",
    "doesn't",
    "doesnt",
    "can't",
    "cant",
    "cannot",
    "never",
    "without",
    "except",
    "excluding",
    "nothing",
    "sin",
    "excepto",
    "menos",
    "ni",
    "nunca",
    "nor",
    "neither",
    "isn't",
    "aren't",
    "won't",
    "wont",
    "besides",
    "exclude",
];

fn negation(key: &str) -> bool {
    NEGATIONS.contains(&key) || EDITS.contains(&key)
}

/// "any day but weekends": "but" after these means "except".
fn but_except(w: &[Word<'_>], i: usize) -> bool {
    w[i].key == "but"
        && i > 0
        && matches!(
            w[i - 1].key.as_str(),
            "day" | "time" | "anytime" | "everyday" | "week"
        )
}

/// Words that, said of days or times, mean being busy then ("I work weekdays").
const BUSY: &[&str] = &["busy", "working", "occupied", "ocupado", "ocupada"];

/// After a day or language: "Tuesdays don't work", "French is out".
const AFTER_NEGATIONS: &[&[&str]] = &[
    &["doesn't", "work"],
    &["doesnt", "work"],
    &["don't", "work"],
    &["dont", "work"],
    &["won't", "work"],
    &["wont", "work"],
    &["is", "out"],
    &["are", "out"],
    &["not", "anymore"],
    &["no", "good"],
    &["are", "bad"],
    &["is", "bad"],
    &["are", "busy"],
    &["is", "busy"],
    &["no", "longer"],
    &["not", "good"],
    &["don't", "suit"],
    &["doesn't", "suit"],
    &["rusty"],
    &["tricky"],
    &["difficult"],
    &["hard"],
    &["complicated"],
    &["not", "ideal"],
    &["not", "great"],
    &["remove", "it"],
    &["drop", "it"],
    &["delete", "it"],
    &["take", "it", "off"],
];

fn negated_at(w: &[Word<'_>], at: usize, about_time: bool) -> bool {
    let before = &w[..at.min(w.len())];
    if before
        .iter()
        .enumerate()
        .any(|(i, x)| negation(&x.key) || but_except(w, i))
    {
        return true;
    }
    if about_time {
        let modal = before.iter().any(|x| {
            matches!(
                x.key.as_str(),
                "can" | "could" | "free" | "available" | "libre"
            )
        });
        let busy = before.iter().enumerate().any(|(i, x)| {
            BUSY.contains(&x.key.as_str())
                || (matches!(x.key.as_str(), "work" | "trabajo")
                    && i > 0
                    && matches!(before[i - 1].key.as_str(), "i" | "we" | "at" | "yo"))
        });
        if busy && !modal {
            return true;
        }
    }
    let after: Vec<&str> = w[(at + 1).min(w.len())..]
        .iter()
        .map(|x| x.key.as_str())
        .take(6)
        .collect();
    AFTER_NEGATIONS
        .iter()
        .any(|seq| after.windows(seq.len()).any(|win| win == *seq))
}

/// Pushes what a clause says of one list: additions and removals in the order said, or, with
/// "only", the list replaced by what is not negated.
fn emit(
    r: &mut Reading,
    field: Field,
    found: &[(String, usize)],
    w: &[Word<'_>],
    only: bool,
    about_time: bool,
) {
    if found.is_empty() {
        return;
    }
    let mut kept: Vec<String> = Vec::new();
    let mut changes = Vec::new();
    for (v, at) in found {
        if negated_at(w, *at, about_time) {
            changes.push(Change::Remove(field, v.clone()));
        } else {
            if !kept.contains(v) {
                kept.push(v.clone());
            }
            changes.push(Change::Add(field, v.clone()));
        }
    }
    if only && !kept.is_empty() {
        r.changes.push(Change::Only(field, kept));
        r.changes.extend(
            changes
                .into_iter()
                .filter(|c| matches!(c, Change::Remove(..))),
        );
    } else {
        r.changes.extend(changes);
    }
}

/// A language name that means the language: not "I'm Irish" (a nationality), and "polish"
/// in lower case only where languages are the subject.
fn language_meant(w: &[Word<'_>], h: &lexicon::Hit, asked: bool) -> bool {
    let prev = h.start.checked_sub(1).map(|p| w[p].key.as_str());
    let next = w.get(h.end).map(|x| x.key.as_str());
    if matches!(
        prev,
        Some("i'm" | "im" | "am" | "we're" | "is" | "are" | "soy")
    ) && !matches!(next, Some("speaker" | "native" | "fluent"))
        && !asked
    {
        return false;
    }
    !(h.value == "pl"
        && !w[h.start].capitalised()
        && !asked
        && !w.iter().any(|x| x.key.starts_with("speak")))
}

/// Openings that introduce what someone does ("I'm a welder", "I work as", "soy abogada").
fn skill_cue(w: &[Word<'_>]) -> bool {
    let keys: Vec<&str> = w
        .iter()
        .filter(|x| !x.is_punct())
        .map(|x| x.key.as_str())
        .collect();
    let mut k: &[&str] = &keys;
    while let Some(first) = k.first() {
        if matches!(
            *first,
            "and" | "so" | "but" | "hi" | "also" | "well" | "oh" | "hey" | "y"
        ) {
            k = &k[1..];
        } else {
            break;
        }
    }
    let starts = |seq: &[&str]| k.len() > seq.len() && k[..seq.len()] == *seq;
    let lower_next = |n: usize| {
        w.iter()
            .filter(|x| !x.is_punct())
            .nth(keys.len() - k.len() + n)
            .is_some_and(|x| !x.capitalised())
    };
    starts(&["i'm", "a"])
        || starts(&["i'm", "an"])
        || starts(&["im", "a"])
        || starts(&["im", "an"])
        || starts(&["i", "am", "a"])
        || starts(&["i", "am", "an"])
        || starts(&["i", "work", "as"])
        || starts(&["i", "worked", "as"])
        || starts(&["i", "was", "a"])
        || starts(&["i", "used", "to"])
        || starts(&["i've", "been"])
        || starts(&["i", "have", "been"])
        || starts(&["soy"])
        || starts(&["trabajo", "como"])
        || starts(&["trabajo", "de"])
        || starts(&["trabajo", "en"])
        || (starts(&["i", "am"]) && lower_next(2))
        || (starts(&["i'm"]) && lower_next(1) && k.len() <= 5)
        || keys
            .windows(2)
            .any(|p| p == ["by", "trade"] || p == ["a", "living"])
        || (keys.len() == 2 && keys[1] == "here")
}

const CAUSE_CUES: &[&str] = &[
    "care most about",
    "care deeply about",
    "care about",
    "cares about",
    "passionate about",
    "interested in",
    "matter to me",
    "matters to me",
    "matter most",
    "matters most",
    "close to my heart",
    "causes",
    "cause",
    "want to help",
    "me importa",
    "me importan",
    "me interesa",
    "me interesan",
    "me preocupa",
    "causas",
    "causa",
];

/// "I care about X" or "X is what I care about": the cue and the text naming the causes.
fn cause_cue(sentence: &str) -> Option<(&str, &str)> {
    let w = words(sentence);
    for i in 0..w.len() {
        for cue in CAUSE_CUES {
            let n = text::seq_at(&w, i, cue);
            if n == 0 {
                continue;
            }
            let offset = |x: &Word<'_>| x.raw.as_ptr() as usize - sentence.as_ptr() as usize;
            let start = offset(&w[i]);
            let last = &w[i + n - 1];
            let end = offset(last) + last.raw.len();
            let after = sentence[end..]
                .trim_start_matches([':', ' ', ',', '-'])
                .trim();
            if after.chars().any(char::is_alphabetic)
                && !matches!(fold(after).as_str(), "most" | "the most")
            {
                return Some((&sentence[start..end], after));
            }
            let before = sentence[..start].trim_end();
            let mut b = before;
            for tail in [
                "what i", "what we", "is", "are", "really", "most", "i", "what",
            ] {
                let t = fold(b);
                if t.ends_with(&format!(" {tail}")) || t == tail {
                    b = b[..b.len() - tail.len()].trim_end();
                }
            }
            if b.chars().any(char::is_alphabetic) {
                return Some((&sentence[start..end], b));
            }
        }
    }
    None
}

fn overlaps(clause: &str, part: &str, sentence: &str) -> bool {
    let base = sentence.as_ptr() as usize;
    let (a0, a1) = (
        clause.as_ptr() as usize - base,
        clause.as_ptr() as usize - base + clause.len(),
    );
    let (b0, b1) = (
        part.as_ptr() as usize - base,
        part.as_ptr() as usize - base + part.len(),
    );
    a0 < b1 && b0 < a1
}

/// Any word the interviewer knows as something other than a place.
fn known_word(key: &str) -> bool {
    let w = [Word {
        raw: key,
        key: key.to_owned(),
    }];
    [Lexicon::Languages, Lexicon::Skills, Lexicon::Causes]
        .iter()
        .any(|l| !lexicon::find(&w, *l).is_empty())
        || !when::find(&w, true).is_empty()
}

/// Whether the message writes names with capitals (then a place is its capitalised words).
fn uses_capitals(text: &str) -> bool {
    sentences(text).iter().any(|s| {
        words(s).iter().skip(1).any(|w| {
            w.capitalised() && !matches!(w.key.as_str(), "i" | "i'm" | "i've" | "i'd" | "i'll")
        })
    })
}

/// A clause that only greets.
fn greeting(clause: &str) -> bool {
    const GREETINGS: &[&str] = &[
        "hi",
        "hello",
        "hey",
        "hiya",
        "howdy",
        "hi there",
        "hello there",
        "hey there",
        "good morning",
        "good afternoon",
        "good evening",
        "greetings",
        "hola",
        "buenas",
        "buenos dias",
        "buenas tardes",
        "buenas noches",
        "hi all",
        "hello again",
        "yo",
    ];
    GREETINGS.contains(&plain(clause).as_str())
}

/// "that's all", "nothing else", "eso es todo".
fn finished(text: &str) -> bool {
    const DONE: &[&str] = &[
        "thats all",
        "thats everything",
        "thats it",
        "that is all",
        "that is everything",
        "nothing else",
        "all done",
        "im done",
        "eso es todo",
        "nada mas",
        "es todo",
        "done",
        "no thats all",
        "no thats it",
        "no nothing else",
        "nope thats it",
    ];
    let p = plain(text);
    DONE.iter()
        .any(|d| p == *d || (p.starts_with(d) && p.split(' ').count() <= 8))
        || clauses(text)
            .iter()
            .any(|c| DONE.contains(&plain(c).as_str()))
}

/// "I'd rather not say", "none", "not much experience".
fn declines(clause: &str) -> bool {
    const NONE: &[&str] = &[
        "id rather not",
        "rather not say",
        "prefer not to say",
        "prefer not to answer",
        "not much experience",
        "no experience",
        "nothing special",
        "no idea",
        "not sure",
        "dont know",
        "prefiero no decir",
        "prefiero no",
        "no preference",
        "i dont have any",
    ];
    /// Said alone.
    const BARE: &[&str] = &[
        "none",
        "nothing",
        "n a",
        "na",
        "idk",
        "skip",
        "pass",
        "no",
        "nope",
        "not really",
        "ninguna",
        "ninguno",
        "nada",
        "no se",
        "paso",
        "none really",
        "nothing really",
        "not applicable",
        "no thanks",
        "nah",
        "no sorry",
        "not that i can think of",
    ];
    let p = plain(clause);
    BARE.contains(&p.as_str())
        || NONE
            .iter()
            .any(|n| p == *n || p.starts_with(&format!("{n} ")))
}

/// Counts words only Spanish or only English uses.
fn spanish(text: &str) -> Option<bool> {
    const ES: &[&str] = &[
        "hola", "soy", "hablo", "puedo", "vivo", "estoy", "los", "las", "por", "que", "gracias",
        "tengo", "trabajo", "semana", "libre", "muy", "pero", "tambien", "para", "con", "una",
        "del", "espanol", "ingles", "y", "el", "la", "mi", "me", "sabados", "domingos", "lunes",
        "mananas", "tardes", "noches", "es", "solo", "como", "ayudar", "quiero",
    ];
    const EN: &[&str] = &[
        "i", "i'm", "im", "the", "and", "my", "is", "are", "can", "speak", "live", "free", "on",
        "at", "to", "with", "weekends", "yes", "am", "in", "of", "a", "for", "it",
    ];
    let keys: Vec<String> = words(text).into_iter().map(|w| w.key).collect();
    let es = keys.iter().filter(|k| ES.contains(&k.as_str())).count();
    let en = keys.iter().filter(|k| EN.contains(&k.as_str())).count();
    if es >= 2 && es > en {
        Some(true)
    } else if en >= 2 && en > es {
        Some(false)
    } else {
        None
    }
}

/// The known terms a search question names ("who speaks Vietnamese and can drive on
/// weekends?"), for finding people by their profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub causes: Vec<String>,
    pub days: Vec<String>,
    pub times: Vec<String>,
}

pub fn terms(question: &str) -> Terms {
    let w = words(cut(question));
    let mut t = Terms {
        skills: lexicon::values(&w, Lexicon::Skills),
        languages: lexicon::values(&w, Lexicon::Languages),
        causes: lexicon::values(&w, Lexicon::Causes),
        ..Terms::default()
    };
    for h in when::find(&w, false) {
        t.days.extend(h.days.iter().map(|d| d.to_string()));
        t.times.extend(h.times.iter().map(|d| d.to_string()));
    }
    for list in [
        &mut t.skills,
        &mut t.languages,
        &mut t.causes,
        &mut t.days,
        &mut t.times,
    ] {
        list.sort();
        list.dedup();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_and_negations_come_out_in_order() {
        let r = read("Actually drop French, it's too rusty", &[]);
        assert_eq!(
            r.changes,
            vec![Change::Remove(Field::Languages, "fr".into())]
        );
        let r = read("actually only weekends now", &[]);
        assert_eq!(
            r.changes,
            vec![Change::Only(Field::Days, vec!["sat".into(), "sun".into()])]
        );
        let r = read("I work weekdays so weekends only", &[Slot::Availability]);
        assert!(
            r.changes
                .contains(&Change::Only(Field::Days, vec!["sat".into(), "sun".into()])),
            "{r:?}"
        );
        let r = read("Fargo.", &[Slot::Location, Slot::Causes]);
        assert_eq!(
            r.changes,
            vec![Change::Location("Fargo".into(), Firmness::Firm)]
        );
        let r = read(
            "I can't drive but I'm a certified interpreter",
            &[Slot::Skills],
        );
        assert_eq!(
            r.changes,
            vec![
                Change::Remove(Field::Skills, "driving".into()),
                Change::Add(Field::Skills, "translation".into())
            ]
        );
        assert!(read("that's everything", &[]).finished);
        assert_eq!(read("Hola, soy enfermera", &[]).spanish, Some(true));
        assert_eq!(read("Good morning!", &[Slot::Availability]).changes, vec![]);
        let r = read("please take driving off", &[]);
        assert_eq!(
            r.changes,
            vec![Change::Remove(Field::Skills, "driving".into())]
        );
    }
}
