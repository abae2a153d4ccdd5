//! Token material: signed access tokens (JWT, HS256), random opaque
//! secrets, and the hashes under which secrets are stored.
//!
//! Invariants: opaque secrets carry at least 256 bits of randomness; only
//! their hashes are stored; keyed hashes (HMAC-SHA256 with the server's
//! pepper) protect low-entropy secrets such as 6-digit codes.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The session the token belongs to; revoked with it.
    pub sid: Uuid,
    pub role: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: Uuid,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl AccessTokens {
    pub fn new(secret: &SecretString, ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        Self { encoding: EncodingKey::from_secret(bytes), decoding: DecodingKey::from_secret(bytes), ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid, role: &str) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            role: role.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: Uuid::new_v4(),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// The claims of a valid, unexpired token signed by us; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation).ok().map(|data| data.claims)
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

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
    fn access_tokens_round_trip_and_reject_tampering_and_other_keys() {
        let tokens = AccessTokens::new(&SecretString::from("k".repeat(40)), Duration::from_secs(60));
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let token = tokens.issue(user, session, "user").unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.sid, claims.role.as_str()), (user, session, "user"));
        assert!(claims.exp > claims.iat);

        let mut tampered = token.clone();
        tampered.pop();
        assert!(tokens.verify(&tampered).is_none());
        let other = AccessTokens::new(&SecretString::from("x".repeat(40)), Duration::from_secs(60));
        assert!(other.verify(&token).is_none());
    }

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
