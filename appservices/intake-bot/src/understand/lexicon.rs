//! What the interviewer knows by name: languages (English, Spanish and native names, to ISO
//! 639-1), the skills and causes it folds into one canonical term, and how a word is matched
//! to them (whole words, `*` prefixes, plurals, and small typos).

use std::sync::OnceLock;

use super::text::Word;

/// `(pattern, value)`. A pattern is one to three words in folded form (see `text::fold`); a
/// word ending in `*` matches any word it begins.
pub type Table = &'static [(&'static str, &'static str)];

const LANGUAGES: Table = &[
    ("english", "en"),
    ("ingles", "en"),
    ("anglais", "en"),
    ("englisch", "en"),
    ("spanish", "es"),
    ("espanol", "es"),
    ("castellano", "es"),
    ("espagnol", "es"),
    ("french", "fr"),
    ("francais", "fr"),
    ("frances", "fr"),
    ("german", "de"),
    ("deutsch", "de"),
    ("aleman", "de"),
    ("portuguese", "pt"),
    ("portugues", "pt"),
    ("brazilian portuguese", "pt"),
    ("italian", "it"),
    ("italiano", "it"),
    ("arabic", "ar"),
    ("arabe", "ar"),
    ("العربية", "ar"),
    ("mandarin", "zh"),
    ("chinese", "zh"),
    ("cantonese", "zh"),
    ("chino", "zh"),
    ("mandarin chinese", "zh"),
    ("中文", "zh"),
    ("普通话", "zh"),
    ("廣東話", "zh"),
    ("russian", "ru"),
    ("ruso", "ru"),
    ("русский", "ru"),
    ("hindi", "hi"),
    ("हिन्दी", "hi"),
    ("vietnamese", "vi"),
    ("tieng viet", "vi"),
    ("tagalog", "tl"),
    ("filipino", "tl"),
    ("korean", "ko"),
    ("coreano", "ko"),
    ("한국어", "ko"),
    ("japanese", "ja"),
    ("japones", "ja"),
    ("日本語", "ja"),
    ("polish", "pl"),
    ("polski", "pl"),
    ("ukrainian", "uk"),
    ("українська", "uk"),
    ("somali", "so"),
    ("swahili", "sw"),
    ("kiswahili", "sw"),
    ("farsi", "fa"),
    ("persian", "fa"),
    ("dari", "fa"),
    ("urdu", "ur"),
    ("bengali", "bn"),
    ("bangla", "bn"),
    ("turkish", "tr"),
    ("turkce", "tr"),
    ("haitian creole", "ht"),
    ("creole", "ht"),
    ("kreyol", "ht"),
    ("greek", "el"),
    ("hebrew", "he"),
    ("dutch", "nl"),
    ("nederlands", "nl"),
    ("amharic", "am"),
    ("punjabi", "pa"),
    ("gujarati", "gu"),
    ("tamil", "ta"),
    ("telugu", "te"),
    ("marathi", "mr"),
    ("nepali", "ne"),
    ("burmese", "my"),
    ("thai", "th"),
    ("khmer", "km"),
    ("lao", "lo"),
    ("yoruba", "yo"),
    ("igbo", "ig"),
    ("hausa", "ha"),
    ("zulu", "zu"),
    ("xhosa", "xh"),
    ("afrikaans", "af"),
    ("tigrinya", "ti"),
    ("oromo", "om"),
    ("kurdish", "ku"),
    ("pashto", "ps"),
    ("armenian", "hy"),
    ("georgian", "ka"),
    ("romanian", "ro"),
    ("hungarian", "hu"),
    ("czech", "cs"),
    ("slovak", "sk"),
    ("serbian", "sr"),
    ("croatian", "hr"),
    ("bosnian", "bs"),
    ("bulgarian", "bg"),
    ("albanian", "sq"),
    ("swedish", "sv"),
    ("norwegian", "no"),
    ("danish", "da"),
    ("finnish", "fi"),
    ("icelandic", "is"),
    ("irish", "ga"),
    ("welsh", "cy"),
    ("catalan", "ca"),
    ("basque", "eu"),
    ("galician", "gl"),
    ("malay", "ms"),
    ("indonesian", "id"),
    ("yiddish", "yi"),
    ("quechua", "qu"),
    ("navajo", "nv"),
    ("samoan", "sm"),
    ("tongan", "to"),
    ("maori", "mi"),
    ("lithuanian", "lt"),
    ("latvian", "lv"),
    ("estonian", "et"),
    ("slovenian", "sl"),
    ("macedonian", "mk"),
    ("belarusian", "be"),
    ("kazakh", "kk"),
    ("uzbek", "uz"),
    ("mongolian", "mn"),
    ("tibetan", "bo"),
    ("sinhala", "si"),
    ("malayalam", "ml"),
    ("kannada", "kn"),
    ("kinyarwanda", "rw"),
    ("lingala", "ln"),
    ("wolof", "wo"),
    ("twi", "tw"),
    ("malagasy", "mg"),
    ("shona", "sn"),
    ("esperanto", "eo"),
    // Languages without an ISO 639-1 code: recognised as languages, recorded as none.
    ("hmong", ""),
    ("ilocano", ""),
    ("ilokano", ""),
    ("cebuano", ""),
    ("bisaya", ""),
    ("visayan", ""),
    ("mixtec", ""),
    ("zapotec", ""),
    ("k'iche", ""),
    ("kiche", ""),
    ("patois", ""),
    ("cape verdean", ""),
    ("garifuna", ""),
    ("chuukese", ""),
    ("marshallese", ""),
    ("hawaiian", ""),
    ("cherokee", ""),
    ("hakka", ""),
    ("taishanese", ""),
    ("hokkien", ""),
    ("teochew", ""),
    ("dinka", ""),
    ("nuer", ""),
    ("krio", ""),
    ("tigre", ""),
];

/// Skills folded into one term; anything else a person names is kept as they said it.
const SKILLS: Table = &[
    ("lawyer", "legal"),
    ("legal", "legal"),
    ("paralegal", "legal"),
    ("attorney", "legal"),
    ("law", "legal"),
    ("abogad*", "legal"),
    ("notary", "legal"),
    ("nurse", "medical"),
    ("rn", "medical"),
    ("lpn", "medical"),
    ("cpr", "medical"),
    ("nurse practitioner", "medical"),
    ("with kids", "childcare"),
    ("with children", "childcare"),
    ("nursing", "medical"),
    ("doctor", "medical"),
    ("physician", "medical"),
    ("medical", "medical"),
    ("emt", "medical"),
    ("paramedic", "medical"),
    ("first aid", "medical"),
    ("medic", "medical"),
    ("pharmacist", "medical"),
    ("pharmacy", "medical"),
    ("pharmacy tech*", "medical"),
    ("healthcare", "medical"),
    ("health care", "medical"),
    ("dental", "medical"),
    ("hygienist", "medical"),
    ("dentist", "medical"),
    ("cna", "medical"),
    ("enfermer*", "medical"),
    ("medico", "medical"),
    ("doctora", "medical"),
    ("er physician", "medical"),
    ("drive", "driving"),
    ("driving", "driving"),
    ("driver", "driving"),
    ("have a car", "driving"),
    ("conducir", "driving"),
    ("manejar", "driving"),
    ("chofer", "driving"),
    ("translat*", "translation"),
    ("interpret*", "translation"),
    ("traduc*", "translation"),
    ("counsel*", "counseling"),
    ("therapist", "counseling"),
    ("therapy", "counseling"),
    ("social work*", "counseling"),
    ("listening", "counseling"),
    ("listener", "counseling"),
    ("peer support", "counseling"),
    ("crisis line*", "counseling"),
    ("hotline", "counseling"),
    ("psycholog*", "counseling"),
    ("trabajador* social*", "counseling"),
    ("cook", "cooking"),
    ("cooking", "cooking"),
    ("chef", "cooking"),
    ("kitchen", "cooking"),
    ("baking", "cooking"),
    ("cocin*", "cooking"),
    ("teach*", "teaching"),
    ("tutor*", "teaching"),
    ("educator", "teaching"),
    ("maestr*", "teaching"),
    ("profesor*", "teaching"),
    ("ensen*", "teaching"),
    ("computer*", "tech"),
    ("software", "tech"),
    ("coding", "tech"),
    ("programm*", "tech"),
    ("it support", "tech"),
    ("tech support", "tech"),
    ("web develop*", "tech"),
    ("accounting", "accounting"),
    ("bookkeep*", "accounting"),
    ("accountant", "accounting"),
    ("tax prep*", "accounting"),
    ("contad*", "accounting"),
    ("contabilidad", "accounting"),
    ("childcare", "childcare"),
    ("child care", "childcare"),
    ("babysit*", "childcare"),
    ("nanny", "childcare"),
    ("construction", "construction"),
    ("construccion", "construction"),
    ("carpent*", "construction"),
    ("plumb*", "construction"),
    ("electrician", "construction"),
    ("roofing", "construction"),
    ("handyman", "construction"),
    ("roofer", "construction"),
    ("builder", "construction"),
    ("mason", "construction"),
    ("drywall", "construction"),
    ("painter", "construction"),
    ("handy", "construction"),
    ("contractor", "construction"),
    ("admin", "admin"),
    ("administrative", "admin"),
    ("office work", "admin"),
    ("data entry", "admin"),
    ("reception*", "admin"),
    ("secretar*", "admin"),
    ("sign language", "sign language"),
    ("asl", "sign language"),
    ("bsl", "sign language"),
    ("auslan", "sign language"),
    ("lsf", "sign language"),
    ("lsm", "sign language"),
    ("lengua de senas", "sign language"),
    ("plomer*", "construction"),
    ("carpinter*", "construction"),
    ("electricista", "construction"),
    ("albanil", "construction"),
    ("ninera", "childcare"),
    ("physical therap*", "medical"),
    ("occupational therap*", "medical"),
    ("speech therap*", "medical"),
    ("massage therap*", "massage therapy"),
    ("taxes", "accounting"),
    ("tax return*", "accounting"),
    ("fix bike*", "bike repair"),
    ("bike repair", "bike repair"),
    ("bicycle repair", "bike repair"),
];

/// Causes folded into one term; anything else a person names is kept as they said it.
const CAUSES: Table = &[
    ("homeless*", "housing"),
    ("housing", "housing"),
    ("shelter*", "housing"),
    ("eviction*", "housing"),
    ("tenant*", "housing"),
    ("sleeping rough", "housing"),
    ("habitat for humanity", "housing"),
    ("vivienda", "housing"),
    ("unhoused", "housing"),
    ("sin hogar", "housing"),
    ("immigra*", "immigration"),
    ("immigration", "immigration"),
    ("homelessness", "housing"),
    ("immigrant*", "immigration"),
    ("refugee*", "immigration"),
    ("asylum", "immigration"),
    ("migrant*", "immigration"),
    ("inmigra*", "immigration"),
    ("refugiad*", "immigration"),
    ("deportation", "immigration"),
    ("mental health", "mental health"),
    ("mental wellness", "mental health"),
    ("suicide", "mental health"),
    ("crisis", "mental health"),
    ("depression", "mental health"),
    ("salud mental", "mental health"),
    ("domestic violence", "domestic violence"),
    ("abuse", "domestic violence"),
    ("violencia domestica", "domestic violence"),
    ("dv", "domestic violence"),
    ("food", "food security"),
    ("hunger", "food security"),
    ("food bank*", "food security"),
    ("food pantr*", "food security"),
    ("comida", "food security"),
    ("hambre", "food security"),
    ("youth", "youth"),
    ("kids", "youth"),
    ("children", "youth"),
    ("childrens", "youth"),
    ("teen*", "youth"),
    ("young people", "youth"),
    ("foster", "youth"),
    ("ninos", "youth"),
    ("jovenes", "youth"),
    ("juventud", "youth"),
    ("elder*", "elders"),
    ("senior*", "elders"),
    ("old people", "elders"),
    ("older people", "elders"),
    ("older adults", "elders"),
    ("ancianos", "elders"),
    ("mayores", "elders"),
    ("lgbt*", "lgbtq+"),
    ("queer", "lgbtq+"),
    ("trans", "lgbtq+"),
    ("addiction", "addiction recovery"),
    ("substance", "addiction recovery"),
    ("recovery", "addiction recovery"),
    ("adicciones", "addiction recovery"),
    ("environment*", "environment"),
    ("climate", "environment"),
    ("medio ambiente", "environment"),
    ("education", "education"),
    ("literacy", "education"),
    ("educacion", "education"),
    ("veteran*", "veterans"),
];

/// Words that are real words of their own, never a typo of a known term ("diving" is not
/// "driving", "Germany" is not "German").
const NOT_TYPOS: &[&str] = &[
    "germany",
    "hindu",
    "driven",
    "diving",
    "greet",
    "cooling",
    "sundae",
    "mourning",
    "nursery",
    "medicine",
    "sunny",
    "evenly",
    "spain",
    "italy",
    "russia",
    "poland",
    "korea",
    "china",
    "japan",
    "turkey",
    "polished",
    "seniority",
    "greece",
    "france",
    "daily",
];

/// One known term found: its value and the words it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub value: &'static str,
    pub start: usize,
    pub end: usize,
}

struct Entry {
    words: Vec<&'static str>,
    value: &'static str,
}

/// Patterns grouped by their first letter: every way a word can match one (exact, plural,
/// prefix, typo) keeps the first letter, so a word is compared with its group only. Used by
/// the vocabularies here and by the day and time expressions (`when.rs`).
pub struct ByFirst<T> {
    groups: std::collections::HashMap<char, Vec<T>>,
}

impl<T> ByFirst<T> {
    pub fn new(items: impl IntoIterator<Item = T>, pattern: impl Fn(&T) -> &str) -> Self {
        let mut groups: std::collections::HashMap<char, Vec<T>> = Default::default();
        for item in items {
            if let Some(c) = pattern(&item).chars().next() {
                groups.entry(c).or_default().push(item);
            }
        }
        Self { groups }
    }

    /// The patterns `word` could match.
    pub fn candidates(&self, word: &str) -> &[T] {
        word.chars()
            .next()
            .and_then(|c| self.groups.get(&c))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

type Compiled = ByFirst<Entry>;

fn compile(table: Table) -> Compiled {
    ByFirst::new(
        table.iter().map(|(p, v)| Entry {
            words: p.split(' ').collect(),
            value: v,
        }),
        |e| e.words[0],
    )
}

/// The three vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lexicon {
    Languages,
    Skills,
    Causes,
}

impl Lexicon {
    fn compiled(self) -> &'static Compiled {
        static LANG: OnceLock<Compiled> = OnceLock::new();
        static SKILL: OnceLock<Compiled> = OnceLock::new();
        static CAUSE: OnceLock<Compiled> = OnceLock::new();
        match self {
            Lexicon::Languages => LANG.get_or_init(|| compile(LANGUAGES)),
            Lexicon::Skills => SKILL.get_or_init(|| compile(SKILLS)),
            Lexicon::Causes => CAUSE.get_or_init(|| compile(CAUSES)),
        }
    }
}

/// Whether `word` is `pattern`: exactly, as a plural, as a prefix (`pattern*`), or within a
/// small edit distance (one edit from six letters, two from nine; same first letter).
pub fn word_matches(word: &str, pattern: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return word.starts_with(prefix) || typo_of_prefix(word, prefix);
    }
    if word == pattern
        || word.strip_suffix('s') == Some(pattern)
        || word.strip_suffix("es") == Some(pattern)
    {
        return true;
    }
    typo_of(word, pattern)
}

/// A typo of `pattern` (or of its plural): same first letter, one edit from six letters, two
/// from nine, counting a swap of neighbours as one.
pub fn typo_of(word: &str, pattern: &str) -> bool {
    let n = pattern.chars().count();
    let allowed = match n {
        0..=5 => return false,
        6..=8 => 1,
        _ => 2,
    };
    let w = word.chars().count();
    if w < 4
        || w.abs_diff(n) > allowed + 1
        || word.chars().next() != pattern.chars().next()
        || NOT_TYPOS.contains(&word)
        || !word.chars().all(char::is_alphabetic)
    {
        return false;
    }
    strsim::osa_distance(word, pattern) <= allowed
        || word
            .strip_suffix('s')
            .is_some_and(|w| strsim::osa_distance(w, pattern) <= allowed)
}

/// A typo within the first letters of a word a prefix pattern would match ("imigration" for
/// `immigra*`): one edit, from six letters of prefix.
fn typo_of_prefix(word: &str, prefix: &str) -> bool {
    let n = prefix.chars().count();
    if n < 6
        || word.chars().count() < n + 2
        || NOT_TYPOS.contains(&word)
        || word.chars().next() != prefix.chars().next()
    {
        return false;
    }
    let chars: Vec<char> = word.chars().collect();
    [n - 1, n, n + 1].into_iter().any(|k| {
        k <= chars.len() && {
            let head: String = chars[..k].iter().collect();
            strsim::osa_distance(&head, prefix) <= 1
        }
    })
}

/// Known terms of `table` among `words`, longest first at each place, not overlapping.
pub fn find(words: &[Word<'_>], lexicon: Lexicon) -> Vec<Hit> {
    let compiled = lexicon.compiled();
    let mut hits = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let best = compiled
            .candidates(&words[i].key)
            .iter()
            .filter(|e| {
                e.words.len() <= words.len() - i
                    && e.words.iter().zip(&words[i..]).all(|(p, w)| {
                        if e.words.len() == 1 {
                            word_matches(&w.key, p)
                        } else {
                            without_typo(&w.key, p)
                        }
                    })
            })
            .max_by_key(|e| (e.words.len(), exactness(&words[i].key, e.words[0])));
        match best {
            Some(e) => {
                hits.push(Hit {
                    value: e.value,
                    start: i,
                    end: i + e.words.len(),
                });
                i += e.words.len();
            }
            None => i += 1,
        }
    }
    hits
}

/// Within a longer pattern every word must match without typos ("first aid", not "first
/// said").
fn without_typo(word: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => word == pattern || word.strip_suffix('s') == Some(pattern),
    }
}

fn exactness(word: &str, pattern: &str) -> u8 {
    if word == pattern {
        2
    } else if word.starts_with(pattern.trim_end_matches('*')) {
        1
    } else {
        0
    }
}

/// The values found, in order, without repeats.
pub fn values(words: &[Word<'_>], lexicon: Lexicon) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in find(words, lexicon) {
        if !h.value.is_empty() && !out.iter().any(|v| v == h.value) {
            out.push(h.value.to_owned());
        }
    }
    out
}

/// An English name for a language code, for summaries ("vi" → "Vietnamese").
pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::understand::text::words;

    fn langs(s: &str) -> Vec<String> {
        values(&words(s), Lexicon::Languages)
    }

    #[test]
    fn typos_and_native_names_find_languages() {
        assert_eq!(langs("englsh and portugese"), vec!["en", "pt"]);
        assert_eq!(langs("Français, 日本語, 한국어"), vec!["fr", "ja", "ko"]);
        assert_eq!(langs("hablo español e inglés"), vec!["es", "en"]);
        assert_eq!(langs("I lived in Germany, I'm Hindu"), Vec::<String>::new());
        assert!(typo_of("wensday", "wednesday"));
        assert!(typo_of("thrusday", "thursday"));
        assert!(!typo_of("diving", "driving"));
        assert_eq!(language_name("vi"), Some("vietnamese"));
    }

    #[test]
    fn longest_pattern_wins() {
        let w = words("pharmacy tech");
        assert_eq!(values(&w, Lexicon::Skills), vec!["medical"]);
        let w = words("crisis line volunteering");
        assert_eq!(values(&w, Lexicon::Skills), vec!["counseling"]);
    }
}
