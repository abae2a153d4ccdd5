//! Readiness: whether this instance can serve traffic now, and if not, which
//! dependency is failing and why. Checks run concurrently, each bounded by
//! `READY_CHECK_TIMEOUT_MS`, so a hung dependency cannot hang the probe.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_kit::connection::policy_can_evict;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Up,
    Down,
}

/// The outcome of probing one dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub status: CheckStatus,
    pub latency_ms: f64,
    /// Why the dependency is down (absent when up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Redis's check, plus whether its eviction policy is safe for durable keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedisCheck {
    #[serde(flatten)]
    pub check: Check,
    /// `maxmemory-policy`, when Redis allows reading it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxmemory_policy: Option<String>,
    /// True when the policy may evict sessions, queues or streams.
    pub eviction_risk: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    pub postgres: Check,
    pub redis: RedisCheck,
    /// `redis` normally; `degraded` when decisions fell back to their
    /// failure modes (fail-open, fail-closed, local) in the last minute.
    pub rate_limiting: RateLimitingMode,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitingMode {
    Redis,
    Degraded,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    Ready,
    Unavailable,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub checks: Checks,
    /// Conditions that do not stop traffic but need an operator's attention.
    pub warnings: Vec<String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == ReadyStatus::Ready
    }
}

/// Probes PostgreSQL and Redis concurrently.
pub async fn readiness(state: &AppState) -> Readiness {
    let timeout = state.settings.ready_check_timeout;
    let postgres = probe(timeout, async {
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db).await.map(drop).map_err(|e| e.to_string())
    });
    let redis = probe(timeout, async {
        state.redis.ping().await.map_err(|e| e.to_string())?;
        state.redis.maxmemory_policy().await.map_err(|e| e.to_string())
    });
    let ((postgres, _), (redis, policy)) = tokio::join!(postgres, redis);

    let policy = policy.flatten();
    let eviction_risk = policy.as_deref().is_some_and(policy_can_evict);
    let mut warnings = Vec::new();
    if let Some(policy) = policy.as_deref().filter(|_| eviction_risk) {
        warnings.push(format!(
            "Redis maxmemory-policy is {policy}: it may evict sessions, queues and streams; set it to noeviction"
        ));
    }
    let rate_limiting = if state.rate_limits.degraded() {
        warnings.push("rate limiting fell back to its failure modes (Redis did not answer) in the last minute".into());
        RateLimitingMode::Degraded
    } else {
        RateLimitingMode::Redis
    };
    let status = if postgres.status == CheckStatus::Up && redis.status == CheckStatus::Up {
        ReadyStatus::Ready
    } else {
        ReadyStatus::Unavailable
    };
    Readiness {
        status,
        checks: Checks {
            postgres,
            redis: RedisCheck { check: redis, maxmemory_policy: policy, eviction_risk },
            rate_limiting,
        },
        warnings,
    }
}

async fn probe<T>(timeout: Duration, check: impl Future<Output = Result<T, String>>) -> (Check, Option<T>) {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, check).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    match outcome {
        Ok(value) => (Check { status: CheckStatus::Up, latency_ms, error: None }, Some(value)),
        Err(error) => (Check { status: CheckStatus::Down, latency_ms, error: Some(error) }, None),
    }
}
