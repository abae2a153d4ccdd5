//! Key naming: one scheme for every key switchyard writes.
//!
//! A key is `<prefix>:{<tag>}:<part>:<part>...`. The prefix separates
//! deployments (and tests) sharing one Redis; the `{tag}` is a Redis Cluster
//! hash tag, so every key built with the same tag lands in the same slot and
//! one Lua script or MULTI may touch them all.
//!
//! Invariant: construction is injective. Segments are escaped (`%`, `:`,
//! `{`, `}` and whitespace are percent-encoded), so user-supplied names can
//! neither collide with another key nor break out of the hash tag.

use std::sync::Arc;

use crate::KitError;

/// The namespace every key of one switchyard deployment lives under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    prefix: Arc<str>,
}

impl Keyspace {
    /// A keyspace under `prefix`: 1–64 characters of `[A-Za-z0-9_.-]`, so the
    /// prefix itself never needs escaping and reads well in `redis-cli`.
    pub fn new(prefix: &str) -> Result<Self, KitError> {
        let valid_len = (1..=64).contains(&prefix.len());
        let valid_chars = prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !(valid_len && valid_chars) {
            return Err(KitError::InvalidKey("the key prefix must be 1-64 characters of [A-Za-z0-9_.-]".into()));
        }
        Ok(Self { prefix: prefix.into() })
    }

    /// The prefix, without separator.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key in the slot of `tag`: `<prefix>:{<tag>}:<parts...>`.
    ///
    /// Use it for every key that a script or transaction touches together
    /// with others: give them all the same tag.
    pub fn tagged(&self, tag: &str, parts: &[&str]) -> String {
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + 16);
        key.push_str(&self.prefix);
        key.push_str(":{");
        push_escaped(&mut key, tag);
        key.push('}');
        for part in parts {
            key.push(':');
            push_escaped(&mut key, part);
        }
        key
    }

    /// A key with no hash tag, for keys that are only ever used alone:
    /// `<prefix>:<parts...>`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = String::from(&*self.prefix);
        for part in parts {
            key.push(':');
            push_escaped(&mut key, part);
        }
        key
    }

    /// A glob matching every key of this keyspace (for SCAN, never KEYS).
    pub fn pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

/// One key part, escaped as [`Keyspace`] escapes it (for scripts that
/// derive a key name from a declared prefix).
pub fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    push_escaped(&mut out, segment);
    out
}

/// The segment [`escape`] was given: `%XX` sequences decoded.
pub fn unescape(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let decoded = (bytes[at] == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Copies runs of safe bytes whole and only looks at characters that may
/// need escaping: keys are built on every request (a rate-limit check builds
/// one per limit), and a per-character push with a `format!` per escape was
/// a few percent of a check's CPU.
fn push_escaped(out: &mut String, segment: &str) {
    let mut rest = segment;
    while let Some(at) = rest.bytes().position(|b| !b.is_ascii() || ascii_needs_escape(b)) {
        out.push_str(&rest[..at]);
        let Some(c) = rest[at..].chars().next() else { break };
        if c.is_ascii() || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                push_percent(out, b);
            }
        } else {
            out.push(c);
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.push_str(rest);
}

/// `%`, `:`, `{`, `}`, ASCII whitespace and control characters.
fn ascii_needs_escape(b: u8) -> bool {
    matches!(b, b'%' | b':' | b'{' | b'}' | b' ') || b.is_ascii_control()
}

fn push_percent(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xF)]));
}

/// The Redis Cluster slot (0..16384) a key maps to: CRC16/XMODEM of the key,
/// or of the hash tag when the key has a non-empty `{...}` section.
pub fn hash_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16_xmodem(hashed) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks() -> Keyspace {
        Keyspace::new("sy").unwrap()
    }

    #[test]
    fn tagged_keys_put_the_tag_in_braces_after_the_prefix() {
        assert_eq!(ks().tagged("user:42", &["sessions"]), "sy:{user%3A42}:sessions");
        assert_eq!(ks().tagged("t1", &["board", "top"]), "sy:{t1}:board:top");
        assert_eq!(ks().key(&["workers", "w1"]), "sy:workers:w1");
    }

    #[test]
    fn keys_with_the_same_tag_share_a_cluster_slot() {
        let a = ks().tagged("client-7", &["ratelimit", "a"]);
        let b = ks().tagged("client-7", &["locks", "b", "fence"]);
        assert_eq!(hash_slot(&a), hash_slot(&b));
        assert_eq!(hash_slot(&a), hash_slot("client-7"));
    }

    #[test]
    fn user_input_cannot_break_out_of_the_tag_or_collide() {
        let evil = ks().tagged("a}b{c", &["x:y"]);
        assert_eq!(evil, "sy:{a%7Db%7Bc}:x%3Ay");
        assert_eq!(hash_slot(&evil), hash_slot("a%7Db%7Bc"));
        // "a:b" + "c" must differ from "a" + "b:c"
        assert_ne!(ks().key(&["a:b", "c"]), ks().key(&["a", "b:c"]));
        assert_ne!(ks().key(&["a%3Ab"]), ks().key(&["a:b"]));
        assert_eq!(ks().key(&["two words\n"]), "sy:two%20words%0A");
    }

    #[test]
    fn escaping_matches_the_per_character_rule() {
        // The rule, one character at a time: the fast path must agree.
        let reference = |segment: &str| {
            segment
                .chars()
                .map(|c| {
                    if matches!(c, '%' | ':' | '{' | '}') || c.is_whitespace() || c.is_control() {
                        let mut buf = [0u8; 4];
                        c.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02X}")).collect()
                    } else {
                        c.to_string()
                    }
                })
                .collect::<String>()
        };
        for segment in [
            "",
            "plain-ascii_1.2",
            "svc:7d3c0a52-1c1e-4b7e-9f0e-2b8f0c2d1e3f:bench-12",
            "%:{}",
            "tab\there\r\n\u{0b}\u{7f}\u{0}",
            "caf\u{e9} \u{a0}nbsp \u{85}nel \u{2028}ls \u{3000}ideo",
            "\u{1f600}:\u{1f600}",
            "ends with %",
        ] {
            assert_eq!(escape(segment), reference(segment), "{segment:?}");
            assert_eq!(unescape(&escape(segment)), segment, "{segment:?} round-trips");
        }
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(Keyspace::new("").is_err());
        assert!(Keyspace::new("has space").is_err());
        assert!(Keyspace::new("a{b}").is_err());
        assert!(Keyspace::new(&"x".repeat(65)).is_err());
        assert_eq!(Keyspace::new("sy-test_1.a").unwrap().pattern(), "sy-test_1.a:*");
    }

    #[test]
    fn hash_slot_matches_redis_reference_values() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(hash_slot("foo"), 12182);
        assert_eq!(hash_slot("{user1000}.following"), hash_slot("{user1000}.followers"));
        assert_eq!(hash_slot("foo{}{bar}"), hash_slot("foo{}{bar}"));
        assert_ne!(hash_slot("foo{}{bar}"), hash_slot("bar"));
        assert_eq!(hash_slot("foo{{bar}}zap"), hash_slot("{bar"));
    }
}
