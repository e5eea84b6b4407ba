//! Twilio request signatures (`X-Twilio-Signature`), computed exactly as Twilio does:
//! for form posts, the full public URL followed by every form parameter, sorted by name, each
//! name immediately followed by its value; HMAC-SHA1 with the account's auth token; base64.
//! For JSON posts the URL carries `bodySHA256` (hex SHA-256 of the body) and only the URL is
//! signed. Comparison is constant-time.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio sends for a form-encoded request to `url` with `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Twilio sorts by name; for repeated names the values keep their order.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = String::from(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Verifies a form-encoded webhook.
pub fn verify_form(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    equal(&compute(auth_token, url, params), signature)
}

/// Verifies a JSON webhook: the URL's `bodySHA256` must match the body, and the URL itself
/// (with that parameter) is what is signed.
pub fn verify_json(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(query) = url.split_once('?').map(|(_, q)| q) else {
        return false;
    };
    let Some(claimed) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("bodySHA256="))
    else {
        return false;
    };
    let actual = hex::encode(Sha256::digest(body));
    equal(&actual, claimed) && equal(&compute(auth_token, url, &[]), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    /// Twilio's published example.
    #[test]
    fn matches_twilios_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = vec![
            p("CallSid", "CA1234567890ABCDE"),
            p("Caller", "+12349013030"),
            p("Digits", "1234"),
            p("From", "+12349013030"),
            p("To", "+18005551212"),
        ];
        assert_eq!(
            compute("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        // Order of the parameters as received does not matter.
        let mut shuffled = params.clone();
        shuffled.reverse();
        assert!(verify_form(
            "12345",
            url,
            &shuffled,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_form(
            "12345",
            url,
            &shuffled,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
        assert!(!verify_form(
            "54321",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!verify_form(
            "12345",
            url,
            &tampered,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_form(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn json_bodies_are_bound_by_their_hash() {
        let body = br#"{"event":"message"}"#;
        let url = format!(
            "https://bridge.example.org/hook?bodySHA256={}",
            hex::encode(Sha256::digest(body))
        );
        let sig = compute("secret", &url, &[]);
        assert!(verify_json("secret", &url, body, &sig));
        assert!(!verify_json("secret", &url, br#"{"event":"other"}"#, &sig));
        assert!(!verify_json("other", &url, body, &sig));
        assert!(!verify_json(
            "secret",
            "https://bridge.example.org/hook",
            body,
            &sig
        ));
    }
}
