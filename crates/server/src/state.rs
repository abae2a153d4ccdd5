//! The one piece of state every handler and worker shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use switchyard_kit::{Keyspace, RedisConnection};

use crate::actions::service::Actions;
use crate::clients::Clients;
use crate::config::Settings;
use crate::identity::Identity;
use crate::jobs::service::Jobs;
use crate::mail::Mailer;
use crate::ratelimit::RateLimits;

/// Cheap to clone: every field is a handle to shared state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: PgPool,
    pub redis: RedisConnection,
    /// The deployment's Redis key namespace (`REDIS_KEY_PREFIX`).
    pub keys: Keyspace,
    pub settings: Arc<Settings>,
    pub metrics: PrometheusHandle,
    pub identity: Identity,
    pub clients: Clients,
    pub rate_limits: Arc<RateLimits>,
    pub actions: Actions,
    pub jobs: Jobs,
    /// Used by the worker's `mail` handler.
    pub mailer: Mailer,
}
