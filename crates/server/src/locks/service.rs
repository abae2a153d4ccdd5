//! Lock operations for one account, over the kit's `Locks` primitive.
//!
//! Invariant: a caller only ever names resources inside its account's
//! namespace (`<account>/<resource>`): a user and its API clients contend
//! for the same locks, two accounts never do.

use std::time::Duration;

use switchyard_kit::lock::Lease;
use switchyard_kit::{KitError, Locks};

use crate::validation::FieldError;

/// Longest lock and longest wait a caller may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
pub const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("the lock is held by someone else")]
    Held,
    #[error("the token is not the holder's")]
    NotHolder,
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// Resource names: 1-200 characters without control characters.
fn check_resource(resource: &str) -> Result<(), LockError> {
    if resource.is_empty() || resource.chars().count() > 200 || resource.chars().any(char::is_control) {
        return Err(LockError::Validation(vec![FieldError::new("resource", "must be 1-200 printable characters")]));
    }
    Ok(())
}

fn check_duration(field: &str, ms: u64, max: Duration, allow_zero: bool) -> Result<Duration, LockError> {
    let value = Duration::from_millis(ms);
    if (!allow_zero && ms == 0) || value > max {
        let min = if allow_zero { 0 } else { 1 };
        return Err(LockError::Validation(vec![FieldError::new(
            field,
            format!("must be between {min} and {} milliseconds", max.as_millis()),
        )]));
    }
    Ok(value)
}

fn scoped(account: &str, resource: &str) -> String {
    format!("{account}/{resource}")
}

/// The locks capability's service.
#[derive(Debug, Clone)]
pub struct LockService {
    locks: Locks,
    max_wait: Duration,
}

impl LockService {
    /// `request_timeout` bounds how long an acquire may wait: a wait that
    /// would outlast the request ends a second before it, as a 409.
    pub fn new(locks: Locks, request_timeout: Duration) -> Self {
        Self { locks, max_wait: MAX_WAIT.min(request_timeout.saturating_sub(Duration::from_secs(1))) }
    }

    pub async fn acquire(
        &self,
        account: &str,
        resource: &str,
        ttl_ms: u64,
        wait_ms: Option<u64>,
    ) -> Result<Lease, LockError> {
        check_resource(resource)?;
        let ttl = check_duration("ttl_ms", ttl_ms, MAX_TTL, false)?;
        let wait = wait_ms.map(|ms| check_duration("wait_ms", ms, MAX_WAIT, true)).transpose()?;
        let wait = wait.map(|w| w.min(self.max_wait));
        self.locks.acquire(&scoped(account, resource), ttl, wait).await?.ok_or(LockError::Held)
    }

    pub async fn extend(&self, account: &str, resource: &str, token: &str, ttl_ms: u64) -> Result<Lease, LockError> {
        check_resource(resource)?;
        let ttl = check_duration("ttl_ms", ttl_ms, MAX_TTL, false)?;
        self.locks.extend(&scoped(account, resource), token, ttl).await?.ok_or(LockError::NotHolder)
    }

    pub async fn release(&self, account: &str, resource: &str, token: &str) -> Result<(), LockError> {
        check_resource(resource)?;
        if self.locks.release(&scoped(account, resource), token).await? {
            Ok(())
        } else {
            Err(LockError::NotHolder)
        }
    }
}
