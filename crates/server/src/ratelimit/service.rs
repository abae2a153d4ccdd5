//! Rate limiting as a service: other systems ask "may `key` do this now?"
//! with the limit in the request. Keys are namespaced by the caller's
//! account: every API client of one user shares them, and two accounts
//! never touch each other's counters.

use std::time::Duration;

use serde::Deserialize;
use switchyard_kit::{Check, Decision, KitError, Limit, RateLimiter};
use utoipa::ToSchema;

use crate::domain::PrincipalId;
use crate::validation::FieldError;

/// Most checks in one batch.
pub const MAX_BATCH: usize = 100;
/// Largest `limit`, `capacity` and `burst`.
pub const MAX_COUNT: u64 = 1_000_000_000;
/// Longest window: a year, in milliseconds.
pub const MAX_WINDOW_MS: u64 = 366 * 24 * 3600 * 1000;
/// Largest `rate` and `refill_per_sec`, per second.
pub const MAX_RATE: f64 = 1e9;
/// Smallest `rate` and `refill_per_sec`: one per about 11.6 days.
pub const MIN_RATE: f64 = 1e-6;
/// Largest `cost` of one request.
pub const MAX_COST: u64 = 1_000_000;

const RATE_RULE: &str = "is required and must be a number from 0.000001 to 1000000000 (per second)";

/// How a check counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    FixedWindow,
    /// Exact: a log of the requests in the window.
    SlidingWindow,
    /// Approximate: this window's and the previous window's counts, weighted.
    SlidingWindowApprox,
    TokenBucket,
    Gcra,
}

/// One decision: a key, an algorithm and that algorithm's parameters.
/// Validated by [`CheckRequest::limit`]; its schema (one shape per
/// algorithm) is written out in the routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub key: String,
    pub algorithm: Algorithm,
    pub limit: Option<u64>,
    pub window_ms: Option<u64>,
    pub capacity: Option<u64>,
    pub refill_per_sec: Option<f64>,
    pub rate: Option<f64>,
    pub burst: Option<u64>,
    pub cost: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error(transparent)]
    Redis(#[from] KitError),
}

impl CheckRequest {
    /// The limit this spec describes, or the fields that are wrong (each
    /// prefixed with `prefix`, e.g. `checks[2].`).
    pub fn limit(&self, prefix: &str) -> Result<(Limit, u64), Vec<FieldError>> {
        let mut errors = Vec::new();
        let field = |name: &str| format!("{prefix}{name}");
        if self.key.is_empty() || self.key.chars().count() > 256 {
            errors.push(FieldError::new(field("key"), "must be 1-256 characters"));
        }
        let mut within = |name: &str, value: Option<u64>, max: u64| match value {
            Some(v) if (1..=max).contains(&v) => v,
            _ => {
                errors.push(FieldError::new(
                    field(name),
                    format!("is required and must be a whole number from 1 to {max}"),
                ));
                0
            }
        };
        let limit = match self.algorithm {
            Algorithm::FixedWindow | Algorithm::SlidingWindow | Algorithm::SlidingWindowApprox => {
                let limit = within("limit", self.limit, MAX_COUNT);
                let window = Duration::from_millis(within("window_ms", self.window_ms, MAX_WINDOW_MS));
                match self.algorithm {
                    Algorithm::FixedWindow => Limit::FixedWindow { limit, window },
                    Algorithm::SlidingWindow => Limit::SlidingWindowLog { limit, window },
                    _ => Limit::SlidingWindowCounter { limit, window },
                }
            }
            Algorithm::TokenBucket => {
                let capacity = within("capacity", self.capacity, MAX_COUNT);
                let refill_per_sec =
                    self.refill_per_sec.filter(|r| (MIN_RATE..=MAX_RATE).contains(r)).unwrap_or_else(|| {
                        errors.push(FieldError::new(field("refill_per_sec"), RATE_RULE));
                        0.0
                    });
                Limit::TokenBucket { capacity, refill_per_sec }
            }
            Algorithm::Gcra => {
                let rate = self.rate.filter(|r| (MIN_RATE..=MAX_RATE).contains(r)).unwrap_or_else(|| {
                    errors.push(FieldError::new(field("rate"), RATE_RULE));
                    0.0
                });
                let burst = self.burst.unwrap_or(0);
                if burst > MAX_COUNT {
                    errors.push(FieldError::new(field("burst"), format!("must be at most {MAX_COUNT}")));
                }
                Limit::Gcra { rate, burst }
            }
        };
        let cost = self.cost.unwrap_or(1);
        if cost == 0 || cost > MAX_COST {
            errors.push(FieldError::new(field("cost"), format!("must be between 1 and {MAX_COST}")));
        }
        if errors.is_empty() {
            Ok((limit, cost))
        } else {
            Err(errors)
        }
    }
}

fn subject(account: PrincipalId, key: &str) -> String {
    format!("svc:{account}:{key}")
}

/// The binding decision of a one-limit verdict.
fn first(decisions: Vec<Decision>) -> Decision {
    decisions.into_iter().next().unwrap_or(Decision {
        allowed: false,
        limit: 0,
        remaining: 0,
        reset_after: Duration::ZERO,
        retry_after: None,
    })
}

/// The check API's service: one limiter shared by every caller, keys
/// namespaced per account (every API client of a user shares them).
#[derive(Debug, Clone)]
pub struct CheckService {
    limiter: RateLimiter,
}

impl CheckService {
    pub fn new(limiter: RateLimiter) -> Self {
        Self { limiter }
    }

    pub async fn check(&self, account: PrincipalId, spec: &CheckRequest) -> Result<Decision, CheckError> {
        let (limit, cost) = spec.limit("").map_err(CheckError::Validation)?;
        let subject = subject(account, &spec.key);
        let verdict = self.limiter.check(&Check { subject: &subject, names: &["svc"], limits: &[limit], cost }).await?;
        Ok(first(verdict.decisions))
    }

    pub async fn status(&self, account: PrincipalId, spec: &CheckRequest) -> Result<Decision, CheckError> {
        let (limit, cost) = spec.limit("").map_err(CheckError::Validation)?;
        let subject = subject(account, &spec.key);
        let verdict = self.limiter.peek(&Check { subject: &subject, names: &["svc"], limits: &[limit], cost }).await?;
        Ok(first(verdict.decisions))
    }

    /// Every check in one Redis round trip; all are validated first, so a bad
    /// item consumes nothing from the others.
    pub async fn check_batch(&self, account: PrincipalId, specs: &[CheckRequest]) -> Result<Vec<Decision>, CheckError> {
        if specs.is_empty() || specs.len() > MAX_BATCH {
            return Err(CheckError::Validation(vec![FieldError::new(
                "checks",
                format!("must hold 1-{MAX_BATCH} checks"),
            )]));
        }
        let mut errors = Vec::new();
        let mut parsed = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            match spec.limit(&format!("checks[{i}].")) {
                Ok(ok) => parsed.push(ok),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(CheckError::Validation(errors));
        }
        let subjects: Vec<String> = specs.iter().map(|s| subject(account, &s.key)).collect();
        let limits: Vec<[Limit; 1]> = parsed.iter().map(|(l, _)| [*l]).collect();
        let checks: Vec<Check<'_>> = subjects
            .iter()
            .zip(&limits)
            .zip(&parsed)
            .map(|((subject, limits), (_, cost))| Check { subject, names: &["svc"], limits, cost: *cost })
            .collect();
        let verdicts = self.limiter.check_many(&checks).await?;
        Ok(verdicts.into_iter().map(|v| first(v.decisions)).collect())
    }
}
