//! Order-preserving key encodings: composite keys compare byte-wise in the same order as their
//! parts compare, so range scans over a prefix (a room's timeline, a user's devices) work.

use super::StorageError;

/// One component of a composite key.
pub trait KeyPart: Sized {
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Decodes one part from the front of `input`, returning the rest.
    fn decode_from(input: &[u8]) -> Result<(Self, &[u8]), StorageError>;
}

/// Strings are escaped (0x00 -> 0x00 0x01) and terminated by 0x00 0x00, which keeps byte order
/// equal to string order even when one string is a prefix of another.
impl KeyPart for String {
    fn encode_into(&self, out: &mut Vec<u8>) {
        self.as_str().encode_into(out)
    }

    fn decode_from(input: &[u8]) -> Result<(Self, &[u8]), StorageError> {
        let mut s = Vec::new();
        let mut i = 0;
        while i < input.len() {
            if input[i] == 0 {
                match input.get(i + 1) {
                    Some(0) => {
                        let s =
                            String::from_utf8(s).map_err(|_| StorageError::Corrupt("key utf8"))?;
                        return Ok((s, &input[i + 2..]));
                    }
                    Some(1) => {
                        s.push(0);
                        i += 2;
                        continue;
                    }
                    _ => return Err(StorageError::Corrupt("key escape")),
                }
            }
            s.push(input[i]);
            i += 1;
        }
        Err(StorageError::Corrupt("unterminated key string"))
    }
}

impl KeyPart for &str {
    fn encode_into(&self, out: &mut Vec<u8>) {
        for &b in self.as_bytes() {
            out.push(b);
            if b == 0 {
                out.push(1);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }

    fn decode_from(_: &[u8]) -> Result<(Self, &[u8]), StorageError> {
        Err(StorageError::Corrupt(
            "borrowed key parts cannot be decoded",
        ))
    }
}

/// Integers are big-endian so that numeric order is byte order.
impl KeyPart for u64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode_from(input: &[u8]) -> Result<(Self, &[u8]), StorageError> {
        if input.len() < 8 {
            return Err(StorageError::Corrupt("short integer key"));
        }
        let (head, rest) = input.split_at(8);
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        Ok((u64::from_be_bytes(b), rest))
    }
}

/// A whole key made of one or more parts.
pub trait Key: Sized {
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self, StorageError>;
}

impl<A: KeyPart> Key for A {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        Ok(A::decode_from(bytes)?.0)
    }
}

macro_rules! tuple_key {
    ($($name:ident),+) => {
        impl<$($name: KeyPart),+> Key for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self) -> Vec<u8> {
                let ($($name,)+) = self;
                let mut v = Vec::new();
                $($name.encode_into(&mut v);)+
                v
            }

            #[allow(non_snake_case)]
            fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
                let rest = bytes;
                $(let ($name, rest) = $name::decode_from(rest)?;)+
                let _ = rest;
                Ok(($($name,)+))
            }
        }
    };
}

tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);

/// Encodes a key prefix made of leading parts, for prefix scans.
pub fn prefix<P: KeyPart>(part: P) -> Vec<u8> {
    let mut v = Vec::new();
    part.encode_into(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_order_is_preserved() {
        let words = ["", "a", "a\0", "a\0b", "ab", "b"];
        let mut enc: Vec<_> = words.iter().map(|w| w.to_string().encode()).collect();
        let sorted = enc.clone();
        enc.sort();
        assert_eq!(enc, sorted);
        for w in words {
            assert_eq!(String::decode(&w.to_string().encode()).unwrap(), w);
        }
    }

    #[test]
    fn tuple_round_trip_and_order() {
        let a = ("!room:x".to_owned(), 5u64).encode();
        let b = ("!room:x".to_owned(), 300u64).encode();
        let c = ("!room:xy".to_owned(), 1u64).encode();
        assert!(a < b && b < c);
        assert_eq!(
            <(String, u64)>::decode(&b).unwrap(),
            ("!room:x".to_owned(), 300)
        );
        assert!(b.starts_with(&prefix("!room:x")));
        assert!(!c.starts_with(&prefix("!room:x")));
    }
}
