//! The worker process: the job runners and the cron scheduler (`jobs`),
//! the built-in consumer groups (`groups`),
//! and this loop, which registers the worker in the `workers` heartbeat
//! registry (kept alive, removed on a clean shutdown, so operators can see
//! which workers run) and on every tick repairs actions whose Redis side
//! effects did not happen; at start and every [`PARTITIONS_EVERY`] it
//! maintains the activity partitions (days ahead created, expired ones
//! dropped). Beside it runs the outbox relay (`crate::outbox::Relay`),
//! which moves committed business events to their streams. Every loop is
//! driven by one cancellation token and can be stepped one iteration at a
//! time in tests.

use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::{Heartbeats, KitError};
use tokio_util::sync::CancellationToken;

use crate::actions::service::REPAIR_AFTER;
use crate::actions::Actions;
use crate::analytics::Activity;
use crate::app::AppState;
use crate::outbox::Relay;

pub mod groups;
pub mod jobs;

/// The registry name workers beat in.
pub const REGISTRY: &str = "workers";

/// How often a worker maintains the activity partitions (idempotent: several
/// workers doing it is harmless, and they take turns under a lock).
pub const PARTITIONS_EVERY: Duration = Duration::from_secs(3600);

/// One worker process.
#[derive(Debug, Clone)]
pub struct Worker {
    id: String,
    actions: Arc<Actions>,
    activity: Arc<Activity>,
    heartbeats: Heartbeats,
    interval: Duration,
    relay: Relay,
}

impl Worker {
    pub fn new(state: &AppState) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let id = format!("{host}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Self {
            id,
            actions: state.actions.clone(),
            activity: state.activity.clone(),
            heartbeats: Heartbeats::new(state.redis.clone(), state.keys.clone(), REGISTRY),
            interval: state.settings.worker_heartbeat,
            relay: outbox_relay(state),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// One iteration: renew the registration (for three intervals, so one
    /// late beat does not make the worker look dead), then repair actions
    /// whose Redis side effects did not happen.
    pub async fn tick(&self) -> Result<(), KitError> {
        match self.actions.repair_once(REPAIR_AFTER).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(repaired = n, "republished actions whose side effects were missing"),
            Err(error) => tracing::warn!(%error, "action repair failed; retrying next tick"),
        }
        self.beat().await
    }

    /// Creates the coming days' activity partitions and drops those past
    /// the retention; a failure is logged and retried next time.
    pub async fn maintain_partitions(&self) {
        if let Err(error) = self.activity.maintain_partitions(chrono::Utc::now().date_naive()).await {
            tracing::warn!(%error, "activity partition maintenance failed; retrying later");
        }
    }

    async fn beat(&self) -> Result<(), KitError> {
        let details = [
            ("pid", std::process::id().to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("last_beat", chrono::Utc::now().to_rfc3339()),
        ];
        self.heartbeats.beat(&self.id, self.interval * 3, &details).await
    }

    /// Runs until `shutdown` fires. Redis being away is logged and retried on
    /// the next tick, never fatal.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, "worker started");
        let relay = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let mut partitions_due = tokio::time::Instant::now();
        loop {
            if partitions_due <= tokio::time::Instant::now() {
                self.maintain_partitions().await;
                partitions_due += PARTITIONS_EVERY;
            }
            if let Err(error) = self.tick().await {
                tracing::warn!(%error, "worker heartbeat failed; retrying next tick");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        if let Err(error) = relay.await {
            tracing::warn!(%error, "the outbox relay ended abnormally");
        }
        if let Err(error) = self.heartbeats.remove(&self.id).await {
            tracing::warn!(%error, "could not deregister worker");
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }
}

/// The outbox relay over this process's connections and settings.
pub fn outbox_relay(state: &AppState) -> Relay {
    Relay::new(state.db.clone(), state.redis.clone(), state.keys.clone(), state.settings.outbox.retention)
        .with_registry(switchyard_kit::Quota::new(state.redis.clone(), state.keys.clone(), crate::app::STREAM_REGISTRY))
}

/// The workers alive now, by id, with what they reported.
pub async fn alive(state: &AppState) -> Result<Vec<(String, Vec<(String, String)>)>, KitError> {
    Heartbeats::new(state.redis.clone(), state.keys.clone(), REGISTRY).alive().await
}
