//! Opaque secrets and the hashes they are stored under, shared by every
//! capability that hands out a secret (refresh tokens, one-time codes,
//! reset tokens, API keys).
//!
//! Invariants: opaque secrets carry 256 bits of randomness; only their
//! hashes are stored; keyed hashes (HMAC-SHA256 under the server's pepper)
//! protect low-entropy secrets such as 6-digit codes, and secrets whose
//! table might leak.

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// 32 random bytes, hex-encoded (256 bits).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a high-entropy secret, hex-encoded: enough to store a token
/// that cannot be guessed.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// HMAC-SHA256 under the server's pepper: for secrets that could be
/// brute-forced from a plain hash (codes) or whose table might leak (keys).
#[derive(Clone)]
pub struct KeyedHasher {
    key: SecretString,
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHasher")
    }
}

impl KeyedHasher {
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    pub fn hash(&self, context: &str, secret: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn hash_hex(&self, context: &str, secret: &str) -> String {
        hex::encode(self.hash(context, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_depend_on_key_and_context() {
        let a = KeyedHasher::new(SecretString::from("a".repeat(32)));
        let b = KeyedHasher::new(SecretString::from("b".repeat(32)));
        assert_eq!(a.hash("otp", "123456"), a.hash("otp", "123456"));
        assert_ne!(a.hash("otp", "123456"), b.hash("otp", "123456"));
        assert_ne!(a.hash("otp", "123456"), a.hash("key", "123456"));
        assert_eq!(random_secret().len(), 64);
    }
}
