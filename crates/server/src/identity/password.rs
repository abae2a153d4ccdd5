//! Password hashing with Argon2id, off the async runtime.
//!
//! Invariant: verifying against an unknown account costs the same as
//! against a known one (we verify against a fixed dummy hash), so response
//! time does not reveal which emails have accounts.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::IdentitySettings;

/// Argon2id with the configured cost, shared by every request.
#[derive(Clone)]
pub struct Passwords {
    argon2: Arc<Argon2<'static>>,
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords(argon2id)")
    }
}

impl Passwords {
    pub fn new(settings: &IdentitySettings) -> anyhow::Result<Self> {
        let params =
            Params::new(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_parallelism, None)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        // Made now, at start-up, so the first unknown-email login is not the
        // one slow request that gives the game away.
        let dummy = argon2
            .hash_password(b"not a real password; equalises timing")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        Ok(Self { argon2: Arc::new(argon2), dummy_hash: Arc::new(dummy) })
    }

    /// A PHC-format hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with `hash = None` it spends the
    /// same effort and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let argon2 = self.argon2.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
            Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok() && known)
        })
        .await?
    }
}
