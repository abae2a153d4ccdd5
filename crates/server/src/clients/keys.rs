//! API key material: `sy_live_` followed by 32 random bytes in hex. Only a
//! keyed hash is stored; the first characters are kept for display.

use rand::RngCore;

/// Every key starts with this, so a Bearer token can be told from a JWT.
pub const KEY_PREFIX: &str = "sy_";
const LIVE_PREFIX: &str = "sy_live_";
/// How many leading characters are kept for people to recognise a key.
pub const DISPLAY_LEN: usize = 16;

/// A freshly generated key: shown once, never stored.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{LIVE_PREFIX}{}", hex::encode(bytes))
}

/// The displayable start of a key.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_LEN).collect()
}

/// Whether `key` is shaped like one of ours (cheap filter before any I/O).
pub fn well_formed(key: &str) -> bool {
    key.strip_prefix(LIVE_PREFIX).is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_well_formed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with("sy_live_") && a.len() == 8 + 64);
        assert!(well_formed(&a));
        assert!(!well_formed("sy_live_xyz"));
        assert_eq!(display_prefix(&a).len(), DISPLAY_LEN);
    }
}
