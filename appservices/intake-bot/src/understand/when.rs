//! When someone is free: days (names, typos, abbreviations, ranges, "weekdays", "weekends")
//! and parts of the day (words, "after work", clock times and ranges such as "between noon
//! and 4").

use super::lexicon::{word_matches, ByFirst};
use super::text::Word;
use crate::profile::{DAYS, TIMES};

/// Days and parts of the day one expression names, and where it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhenHit {
    pub days: Vec<&'static str>,
    pub times: Vec<&'static str>,
    pub at: usize,
}

const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];
const WEEKEND: &[&str] = &["sat", "sun"];
const DAYTIME: &[&str] = &["morning", "afternoon"];
const ALL_DAY: &[&str] = &["morning", "afternoon", "evening"];

/// `(pattern words, days, times, weak)`. A weak expression ("late", "early", "days") counts
/// only where availability is being talked about.
type Expr = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

const EXPRESSIONS: &[Expr] = &[
    ("monday", &["mon"], &[], false),
    ("tuesday", &["tue"], &[], false),
    ("wednesday", &["wed"], &[], false),
    ("thursday", &["thu"], &[], false),
    ("friday", &["fri"], &[], false),
    ("saturday", &["sat"], &[], false),
    ("sunday", &["sun"], &[], false),
    ("lunes", &["mon"], &[], false),
    ("martes", &["tue"], &[], false),
    ("miercoles", &["wed"], &[], false),
    ("jueves", &["thu"], &[], false),
    ("viernes", &["fri"], &[], false),
    ("sabado", &["sat"], &[], false),
    ("domingo", &["sun"], &[], false),
    ("mon", &["mon"], &[], true),
    ("tue", &["tue"], &[], true),
    ("tues", &["tue"], &[], true),
    ("wed", &["wed"], &[], true),
    ("weds", &["wed"], &[], true),
    ("thu", &["thu"], &[], true),
    ("thur", &["thu"], &[], true),
    ("thurs", &["thu"], &[], true),
    ("fri", &["fri"], &[], true),
    ("sat", &["sat"], &[], true),
    ("sun", &["sun"], &[], true),
    ("weekday*", WEEKDAYS, &[], false),
    ("week days", WEEKDAYS, &[], false),
    ("during the week", WEEKDAYS, &[], false),
    ("entre semana", WEEKDAYS, &[], false),
    ("dias de semana", WEEKDAYS, &[], false),
    ("weeknight*", WEEKDAYS, &["evening"], false),
    ("weekend*", WEEKEND, &[], false),
    ("fin de semana", WEEKEND, &[], false),
    ("fines de semana", WEEKEND, &[], false),
    ("every day", &DAYS, &[], false),
    ("everyday", &DAYS, &[], false),
    ("any day", &DAYS, &[], false),
    ("daily", &DAYS, &[], false),
    ("all week", &DAYS, &[], false),
    ("todos los dias", &DAYS, &[], false),
    ("cualquier dia", &DAYS, &[], false),
    ("7 days", &DAYS, &[], false),
    ("morning", &[], &["morning"], false),
    ("early", &[], &["morning"], true),
    ("before work", &[], &["morning"], false),
    ("manana", &[], &["morning"], true),
    ("afternoon", &[], &["afternoon"], false),
    ("after school", &[], &["afternoon"], false),
    ("lunch*", &[], &["afternoon"], false),
    ("midday", &[], &["afternoon"], false),
    ("tarde", &[], &["afternoon"], true),
    ("evening", &[], &["evening"], false),
    ("after work", &[], &["evening"], false),
    ("after dinner", &[], &["evening"], false),
    ("late", &[], &["evening"], true),
    ("despues del trabajo", &[], &["evening"], false),
    ("noche", &[], &["evening"], true),
    ("night", &[], &["night"], false),
    ("nite", &[], &["night"], false),
    ("overnight*", &[], &["night"], false),
    ("late night*", &[], &["night"], false),
    ("madrugada", &[], &["night"], false),
    ("daytime", &[], DAYTIME, false),
    ("school hours", &[], DAYTIME, false),
    ("business hours", &[], DAYTIME, false),
    ("office hours", &[], DAYTIME, false),
    ("working hours", &[], DAYTIME, false),
    ("during the day", &[], DAYTIME, false),
    ("days", &[], DAYTIME, true),
    ("all day", &[], ALL_DAY, false),
    ("todo el dia", &[], ALL_DAY, false),
    ("any time", &[], &TIMES, false),
    ("anytime", &[], &TIMES, false),
    ("cualquier hora", &[], &TIMES, false),
];

/// Words that join two days into a range ("mon-fri", "Monday to Thursday", "de lunes a
/// viernes").
const RANGE: &[&str] = &[
    "-", "–", "to", "through", "thru", "till", "until", "a", "al",
];

/// Whether a weak expression is really about time here: "days" is, in "days are better";
/// "early" and "late" are, unless they qualify something else.
fn weak_ok(words: &[Word<'_>], at: usize, end: usize, availability: bool) -> bool {
    let next = words.get(end).map(|w| w.key.as_str());
    match words[at].key.as_str() {
        "days" => {
            matches!(next, None | Some("are" | "is" | "work" | "better" | "only"))
                && !matches!(at.checked_sub(1).map(|p| words[p].key.as_str()), Some(p) if p.chars().all(|c| c.is_ascii_digit()) || matches!(p, "most" | "some" | "few" | "two" | "three" | "many" | "the"))
        }
        "early" | "late" => {
            availability
                && !matches!(next, Some(n) if TIMES.iter().any(|t| n.starts_with(t)) || n.starts_with("childhood"))
        }
        "manana" | "tarde" | "noche" => {
            // "mañana" alone is "tomorrow": only "por la mañana", "las mañanas".
            words[at].key.ends_with('s')
                || matches!(
                    at.checked_sub(1).map(|p| words[p].key.as_str()),
                    Some("la" | "las" | "en" | "por")
                )
        }
        _ => availability,
    }
}

fn matches_at(words: &[Word<'_>], i: usize, pattern: &str) -> Option<usize> {
    let n = pattern.split(' ').count();
    if words.len() - i < n {
        return None;
    }
    let ok = pattern.split(' ').zip(&words[i..]).all(|(p, w)| {
        if n == 1 {
            word_matches(&w.key, p)
        } else {
            w.key == p
                || w.key.strip_suffix('s') == Some(p)
                || p.strip_suffix('*').is_some_and(|x| w.key.starts_with(x))
        }
    });
    ok.then_some(i + n)
}

/// Every day and time expression in a clause, ranges joined. `availability` says the person
/// is talking about when they are free (it was asked, or the clause names a day or time), which
/// lets abbreviations and weak words count.
pub fn find(words: &[Word<'_>], availability: bool) -> Vec<WhenHit> {
    let strong = scan(words, false);
    let context = availability || !strong.is_empty();
    let mut hits = scan(words, context);
    join_ranges(words, &mut hits);
    hits.extend(shorthand(words));
    // "any time after 5" is after 5.
    hits.retain(|h| {
        !(h.times.len() == TIMES.len()
            && words
                .get(h.at + 1 + usize::from(words[h.at].key == "any"))
                .is_some_and(|n| matches!(n.key.as_str(), "after" | "before" | "between" | "from")))
    });
    let has_part = hits.iter().any(|h| !h.times.is_empty());
    hits.extend(clock(words, has_part));
    hits.sort_by_key(|h| h.at);
    hits
}

/// Days in letters: "M/W/F", "Tu/Th", "MWF", "TTh".
fn shorthand(words: &[Word<'_>]) -> Vec<WhenHit> {
    const LETTERS: &[(&str, &str)] = &[
        ("m", "mon"),
        ("tu", "tue"),
        ("w", "wed"),
        ("th", "thu"),
        ("r", "thu"),
        ("f", "fri"),
        ("sa", "sat"),
        ("su", "sun"),
    ];
    const RUNS: &[(&str, &[&str])] = &[
        ("mwf", &["mon", "wed", "fri"]),
        ("tth", &["tue", "thu"]),
        ("tuth", &["tue", "thu"]),
        ("tr", &["tue", "thu"]),
        ("mw", &["mon", "wed"]),
        ("mtwthf", &["mon", "tue", "wed", "thu", "fri"]),
    ];
    let letter = |k: &str| LETTERS.iter().find(|(l, _)| *l == k).map(|(_, d)| *d);
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if let Some((_, days)) = RUNS.iter().find(|(r, _)| *r == w.key) {
            out.push(WhenHit {
                days: days.to_vec(),
                times: Vec::new(),
                at: i,
            });
        }
    }
    // Letters joined by slashes, at least two: "M/W/F".
    let mut i = 0;
    while i < words.len() {
        let mut j = i;
        let mut days = Vec::new();
        while let Some(d) = words.get(j).and_then(|w| letter(&w.key)) {
            days.push(d);
            if words.get(j + 1).is_some_and(|w| w.key == "/") {
                j += 2;
            } else {
                j += 1;
                break;
            }
        }
        if days.len() >= 2 {
            out.push(WhenHit {
                days,
                times: Vec::new(),
                at: i,
            });
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

struct Found {
    hit: WhenHit,
    end: usize,
    day: Option<usize>,
}

fn scan(words: &[Word<'_>], context: bool) -> Vec<WhenHit> {
    found(words, context).into_iter().map(|f| f.hit).collect()
}

/// The expressions a word could start.
fn candidates(word: &str) -> &'static [&'static Expr] {
    static INDEX: std::sync::OnceLock<ByFirst<&'static Expr>> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| ByFirst::new(EXPRESSIONS.iter(), |e| e.0))
        .candidates(word)
}

fn found(words: &[Word<'_>], context: bool) -> Vec<Found> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let best = candidates(&words[i].key)
            .iter()
            .copied()
            .filter_map(|e| matches_at(words, i, e.0).map(|end| (e, end)))
            .filter(|(e, end)| !e.3 || weak_ok(words, i, *end, context))
            .max_by_key(|(e, end)| (*end, words[i].key == e.0));
        match best {
            Some((e, end)) => {
                let day = (e.1.len() == 1)
                    .then(|| DAYS.iter().position(|d| *d == e.1[0]))
                    .flatten();
                out.push(Found {
                    hit: WhenHit {
                        days: e.1.to_vec(),
                        times: e.2.to_vec(),
                        at: i,
                    },
                    end,
                    day,
                });
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// "mon-fri", "Monday to Thursday": the days between, both included.
fn join_ranges(words: &[Word<'_>], hits: &mut Vec<WhenHit>) {
    let found = found(words, true);
    for pair in found.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (Some(da), Some(db)) = (a.day, b.day) else {
            continue;
        };
        if b.hit.at == a.end + 1 && RANGE.contains(&words[a.end].key.as_str()) {
            let mut days = Vec::new();
            let mut d = da;
            loop {
                days.push(DAYS[d]);
                if d == db {
                    break;
                }
                d = (d + 1) % 7;
            }
            hits.push(WhenHit {
                days,
                times: Vec::new(),
                at: a.hit.at,
            });
        }
    }
}

/// A clock time at `i`: hours (0-24) and whether am/pm (or noon, or a 24-hour time) was said.
fn time_at(words: &[Word<'_>], i: usize) -> Option<(u32, bool, usize)> {
    let w = words.get(i)?.key.as_str();
    match w {
        "noon" | "midday" | "mediodia" => return Some((12, true, i + 1)),
        "midnight" | "medianoche" => return Some((24, true, i + 1)),
        _ => {}
    }
    let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
    let suffix = &w[digits.len()..];
    let hour: u32 = digits.parse().ok()?;
    let mut next = i + 1;
    if words.get(next).is_some_and(|w| w.key == ":")
        && words
            .get(next + 1)
            .is_some_and(|w| w.key.len() == 2 && w.key.chars().all(|c| c.is_ascii_digit()))
    {
        next += 2;
    }
    let mut meridiem = match suffix {
        "am" | "a" => Some(false),
        "pm" | "p" => Some(true),
        "" | "ish" | "h" => None,
        _ => return None,
    };
    if meridiem.is_none() {
        match words.get(next).map(|w| w.key.as_str()) {
            Some("am") => (meridiem, next) = (Some(false), next + 1),
            Some("pm") => (meridiem, next) = (Some(true), next + 1),
            Some("a" | "p") if words.get(next + 1).is_some_and(|w| w.key == "m") => {
                meridiem = Some(words[next].key == "p");
                next += 2;
            }
            _ => {}
        }
    }
    const UNITS: &[&str] = &[
        "year",
        "years",
        "yrs",
        "yr",
        "kids",
        "children",
        "miles",
        "mi",
        "km",
        "hours",
        "hrs",
        "hour",
        "minutes",
        "mins",
        "min",
        "people",
        "days",
        "weeks",
        "months",
        "times",
        "x",
        "dollars",
        "bucks",
        "kilometers",
        "blocks",
        "anos",
        "horas",
        "shifts",
        "per",
    ];
    if words
        .get(next)
        .is_some_and(|w| UNITS.contains(&w.key.as_str()))
    {
        return None;
    }
    match (hour, meridiem) {
        (1..=11, Some(pm)) => Some((hour + if pm { 12 } else { 0 }, true, next)),
        (12, Some(pm)) => Some((if pm { 12 } else { 24 }, true, next)),
        (13..=23, None) => Some((hour, true, next)),
        (1..=12, None) => Some((hour, false, next)),
        _ => None,
    }
}

/// A bare hour said first: 1-6 are afternoon or evening hours, 7-11 morning ones.
fn bare_start(h: u32) -> u32 {
    if h <= 6 {
        h + 12
    } else {
        h
    }
}

/// Clock times and ranges as parts of the day. Bare hours ("10 to 2") count only in a range or
/// after a word like "after"; where the clause already names a part of the day, its bare hours
/// are read within it and add nothing.
fn clock(words: &[Word<'_>], has_part: bool) -> Vec<WhenHit> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].key.as_str();
        let lead = matches!(
            word,
            "between"
                | "from"
                | "entre"
                | "after"
                | "past"
                | "before"
                | "until"
                | "till"
                | "by"
                | "at"
                | "around"
                | "about"
                | "desde"
                | "antes"
                | "despues"
        );
        let at = if lead { i + 1 } else { i };
        let at = if words
            .get(at)
            .is_some_and(|w| matches!(w.key.as_str(), "de" | "las" | "la"))
        {
            at + 1
        } else {
            at
        };
        let at = if words.get(at).is_some_and(|w| w.key == "las") {
            at + 1
        } else {
            at
        };
        let Some((t1, explicit1, after1)) = time_at(words, at) else {
            i += 1;
            continue;
        };
        let joiner = words.get(after1).map(|w| w.key.as_str());
        let second = matches!(
            joiner,
            Some("-" | "–" | "to" | "and" | "till" | "until" | "a" | "y")
        )
        .then(|| time_at(words, after1 + 1))
        .flatten();
        let span = match second {
            Some((t2, explicit2, end)) => {
                if !(explicit1 || explicit2) && has_part {
                    i = end;
                    continue;
                }
                let mut start = if explicit1 { t1 } else { bare_start(t1) };
                let stop = if explicit2 {
                    t2
                } else {
                    [t2, t2 + 12, t2 + 24]
                        .into_iter()
                        .find(|e| *e > start)
                        .unwrap_or(t2)
                };
                if !explicit1 && stop > t1 + 12 {
                    start = t1 + 12;
                } else if !explicit1 && start >= stop {
                    start = t1;
                }
                i = end;
                (start, stop)
            }
            None => {
                i = after1;
                if !explicit1 && (!lead || has_part) {
                    continue;
                }
                let t = if explicit1 { t1 } else { bare_start(t1) };
                match word {
                    "after" | "past" | "from" | "desde" | "despues" => {
                        // Open-ended: the part of the day it starts in, and the next only if
                        // two hours of it follow ("after 4" is an afternoon).
                        let p = parts(t, t + 2, true);
                        let p = if p.is_empty() {
                            parts(t, t + 1, false)
                        } else {
                            p
                        };
                        if !p.is_empty() {
                            out.push(WhenHit {
                                days: Vec::new(),
                                times: p,
                                at,
                            });
                        }
                        continue;
                    }
                    "before" | "until" | "till" | "by" | "antes" => (t.saturating_sub(3), t),
                    _ => (t, t + 1),
                }
            }
        };
        // Hours beside a named part of the day only add a part they cover well ("morning
        // until 1pm" is a morning).
        let times = parts(span.0, span.1, has_part);
        if !times.is_empty() {
            out.push(WhenHit {
                days: Vec::new(),
                times,
                at,
            });
        }
    }
    out
}

/// The parts of the day an interval of hours overlaps enough: morning 5-12, afternoon 12-17,
/// evening 17-21, night 21-29 (to 5 the next morning).
fn parts(start: u32, end: u32, strict: bool) -> Vec<&'static str> {
    let (s, e) = (start as i32, end.max(start + 1) as i32);
    let need = if strict { 2 } else { ((e - s) / 2).clamp(1, 2) };
    [
        ("morning", 5, 12),
        ("afternoon", 12, 17),
        ("evening", 17, 21),
        ("night", 21, 29),
    ]
    .into_iter()
    .filter(|(_, a, b)| {
        let overlap = (e.min(*b) - s.max(*a)).max(0) + (e.min(*b - 24) - s.max(*a - 24)).max(0);
        overlap >= need
    })
    .map(|(p, _, _)| p)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::understand::text::words;

    fn when(s: &str) -> (Vec<&'static str>, Vec<&'static str>) {
        let w = words(s);
        let mut d = Vec::new();
        let mut t = Vec::new();
        for h in find(&w, true) {
            d.extend(h.days);
            t.extend(h.times);
        }
        let d = DAYS.iter().copied().filter(|x| d.contains(x)).collect();
        let t = TIMES.iter().copied().filter(|x| t.contains(x)).collect();
        (d, t)
    }

    #[test]
    fn days_and_times_with_typos_ranges_and_clocks() {
        assert_eq!(
            when("wensday and saterday evenigns"),
            (vec!["wed", "sat"], vec!["evening"])
        );
        assert_eq!(when("mon-fri after work").0, WEEKDAYS.to_vec());
        assert_eq!(
            when("Tuesday through Thursday").0,
            vec!["tue", "wed", "thu"]
        );
        assert_eq!(
            when("Between noon and 4 on Fridays"),
            (vec!["fri"], vec!["afternoon"])
        );
        assert_eq!(when("weekdays 9 to 5").1, vec!["morning", "afternoon"]);
        assert_eq!(
            when("tues/thurs 6-9pm"),
            (vec!["tue", "thu"], vec!["evening"])
        );
        assert_eq!(when("10 to 2 on Tuesdays").1, vec!["morning", "afternoon"]);
        assert_eq!(when("after 6pm").1, vec!["evening"]);
        assert_eq!(
            when("de lunes a viernes por la noche"),
            (WEEKDAYS.to_vec(), vec!["evening"])
        );
        assert_eq!(when("I have 2 kids, 34 years old"), (vec![], vec![]));
        assert_eq!(
            when("los sabados y domingos en la tarde"),
            (vec!["sat", "sun"], vec!["afternoon"])
        );
        assert_eq!(
            when("M/W/F after 4"),
            (vec!["mon", "wed", "fri"], vec!["afternoon"])
        );
        assert_eq!(when("TTh mornings"), (vec!["tue", "thu"], vec!["morning"]));
        assert_eq!(when("any time after 5").1, vec!["evening"]);
        assert_eq!(when("Good luck w/ that"), (vec![], vec![]));
    }
}
