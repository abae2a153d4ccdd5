//! The worker side of the queue: lease a job, run its handler while
//! heartbeating the lease, ack or fail it; meanwhile reclaim jobs whose
//! worker vanished. A job loses its lease only when its worker stops
//! heartbeating (the process died or hung); handlers have no hard time
//! limit yet.
//!
//! `run_one` is one step, so tests drive the runner deterministically;
//! `run` loops it with a bounded number of jobs in flight until shutdown,
//! then lets in-flight jobs finish (what it had not fetched stays queued).

use std::time::{Duration, Instant};

use switchyard_kit::{Failed, KitError, Queue};
use tokio_util::sync::CancellationToken;

use super::handlers;
use super::service::{DEAD_RETENTION, SUCCEEDED_RETENTION};

/// Runs the jobs of one queue.
#[derive(Clone, Debug)]
pub struct Runner {
    queue: Queue,
    name: String,
    lease: Duration,
}

impl Runner {
    pub fn new(queue: Queue, name: &str, lease: Duration) -> Self {
        Self { queue, name: name.to_owned(), lease }
    }

    /// Processes at most one job; true when there was one.
    pub async fn run_one(&self) -> Result<bool, KitError> {
        let Some(job) = self.queue.fetch(self.lease).await? else {
            return Ok(false);
        };
        let started = Instant::now();
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
        // Heartbeat while the handler runs, so a long job keeps its lease
        // and only a vanished worker's job goes to another worker.
        let handler = handlers::run(&job.kind, &payload, job.attempt);
        tokio::pin!(handler);
        let mut beat = tokio::time::interval(self.lease / 3);
        beat.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut handler => break outcome,
                _ = beat.tick() => {
                    if !self.queue.heartbeat(&job, self.lease).await? {
                        break Err("lost the lease".to_owned());
                    }
                }
            }
        };
        let label = match outcome {
            Ok(result) => {
                self.queue.ack(&job, &result.to_string(), SUCCEEDED_RETENTION).await?;
                "succeeded"
            }
            Err(error) => match self.queue.fail(&job, &error, DEAD_RETENTION).await? {
                Some(Failed::Dead) => "dead",
                _ => "failed",
            },
        };
        metrics::counter!("jobs_processed_total", "queue" => self.name.clone(), "outcome" => label).increment(1);
        metrics::histogram!("job_duration_seconds", "queue" => self.name.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(true)
    }

    /// Works the queue with `concurrency` jobs in flight until `shutdown`.
    pub async fn run(self, concurrency: usize, shutdown: CancellationToken) {
        let mut tasks = Vec::with_capacity(concurrency + 1);
        for _ in 0..concurrency.max(1) {
            let (runner, shutdown) = (self.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                let mut idle = Duration::from_millis(5);
                while !shutdown.is_cancelled() {
                    match runner.run_one().await {
                        Ok(true) => idle = Duration::from_millis(5),
                        Ok(false) => {
                            // Polling with back-off while idle (a blocking
                            // wait on a dedicated connection is the next step).
                            tokio::select! {
                                () = shutdown.cancelled() => {}
                                () = tokio::time::sleep(idle) => {}
                            }
                            idle = (idle * 2).min(Duration::from_millis(100));
                        }
                        Err(error) => {
                            tracing::warn!(%error, queue = %runner.name, "job runner error; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }));
        }
        let (queue, name) = (self.queue.clone(), self.name.clone());
        let reclaim_every = (self.lease / 2).min(Duration::from_secs(1));
        tasks.push(tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                match queue.reclaim_expired(1000, DEAD_RETENTION).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(queue = %name, reclaimed = n, "jobs of vanished workers returned"),
                    Err(error) => tracing::warn!(%error, "reclaiming expired leases failed"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(reclaim_every) => {}
                }
            }
        }));
        for task in tasks {
            let _ = task.await;
        }
    }
}
