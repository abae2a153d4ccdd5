//! Readiness: whether this instance can serve traffic now, and if not, which
//! dependency is failing and why. Checks run concurrently, each bounded by
//! `READY_CHECK_TIMEOUT_MS`, so a hung dependency cannot hang the probe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use sqlx::PgPool;
use switchyard_kit::connection::policy_can_evict;
use switchyard_kit::RedisConnection;
use utoipa::ToSchema;

/// What the operations endpoints need to know of the rest of the
/// application; the composition root provides it, so this capability
/// imports no other.
pub trait Signals: Send + Sync + 'static {
    /// Whether rate limiting fell back to its failure modes recently.
    fn rate_limiting_degraded(&self) -> bool;
    /// Refreshes the gauges computed at scrape time (pools, caches, queues).
    fn refresh_gauges(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The operations capability's service: readiness and metrics.
#[derive(Clone)]
pub struct Ops {
    db: PgPool,
    redis: RedisConnection,
    metrics: PrometheusHandle,
    ready_timeout: Duration,
    signals: Arc<dyn Signals>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").field("ready_timeout", &self.ready_timeout).finish_non_exhaustive()
    }
}

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

impl Ops {
    pub fn new(
        db: PgPool,
        redis: RedisConnection,
        metrics: PrometheusHandle,
        ready_timeout: Duration,
        signals: Arc<dyn Signals>,
    ) -> Self {
        Self { db, redis, metrics, ready_timeout, signals }
    }

    /// Probes PostgreSQL and Redis concurrently.
    pub async fn readiness(&self) -> Readiness {
        let timeout = self.ready_timeout;
        let postgres = probe(timeout, async {
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.db).await.map(drop).map_err(|e| e.to_string())
        });
        let redis = probe(timeout, async {
            self.redis.ping().await.map_err(|e| e.to_string())?;
            self.redis.maxmemory_policy().await.map_err(|e| e.to_string())
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
        let rate_limiting = if self.signals.rate_limiting_degraded() {
            warnings
                .push("rate limiting fell back to its failure modes (Redis did not answer) in the last minute".into());
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

    /// Every metric in the Prometheus text format, scrape-time gauges
    /// refreshed first.
    pub async fn metrics(&self) -> String {
        self.signals.refresh_gauges().await;
        self.metrics.render()
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
