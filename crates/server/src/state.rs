//! The one piece of state every handler and worker shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use switchyard_kit::{Keyspace, RedisConnection};

use crate::actions::service::Actions;
use crate::clients::Clients;
use crate::config::Settings;
use crate::events::service::Events;
use crate::identity::Identity;
use crate::jobs::service::Jobs;
use crate::mail::Mailer;
use crate::notifications::service::Notifications;
use crate::ratelimit::RateLimits;

/// The shared state, behind one `Arc`: axum clones the state for every
/// extractor and middleware of every request, so a clone must be one
/// reference-count increment, not a copy of every handle (which showed up
/// as a third of the CPU of an authenticated request).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Every handle a handler or worker may need.
#[derive(Debug)]
pub struct Services {
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
    pub events: Events,
    pub notifications: Notifications,
    /// Cancelled when the server starts shutting down: long-lived responses
    /// (live streams) end then instead of holding the drain open.
    pub closing: tokio_util::sync::CancellationToken,
    /// Used by the worker's `mail` handler.
    pub mailer: Mailer,
}
