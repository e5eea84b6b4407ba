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

/// Splits text into messages of at most [`TWILIO_MAX_CHARS`] characters, preferring to break
/// after whitespace so words stay whole.
pub fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + TWILIO_MAX_CHARS).min(chars.len());
        if end < chars.len() {
            if let Some(ws) = (start + 1..end)
                .rev()
                .find(|&i| chars[i - 1].is_whitespace())
            {
                if ws - start > TWILIO_MAX_CHARS / 2 {
                    end = ws;
                }
            }
        }
        out.push(chars[start..end].iter().collect());
        start = end;
    }
    if out.is_empty() {
        out.push(String::new());
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
}
