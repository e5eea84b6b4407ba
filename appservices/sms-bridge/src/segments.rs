//! SMS length rules: the GSM-7 alphabet (160 characters in one segment, 153 per segment when
//! concatenated, extension characters counting twice) or UCS-2 when any character is outside it
//! (70 / 67, characters beyond the BMP counting twice), and Twilio's 1,600-character limit per
//! message.

/// Twilio's limit on one message's body, in characters.
pub const TWILIO_MAX_CHARS: usize = 1600;

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// How a text travels as SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

pub fn analyse(text: &str) -> SegmentInfo {
    let gsm_units: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, multi) = match gsm_units {
        Some(u) => (Encoding::Gsm7, u, 160, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    SegmentInfo {
        encoding,
        units,
        segments,
    }
}

/// Splits text into messages of at most [`TWILIO_MAX_CHARS`] UTF-16 units (what Twilio
/// counts: an emoji beyond the BMP is two), only between grapheme clusters (a flag, a family
/// emoji or a letter with its accents is never cut), preferring to break after whitespace so
/// words stay whole.
pub fn split(text: &str) -> Vec<String> {
    use unicode_segmentation::UnicodeSegmentation;
    let units = |s: &str| s.encode_utf16().count();
    let mut out = Vec::new();
    let mut part = String::new();
    let mut part_units = 0;
    // Where the part could end after whitespace: (byte length, units).
    let mut last_space: Option<(usize, usize)> = None;
    for g in text.graphemes(true) {
        let g_units = units(g);
        if part_units + g_units > TWILIO_MAX_CHARS {
            match last_space {
                Some((bytes, u)) if u > TWILIO_MAX_CHARS / 2 => {
                    let rest = part.split_off(bytes);
                    out.push(std::mem::replace(&mut part, rest));
                    part_units -= u;
                }
                _ if !part.is_empty() => {
                    out.push(std::mem::take(&mut part));
                    part_units = 0;
                }
                _ => {}
            }
            last_space = None;
        }
        if g_units > TWILIO_MAX_CHARS {
            // A cluster longer than a whole message (only contrived text): cut between its
            // code points.
            for c in g.chars() {
                if part_units + c.len_utf16() > TWILIO_MAX_CHARS {
                    out.push(std::mem::take(&mut part));
                    part_units = 0;
                }
                part.push(c);
                part_units += c.len_utf16();
            }
            continue;
        }
        part.push_str(g);
        part_units += g_units;
        if g.chars().all(char::is_whitespace) {
            last_space = Some((part.len(), part_units));
        }
    }
    if !part.is_empty() || out.is_empty() {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_lengths() {
        assert_eq!(
            analyse("hello"),
            SegmentInfo {
                encoding: Encoding::Gsm7,
                units: 5,
                segments: 1
            }
        );
        assert_eq!(analyse(&"a".repeat(160)).segments, 1);
        assert_eq!(analyse(&"a".repeat(161)).segments, 2);
        assert_eq!(analyse(&"a".repeat(306)).segments, 2);
        assert_eq!(analyse(&"a".repeat(307)).segments, 3);
        // Extension characters take two septets.
        assert_eq!(analyse(&"€".repeat(80)).units, 160);
        assert_eq!(analyse(&"€".repeat(81)).segments, 2);
    }

    #[test]
    fn ucs2_lengths() {
        let info = analyse("Hola 😀");
        assert_eq!(info.encoding, Encoding::Ucs2);
        assert_eq!(info.units, 7); // the emoji is a surrogate pair
        assert_eq!(analyse(&"é".repeat(10)).encoding, Encoding::Gsm7);
        assert_eq!(analyse(&"ł".repeat(70)).segments, 1);
        assert_eq!(analyse(&"ł".repeat(71)).segments, 2);
        assert_eq!(analyse(&"ł".repeat(135)).segments, 3);
    }

    #[test]
    fn splitting_respects_the_limit_and_words() {
        let text = "word ".repeat(500); // 2,500 characters
        let parts = split(&text);
        assert!(parts.iter().all(|p| p.chars().count() <= TWILIO_MAX_CHARS));
        assert_eq!(parts.concat(), text);
        assert!(parts[0].ends_with(' '));
        assert_eq!(split("short"), vec!["short".to_owned()]);
        let long_word = "x".repeat(3300);
        let parts = split(&long_word);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), long_word);
    }

    #[test]
    fn splitting_counts_utf16_and_keeps_clusters_whole() {
        let flag = "\u{1F1FA}\u{1F1E6}";
        let text = flag.repeat(1000); // 4,000 UTF-16 units
        let parts = split(&text);
        assert_eq!(parts.concat(), text);
        assert_eq!(parts.len(), 3);
        for p in &parts {
            assert!(p.encode_utf16().count() <= TWILIO_MAX_CHARS);
            assert!(p.replace(flag, "").is_empty(), "a flag was cut");
        }
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}"; // one cluster, 8 units
        let parts = split(&format!("a{}", family.repeat(300)));
        assert!(parts.iter().skip(1).all(|p| p.starts_with(family)));
        let accents = "e\u{301}".repeat(2000);
        assert!(split(&accents)
            .iter()
            .all(|p| p.starts_with('e') && p.ends_with('\u{301}')));
    }
}
