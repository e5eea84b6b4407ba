//! A message cut into sentences, clauses, items and words, with the original text kept for
//! what must be reported as said (place names, open-vocabulary phrases).

/// Words and their lower-case, accent-folded form, which every lexicon is written in.
#[derive(Debug, Clone)]
pub struct Word<'a> {
    pub raw: &'a str,
    pub key: String,
}

impl Word<'_> {
    /// Starts with a capital letter (place names in a message written with capitals).
    pub fn capitalised(&self) -> bool {
        self.raw.chars().next().is_some_and(char::is_uppercase)
    }

    pub fn is_punct(&self) -> bool {
        !self.raw.chars().any(char::is_alphanumeric)
    }
}

/// Lower case without accents, with typographic apostrophes made plain: "Español" and
/// "espanol" read the same, as do "can’t" and "can't".
pub fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            '’' | '‘' | '`' => '\'',
            c => c,
        })
        .collect()
}

/// The words of `s`, folded, without apostrophes, one space apart ("Can't, really!" →
/// "cant really"): the form fixed phrases are compared in.
pub fn plain(s: &str) -> String {
    fold(s)
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('\'', ""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words (letters, digits, apostrophes) and the punctuation that joins ranges and lists
/// (`-`, `/`, `&`, `:`) as words of their own, so "mon-fri" is three words.
pub fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    fn push<'a>(out: &mut Vec<Word<'a>>, s: &'a str) {
        let key = fold(s);
        let key = key.trim_matches('\'');
        // "children's" reads as "children" ("that's" stays "that's").
        const CONTRACTIONS: &[&str] = &[
            "that's", "it's", "what's", "there's", "here's", "he's", "she's", "who's", "let's",
            "where's", "name's", "how's",
        ];
        let key = if CONTRACTIONS.contains(&key) {
            key.to_owned()
        } else {
            key.strip_suffix("'s").unwrap_or(key).to_owned()
        };
        if !key.is_empty() {
            out.push(Word { raw: s, key });
        }
    }
    for (i, c) in text.char_indices() {
        let wordy = c.is_alphanumeric() || matches!(c, '\'' | '’');
        match (wordy, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push(&mut out, &text[s..i]);
                start = None;
            }
            _ => {}
        }
        if !wordy && matches!(c, '-' | '–' | '/' | '&' | ':' | '+') {
            push(&mut out, &text[i..i + c.len_utf8()]);
        }
    }
    if let Some(s) = start {
        push(&mut out, &text[s..]);
    }
    out
}

/// How many words of `words`, from `i`, spell `seq` (space-separated, exact): 0 if they do not.
pub fn seq_at(words: &[Word<'_>], i: usize, seq: &str) -> usize {
    let mut n = 0;
    for part in seq.split(' ') {
        match words.get(i + n) {
            Some(w) if w.key == part => n += 1,
            _ => return 0,
        }
    }
    n
}

/// Words after which a full stop does not end a sentence ("St. Cloud", "Mt. Vernon").
const ABBREVIATIONS: &[&str] = &[
    "st", "mt", "ft", "pt", "ste", "dr", "mr", "mrs", "ms", "jr", "sr", "ave", "etc", "vs",
    "approx", "no", "e.g", "i.e", "sta", "sto",
];

/// Sentences: cut at `.`, `!`, `?` and line breaks, but not after an abbreviation or a single
/// letter ("St.", "D.C.", "a.m.") nor inside a number.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut from = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let end = match c {
            '!' | '?' | '\n' | '¡' | '¿' => true,
            '.' => {
                let before = text[from..i]
                    .rsplit(|c: char| !c.is_alphanumeric() && c != '.')
                    .next()
                    .unwrap_or("");
                let next = bytes.get(i + 1).copied();
                let in_number = before.chars().last().is_some_and(|c| c.is_ascii_digit())
                    && next.is_some_and(|b| b.is_ascii_digit());
                let abbreviation = ABBREVIATIONS.contains(&fold(before).as_str())
                    || before.chars().filter(|c| c.is_alphabetic()).count() == 1;
                !(in_number || abbreviation || next.is_some_and(|b| b.is_ascii_alphabetic()))
            }
            _ => false,
        };
        if end {
            push_trimmed(&mut out, &text[from..i]);
            from = i + c.len_utf8();
        }
    }
    push_trimmed(&mut out, &text[from..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '…' | '"' | '('));
    if s.chars().any(char::is_alphanumeric) {
        out.push(s);
    }
}

/// Words that end one clause and start the next: what comes after "but" may say the opposite.
const CLAUSE_BREAKS: &[&str] = &[
    "but", "though", "although", "however", "so", "because", "pero", "aunque", "while",
];

/// Clauses of a sentence: cut at `,`, `;`, `:` (before a space), brackets, dashes between
/// spaces, and at "but", "so", "though"...
pub fn clauses(sentence: &str) -> Vec<&str> {
    let mut cuts = vec![0];
    let mut word_start = None;
    let b = sentence.as_bytes();
    for (i, c) in sentence.char_indices() {
        let spaced = |j: usize| b.get(j).is_none_or(|b| b.is_ascii_whitespace());
        let punct_cut = match c {
            ',' | ';' | '(' | ')' | '—' => true,
            ':' | '-' | '–' => spaced(i + c.len_utf8()) && (c == ':' || i == 0 || spaced(i - 1)),
            _ => false,
        };
        if punct_cut {
            cuts.push(i);
        }
        if c.is_alphabetic() {
            word_start.get_or_insert(i);
        } else if let Some(s) = word_start.take() {
            let word = fold(&sentence[s..i]);
            // "any day but weekends" is one thought: "but" there means "except".
            let after_any = word == "but"
                && matches!(
                    fold(sentence[..s].trim_end()).rsplit(' ').next(),
                    Some("day" | "time" | "anytime" | "everyday" | "week")
                );
            if CLAUSE_BREAKS.contains(&word.as_str()) && s > 0 && !after_any {
                cuts.push(s);
            }
        }
    }
    cuts.push(sentence.len());
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let part = &sentence[w[0]..w[1]];
        push_trimmed(
            &mut out,
            part.trim_start_matches([',', ';', ':', '(', ')', '—', '-', '–']),
        );
    }
    out
}

/// Items of a list: "carpentry, some welding and bike repair" gives three. Cut at commas,
/// "and", "or", "&", "/", "plus" and their Spanish forms.
pub fn items(clause: &str) -> Vec<&str> {
    const JOINERS: &[&str] = &["and", "or", "plus", "y", "e", "o", "also", "as well as"];
    let mut cuts = vec![(0, 0)];
    let mut word_start = None;
    for (i, c) in clause
        .char_indices()
        .chain(std::iter::once((clause.len(), ' ')))
    {
        if matches!(c, ',' | ';' | '&' | '/') {
            cuts.push((i, i + c.len_utf8()));
        }
        if c.is_alphabetic() {
            word_start.get_or_insert(i);
        } else if let Some(s) = word_start.take() {
            if JOINERS.contains(&fold(&clause[s..i]).as_str()) {
                cuts.push((s, i));
            }
        }
    }
    cuts.push((clause.len(), clause.len()));
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        push_trimmed(
            &mut out,
            clause[w[0].1..w[1].0].trim_matches([',', ';', ':']),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_keep_abbreviations_and_numbers() {
        assert_eq!(
            sentences("I live in St. Cloud, MN. Free at 9.30! ok"),
            vec!["I live in St. Cloud, MN", "Free at 9.30", "ok"]
        );
        assert_eq!(
            clauses("weekdays, but not Mondays: afternoons"),
            vec!["weekdays", "but not Mondays", "afternoons"]
        );
        assert_eq!(
            items("carpentry, some welding and bike repair"),
            vec!["carpentry", "some welding", "bike repair"]
        );
        let w: Vec<String> = words("Mon-Fri, 6–9pm; can’t")
            .into_iter()
            .map(|w| w.key)
            .collect();
        assert_eq!(w, vec!["mon", "-", "fri", "6", "–", "9pm", "can't"]);
        assert_eq!(fold("Español, inglés"), "espanol, ingles");
    }
}
