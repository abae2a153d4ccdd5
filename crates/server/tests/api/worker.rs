//! The worker runtime: it registers itself, stays visible while it runs,
//! and deregisters on shutdown.

use std::time::Duration;

use switchyard::worker::{self, Worker};
use tokio_util::sync::CancellationToken;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_running_worker_is_listed_and_leaves_the_registry_on_shutdown() {
    let app = spawn_app().await;
    let worker = Worker::new(&app.state);
    let id = worker.id().to_owned();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let mut listed = false;
    for _ in 0..100 {
        let alive = worker::alive(&app.state).await.unwrap();
        if alive.iter().any(|(member, details)| member == &id && details.iter().any(|(k, _)| k == "pid")) {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(listed, "the worker registered with its details");

    shutdown.cancel();
    running.await.unwrap();
    assert!(worker::alive(&app.state).await.unwrap().is_empty());
    assert!(app.redis_keys().await.is_empty(), "no keys left behind");
}
