//! The built-in consumer groups of a worker process (`event-log`,
//! `task-processing`, `log-processing`): one consumer of each, named after
//! the worker, all stopped by one token. Several workers share each group's
//! work; what one left when it died is reclaimed by another.

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::eventlog::service::GROUPS;
use crate::eventlog::GroupWorker;

/// Runs every built-in group until `shutdown`; returns once each has
/// finished its step in flight (unacknowledged work is reclaimed later).
pub async fn run(state: AppState, consumer: String, shutdown: CancellationToken) {
    let mut tasks = JoinSet::new();
    for group in GROUPS {
        tasks.spawn(GroupWorker::new(state.event_log.clone(), group, &consumer).run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
}
