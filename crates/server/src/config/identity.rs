//! Identity settings: token lifetimes, login and one-time-code limits,
//! Argon2 parameters and API-key handling (`ACCESS_TOKEN_TTL_SECS` …
//! `API_KEY_PEPPER`).
//!
//! Invariants: every lifetime, window and count is non-zero; Argon2 has at
//! least 8 KiB of memory per lane; the API-key grace period is finite and
//! non-negative; the in-process key cache lasts at most 60 s; the pepper is
//! a secret of at least 32 characters (required in production) and is never
//! printed.

use std::time::Duration;

use secrecy::SecretString;

use super::{secret_or_generated, ConfigError, Profile};

/// Lifetimes, thresholds and hashing parameters of the identity layer.
#[derive(Clone)]
pub struct IdentitySettings {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub login_max_failures_per_email: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    pub otp_ttl: Duration,
    pub otp_max_attempts: u32,
    pub otp_requests_per_window: u32,
    pub otp_request_window: Duration,
    pub password_reset_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub api_key_grace_period: Duration,
    pub api_key_retention: u32,
    pub api_key_cache_ttl: Duration,
    /// How long a process keeps a resolved key in memory (0: off). Another
    /// instance's revocation reaches this one within this long; this
    /// instance's own revocations take effect at once.
    pub api_key_local_cache: Duration,
    /// Key of the HMAC that API keys and one-time codes are hashed with.
    pub api_key_pepper: SecretString,
}

impl std::fmt::Debug for IdentitySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySettings")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("api_key_pepper", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The identity settings as written.
pub(super) struct RawIdentity {
    pub(super) access_token_ttl_secs: u64,
    pub(super) refresh_token_ttl_secs: u64,
    pub(super) login_max_failures_per_email: u32,
    pub(super) login_max_failures_per_ip: u32,
    pub(super) login_failure_window_secs: u64,
    pub(super) otp_ttl_secs: u64,
    pub(super) otp_max_attempts: u32,
    pub(super) otp_requests_per_window: u32,
    pub(super) otp_request_window_secs: u64,
    pub(super) password_reset_ttl_secs: u64,
    pub(super) argon2_memory_kib: u32,
    pub(super) argon2_iterations: u32,
    pub(super) argon2_parallelism: u32,
    pub(super) api_key_grace_period_seconds: f64,
    pub(super) api_key_retention: u32,
    pub(super) api_key_cache_ttl_secs: u64,
    pub(super) api_key_local_cache_ms: u64,
    pub(super) api_key_pepper: Option<String>,
}

/// Checks, in order: the lifetimes, windows and counts (non-zero),
/// `ARGON2_MEMORY_KIB`, `API_KEY_GRACE_PERIOD_SECONDS`,
/// `API_KEY_LOCAL_CACHE_MS` (at most 60000; 0 turns the cache off),
/// `API_KEY_PEPPER`.
pub(super) fn validate(raw: RawIdentity, profile: Profile) -> Result<IdentitySettings, ConfigError> {
    for (name, value) in [
        ("access_token_ttl_secs", raw.access_token_ttl_secs),
        ("refresh_token_ttl_secs", raw.refresh_token_ttl_secs),
        ("login_failure_window_secs", raw.login_failure_window_secs),
        ("otp_ttl_secs", raw.otp_ttl_secs),
        ("otp_request_window_secs", raw.otp_request_window_secs),
        ("password_reset_ttl_secs", raw.password_reset_ttl_secs),
        ("api_key_cache_ttl_secs", raw.api_key_cache_ttl_secs),
        ("login_max_failures_per_email", raw.login_max_failures_per_email.into()),
        ("login_max_failures_per_ip", raw.login_max_failures_per_ip.into()),
        ("otp_max_attempts", raw.otp_max_attempts.into()),
        ("otp_requests_per_window", raw.otp_requests_per_window.into()),
        ("api_key_retention", raw.api_key_retention.into()),
        ("argon2_iterations", raw.argon2_iterations.into()),
        ("argon2_parallelism", raw.argon2_parallelism.into()),
    ] {
        if value == 0 {
            return Err(ConfigError::new(name, "must be greater than 0"));
        }
    }
    if raw.argon2_memory_kib < 8 * raw.argon2_parallelism {
        return Err(ConfigError::new("argon2_memory_kib", "must be at least 8 x ARGON2_PARALLELISM"));
    }
    if !(raw.api_key_grace_period_seconds.is_finite() && raw.api_key_grace_period_seconds >= 0.0) {
        return Err(ConfigError::new("api_key_grace_period_seconds", "must be a non-negative number of seconds"));
    }
    if raw.api_key_local_cache_ms > 60_000 {
        return Err(ConfigError::new("api_key_local_cache_ms", "must be at most 60000 (0 turns it off)"));
    }
    let (api_key_pepper, _) = secret_or_generated("api_key_pepper", raw.api_key_pepper, profile)?;
    Ok(IdentitySettings {
        access_token_ttl: Duration::from_secs(raw.access_token_ttl_secs),
        refresh_token_ttl: Duration::from_secs(raw.refresh_token_ttl_secs),
        login_max_failures_per_email: raw.login_max_failures_per_email,
        login_max_failures_per_ip: raw.login_max_failures_per_ip,
        login_failure_window: Duration::from_secs(raw.login_failure_window_secs),
        otp_ttl: Duration::from_secs(raw.otp_ttl_secs),
        otp_max_attempts: raw.otp_max_attempts,
        otp_requests_per_window: raw.otp_requests_per_window,
        otp_request_window: Duration::from_secs(raw.otp_request_window_secs),
        password_reset_ttl: Duration::from_secs(raw.password_reset_ttl_secs),
        argon2_memory_kib: raw.argon2_memory_kib,
        argon2_iterations: raw.argon2_iterations,
        argon2_parallelism: raw.argon2_parallelism,
        api_key_grace_period: Duration::from_secs_f64(raw.api_key_grace_period_seconds),
        api_key_retention: raw.api_key_retention,
        api_key_cache_ttl: Duration::from_secs(raw.api_key_cache_ttl_secs),
        api_key_local_cache: Duration::from_millis(raw.api_key_local_cache_ms),
        api_key_pepper,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::RawSettings;
    use super::*;

    fn raw() -> RawIdentity {
        RawSettings::default().into_sections().identity
    }

    #[test]
    fn refusals_name_the_setting() {
        let err = validate(RawIdentity { otp_max_attempts: 0, ..raw() }, Profile::Dev).unwrap_err();
        assert_eq!(err, ConfigError::new("otp_max_attempts", "must be greater than 0"));
        let err =
            validate(RawIdentity { argon2_memory_kib: 15, argon2_parallelism: 2, ..raw() }, Profile::Dev).unwrap_err();
        assert_eq!(err.setting, "ARGON2_MEMORY_KIB");
        let err = validate(RawIdentity { api_key_grace_period_seconds: -1.0, ..raw() }, Profile::Dev).unwrap_err();
        assert_eq!(err.setting, "API_KEY_GRACE_PERIOD_SECONDS");
        let err = validate(RawIdentity { api_key_pepper: Some("short".into()), ..raw() }, Profile::Dev).unwrap_err();
        assert_eq!(err.setting, "API_KEY_PEPPER");
        let err = validate(raw(), Profile::Production).unwrap_err();
        assert_eq!(err.setting, "API_KEY_PEPPER");
    }

    #[test]
    fn the_local_key_cache_lasts_at_most_a_minute() {
        assert!(validate(RawIdentity { api_key_local_cache_ms: 60_000, ..raw() }, Profile::Test).is_ok());
        let refused = validate(RawIdentity { api_key_local_cache_ms: 60_001, ..raw() }, Profile::Test).unwrap_err();
        assert_eq!(refused.setting, "API_KEY_LOCAL_CACHE_MS");
    }

    #[test]
    fn a_given_pepper_is_kept_and_a_missing_one_generated_outside_production() {
        let pepper = "p".repeat(40);
        let given = validate(RawIdentity { api_key_pepper: Some(pepper.clone()), ..raw() }, Profile::Dev).unwrap();
        assert_eq!(given.api_key_pepper.expose_secret(), pepper);
        let generated = validate(raw(), Profile::Test).unwrap();
        assert_eq!(generated.api_key_pepper.expose_secret().len(), 64);
        assert!(!format!("{generated:?}").contains(generated.api_key_pepper.expose_secret()));
    }
}
