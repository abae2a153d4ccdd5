//! The job side of a worker process: one runner per queue (the queues
//! named on the command line, or every registered queue, picking up new
//! ones as they appear) and the cron scheduler, all stopped by one token.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use switchyard_kit::{KitError, PubSubHub, Queue, RedisConfig, RedisConnection};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::jobs::cron::CronScheduler;
use crate::jobs::handlers::Handlers;
use crate::jobs::runner::{Runner, RunnerOptions};

/// How often a worker without `--queues` looks for new queues, besides
/// hearing of each as it is registered (a missed announcement, during a
/// reconnect, is found by this look).
const DISCOVER_EVERY: Duration = Duration::from_secs(5);

/// Which queues a worker works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSelection {
    Named(Vec<String>),
    All,
}

pub fn runner_options(state: &AppState) -> RunnerOptions {
    let jobs = &state.settings.jobs;
    RunnerOptions {
        lease: jobs.lease,
        default_timeout: jobs.default_timeout,
        retention: state.jobs.retention(),
        shutdown_grace: jobs.shutdown_grace,
        prefetch_per_slot: jobs.prefetch_per_slot,
    }
}

/// Runs the selected queues with `concurrency` jobs in flight each, and the
/// cron entries, until `shutdown`; returns once in-flight jobs
/// are finished or released.
pub async fn run(
    state: AppState,
    handlers: Arc<Handlers>,
    cron: CronScheduler,
    selection: QueueSelection,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), KitError> {
    let redis_config = RedisConfig::new(state.settings.redis_url.expose_secret())?;
    let mut tasks = JoinSet::new();
    tasks.spawn(cron.run(shutdown.clone()));
    let mut started = HashSet::new();
    // Announcements of new queues; without them the periodic look remains.
    let mut announced = match selection {
        QueueSelection::All => match PubSubHub::connect(&redis_config).await {
            Ok(hub) => hub.subscribe(&Queue::registry_channel(&state.keys)).await.ok(),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for new queues; looking every {DISCOVER_EVERY:?}");
                None
            }
        },
        QueueSelection::Named(_) => None,
    };
    loop {
        let wanted = match &selection {
            QueueSelection::Named(names) => names.clone(),
            QueueSelection::All => Queue::registered(&state.redis, &state.keys).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "listing queues failed; retrying");
                Vec::new()
            }),
        };
        for name in wanted {
            if started.contains(&name) {
                continue;
            }
            match start_runner(&state, &handlers, &redis_config, &name).await {
                Ok((runner, waiter)) => {
                    tracing::info!(queue = %name, concurrency, "working queue");
                    tasks.spawn(runner.run(waiter, concurrency, shutdown.clone()));
                    started.insert(name);
                }
                Err(error) => tracing::warn!(%error, queue = %name, "cannot start working a queue; retrying"),
            }
        }
        if selection != QueueSelection::All && !started.is_empty() {
            break;
        }
        let announcement = async {
            match announced.as_mut() {
                Some(subscription) => subscription.next().await.is_some(),
                None => std::future::pending().await,
            }
        };
        let still_listening = tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(DISCOVER_EVERY) => true,
            heard = announcement => heard,
        };
        if !still_listening {
            announced = None; // the hub is gone: the periodic look remains
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn start_runner(
    state: &AppState,
    handlers: &Arc<Handlers>,
    redis_config: &RedisConfig,
    name: &str,
) -> Result<(Runner, RedisConnection), KitError> {
    let queue = state.jobs.queue(name);
    queue.register().await?;
    // Blocking waits hold their connection: each runner gets its own.
    let waiter = RedisConnection::connect(redis_config).await?;
    Ok((Runner::new(queue, handlers.clone(), runner_options(state)), waiter))
}
