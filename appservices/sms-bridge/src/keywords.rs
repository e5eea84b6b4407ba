//! How a text's first words are compared with keywords (program keywords, STOP/HELP/START):
//! case, punctuation, spacing and common look-alike characters do not matter.
//!
//! A text is read as words: characters are mapped to what they look like (fullwidth forms and
//! Cyrillic or Greek capitals and letters that look Latin, so `ТЕЕN` typed with Cyrillic
//! letters is `TEEN`), invisible characters are dropped, letters are upper-cased, and anything
//! that is not a letter or a digit separates words. `"TEEN. I need help"`, `" teen,i need"` and
//! `"Teen!!"` all start with the word `TEEN`.

/// The text's words, normalised as above.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_invisible(c) {
            continue;
        }
        let c = look_alike(c);
        if c.is_alphanumeric() {
            word.extend(c.to_uppercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Whether `text` starts with the words of `keyword`.
pub fn starts_with(text: &[String], keyword: &str) -> bool {
    let k = words(keyword);
    !k.is_empty() && text.len() >= k.len() && text[..k.len()] == k[..]
}

/// Whether `text` is exactly the words of `keyword` (compliance keywords stand alone).
pub fn is(text: &[String], keyword: &str) -> bool {
    words(keyword) == text
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// The Latin letter or digit `c` looks like, or `c`.
fn look_alike(c: char) -> char {
    // Fullwidth ASCII (U+FF01..U+FF5E) is ASCII shifted.
    if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
        return char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c);
    }
    match c {
        // Cyrillic
        'А' | 'а' => 'A',
        'В' | 'в' => 'B',
        'Е' | 'е' | 'Ё' | 'ё' => 'E',
        'К' | 'к' => 'K',
        'М' | 'м' => 'M',
        'Н' | 'н' => 'H',
        'О' | 'о' => 'O',
        'Р' | 'р' => 'P',
        'С' | 'с' => 'C',
        'Т' | 'т' => 'T',
        'Х' | 'х' => 'X',
        'У' | 'у' => 'Y',
        'І' | 'і' => 'I',
        'Ј' | 'ј' => 'J',
        'Ѕ' | 'ѕ' => 'S',
        // Greek
        'Α' | 'α' => 'A',
        'Β' | 'β' => 'B',
        'Ε' | 'ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' | 'ι' => 'I',
        'Κ' | 'κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' | 'ο' => 'O',
        'Ρ' | 'ρ' => 'P',
        'Τ' | 'τ' => 'T',
        'Υ' | 'υ' => 'Y',
        'Χ' | 'χ' => 'X',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_case_spacing_and_look_alikes_do_not_matter() {
        for text in [
            "TEEN. I need help",
            "  teen,i need help",
            "Teen!!",
            "ＴＥＥＮ please",
            "ТЕЕN help",    // Cyrillic Т and Е
            "T\u{200B}EEN", // a zero-width space inside
            "\"Teen\"",
        ] {
            assert!(starts_with(&words(text), "TEEN"), "{text}");
        }
        assert!(!starts_with(&words("teenager here"), "TEEN"));
        assert!(!starts_with(&words("I am a teen"), "TEEN"));
        assert!(starts_with(&words("teen line: hi"), "Teen Line"));
        assert!(is(&words(" Stop. "), "STOP"));
        assert!(is(&words("stop!"), "STOP"));
        assert!(!is(&words("stop it"), "STOP"));
        assert!(is(&words("ѕtор"), "STOP")); // Cyrillic ѕ, о, р
    }
}
