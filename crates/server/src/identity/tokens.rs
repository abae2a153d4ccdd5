//! Signed access tokens (JWT, HS256): issued at login, verified on every
//! authenticated request (the session is checked too, so a revoked session's
//! token stops working at once). Opaque secrets and their hashes are in
//! `crate::secrets`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Rejection;

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

    /// The claims of a valid, unexpired token signed by us; otherwise why
    /// not (an expired one is told apart, so a client knows to refresh).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Rejection> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation).map(|data| data.claims).map_err(
            |error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejection::Expired,
                _ => Rejection::Invalid,
            },
        )
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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
        assert_eq!(tokens.verify(&tampered).unwrap_err(), Rejection::Invalid);
        let other = AccessTokens::new(&SecretString::from("x".repeat(40)), Duration::from_secs(60));
        assert_eq!(other.verify(&token).unwrap_err(), Rejection::Invalid);
    }
}
