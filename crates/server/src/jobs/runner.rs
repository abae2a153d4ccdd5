//! The worker side of a queue: lease jobs, run their handlers (with a hard
//! time limit, heartbeating the lease meanwhile), ack or fail them; reclaim
//! jobs whose worker vanished.
//!
//! One dispatcher per queue leases as many jobs as it has free slots
//! (bounded in-flight), and when the queue is empty blocks on the queue's
//! wake-up list on a connection of its own until an enqueue, the next
//! scheduled job's due time, or one second, so an idle worker neither
//! polls nor misses a delayed job. On shutdown it stops leasing, lets
//! in-flight jobs finish within the grace period, then releases the rest
//! back to the queue without spending an attempt.
//!
//! `run_one` is one fetch-and-run step, so tests drive the runner
//! deterministically.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_kit::{Failed, KitError, Leased, Queue, RedisConnection};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::handlers::{Handlers, JobContext, JobFailure};
use super::service::Retention;

/// The longest an idle dispatcher blocks before looking again (below the
/// connection's response timeout).
const MAX_WAIT: Duration = Duration::from_secs(1);

/// The most successes one ack call settles.
const ACK_BATCH: usize = 256;

/// How a runner treats its jobs.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    pub lease: Duration,
    pub default_timeout: Duration,
    pub retention: Retention,
    pub shutdown_grace: Duration,
    /// Jobs leased ahead of free slots, per slot, so the next one is at
    /// hand when a handler ends (0: lease only into free slots, fairer for
    /// long jobs shared by many workers).
    pub prefetch_per_slot: usize,
}

/// Runs the jobs of one queue.
#[derive(Clone, Debug)]
pub struct Runner {
    queue: Queue,
    handlers: Arc<Handlers>,
    options: RunnerOptions,
}

impl Runner {
    pub fn new(queue: Queue, handlers: Arc<Handlers>, options: RunnerOptions) -> Self {
        Self { queue, handlers, options }
    }

    /// Processes at most one job; true when there was one.
    pub async fn run_one(&self) -> Result<bool, KitError> {
        let Some(job) = self.queue.fetch(self.options.lease).await? else {
            return Ok(false);
        };
        let started = Instant::now();
        if let Some(outcome) = self.attempt(&job).await? {
            self.settle(&job, outcome, started).await?;
        }
        Ok(true)
    }

    /// Runs one leased attempt's handler to its end (or time limit);
    /// `None` when the lease was lost meanwhile (another worker owns the
    /// job now, so this attempt must not settle it).
    async fn attempt(&self, job: &Leased) -> Result<Option<Result<serde_json::Value, JobFailure>>, KitError> {
        let limit = job.timeout.unwrap_or(self.options.default_timeout);
        let context = JobContext {
            id: job.id.clone(),
            kind: job.kind.clone(),
            payload: serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
        };
        let handler = tokio::time::timeout(limit, self.handlers.run(context));
        tokio::pin!(handler);
        // Heartbeat while the handler runs, so a long job keeps its lease
        // and only a vanished worker's job goes to another worker.
        // (Starting one period from now: an interval's immediate first tick
        // still waits for the timer wheel, up to a millisecond per job.)
        let period = self.options.lease / 3;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let outcome = loop {
            tokio::select! {
                outcome = &mut handler => break outcome.unwrap_or_else(|_| {
                    Err(JobFailure::retry(format!("timed out after {} ms", limit.as_millis())))
                }),
                _ = beat.tick() => {
                    if !self.queue.heartbeat(job, self.options.lease).await? {
                        tracing::warn!(job = %job.id, "lost the lease of a running job; abandoning it");
                        return Ok(None);
                    }
                }
            }
        };
        Ok(Some(outcome))
    }

    /// Acks or fails the attempt with its outcome.
    async fn settle(
        &self,
        job: &Leased,
        outcome: Result<serde_json::Value, JobFailure>,
        started: Instant,
    ) -> Result<(), KitError> {
        let retention = self.options.retention;
        let label = match outcome {
            Ok(result) => {
                self.queue.ack(job, &result.to_string(), retention.succeeded).await?;
                "succeeded"
            }
            Err(failure) => {
                tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempt, error = %failure.message, "job attempt failed");
                match self.queue.fail(job, &failure.message, failure.is_final, retention.dead).await? {
                    Some(Failed::Dead) => "dead",
                    _ => "failed",
                }
            }
        };
        let queue = self.queue.name().to_owned();
        metrics::counter!("jobs_processed_total", "queue" => queue.clone(), "outcome" => label).increment(1);
        metrics::histogram!("job_duration_seconds", "queue" => queue).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Works the queue with up to `concurrency` jobs in flight until
    /// `shutdown`; `waiter` is a Redis connection for this runner alone.
    pub async fn run(self, waiter: RedisConnection, concurrency: usize, shutdown: CancellationToken) {
        let name = self.queue.name().to_owned();
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let (acks, pending) = mpsc::channel(concurrency.max(1) + ACK_BATCH);
        let shared = Shared {
            in_flight: Arc::default(),
            // A job's slot frees when its handler is done, so the next job
            // starts while it is acked; acks in flight are bounded by this
            // (room for a full ack batch, so a burst is acked in one call).
            settling: Arc::new(Semaphore::new(concurrency.max(1) + ACK_BATCH)),
            acks,
        };
        let acker = tokio::spawn(self.clone().ack_loop(pending, shared.in_flight.clone()));
        let reclaimer = tokio::spawn(self.clone().reclaim_loop(shutdown.clone()));
        let mut tasks = JoinSet::new();
        // Leased jobs waiting for a slot: the next job is at hand when a
        // handler ends, instead of one fetch round trip away.
        let mut buffer: VecDeque<Leased> = VecDeque::new();
        let prefetch = concurrency.max(1) * self.options.prefetch_per_slot;
        while !shutdown.is_cancelled() {
            while !buffer.is_empty() {
                let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                if let Some(job) = self.still_held(buffer.pop_front(), &shared).await {
                    self.start(&mut tasks, job, permit, &shared);
                }
            }
            // Refill once the buffer is half empty, in one call for the rest:
            // topping up one job at a time would cost a round trip per job.
            let room = (slots.available_permits() + prefetch).saturating_sub(buffer.len());
            if room > 0 && buffer.len() * 2 <= prefetch {
                match self.queue.fetch_many(self.options.lease, u32::try_from(room).unwrap_or(u32::MAX)).await {
                    Ok(fetched) if !fetched.jobs.is_empty() => {
                        for job in fetched.jobs {
                            lock(&shared.in_flight).insert(job.id.clone(), job.clone());
                            buffer.push_back(job);
                        }
                        continue;
                    }
                    Ok(fetched) if buffer.is_empty() => {
                        let wait = fetched.next_due.map_or(MAX_WAIT, |due| due.min(MAX_WAIT));
                        if !wait.is_zero() {
                            tokio::select! {
                                () = shutdown.cancelled() => {}
                                woken = self.queue.wait_for_work(&waiter, wait) => if let Err(error) = woken {
                                    tracing::warn!(%error, queue = %name, "waiting for jobs failed; retrying");
                                    pause(&shutdown, Duration::from_millis(500)).await;
                                }
                            }
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, queue = %name, "fetching jobs failed; retrying");
                        pause(&shutdown, Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            // Jobs are waiting and every slot is busy: wait for a slot.
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            };
            if let Some(job) = self.still_held(buffer.pop_front(), &shared).await {
                self.start(&mut tasks, job, permit, &shared);
            }
            while tasks.try_join_next().is_some() {}
        }
        // Jobs not started go back at once; running ones get the grace period.
        for job in buffer.drain(..) {
            lock(&shared.in_flight).remove(&job.id);
            self.release(&job).await;
        }
        let drained =
            tokio::time::timeout(self.options.shutdown_grace, async { while tasks.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // Finished jobs are acked before anything is released.
        let in_flight = shared.in_flight.clone();
        drop(shared);
        let _ = acker.await;
        let unfinished: Vec<Leased> = lock(&in_flight).drain().map(|(_, job)| job).collect();
        for job in unfinished {
            self.release(&job).await;
        }
        let _ = reclaimer.await;
    }

    /// Returns a buffered job if this worker still holds its lease, renewing
    /// a lease that has run more than half its length while the job waited.
    async fn still_held(&self, job: Option<Leased>, shared: &Shared) -> Option<Leased> {
        let job = job?;
        let half = u64::try_from((self.options.lease / 2).as_millis()).unwrap_or(u64::MAX);
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        if job.lease_until_ms > now + half || matches!(self.queue.heartbeat(&job, self.options.lease).await, Ok(true)) {
            return Some(job);
        }
        lock(&shared.in_flight).remove(&job.id);
        tracing::warn!(job = %job.id, "a prefetched job lost its lease before it started; another worker has it");
        None
    }

    async fn release(&self, job: &Leased) {
        match self.queue.release(job).await {
            Ok(_) => tracing::info!(job = %job.id, "released an unstarted or unfinished job at shutdown"),
            Err(error) => tracing::warn!(%error, job = %job.id, "could not release a job; its lease will expire"),
        }
    }

    /// Runs `job` in the slot `permit` holds, then settles it.
    fn start(&self, tasks: &mut JoinSet<()>, job: Leased, permit: OwnedSemaphorePermit, shared: &Shared) {
        let (runner, in_flight, settling, acks) =
            (self.clone(), shared.in_flight.clone(), shared.settling.clone(), shared.acks.clone());
        tasks.spawn(async move {
            let started = Instant::now();
            let attempt = runner.attempt(&job).await;
            let Ok(settle_permit) = settling.acquire_owned().await else { return };
            drop(permit);
            let settled = match attempt {
                // Successes are acked in batches by the acker.
                Ok(Some(Ok(result))) => {
                    let ack = PendingAck { job, result: result.to_string(), started, _permit: settle_permit };
                    if acks.send(ack).await.is_err() {
                        tracing::warn!("the acker stopped; the job's lease will expire");
                    }
                    return;
                }
                Ok(Some(outcome)) => runner.settle(&job, outcome, started).await,
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = settled {
                // Unsettled: its lease expires and the job is retried.
                tracing::warn!(%error, job = %job.id, "could not settle a job; its lease will expire");
            }
            lock(&in_flight).remove(&job.id);
            drop(settle_permit);
        });
    }

    /// Acks finished jobs in batches (whatever has piled up since the last
    /// call, up to `ACK_BATCH`): one script call for a burst instead of one each.
    async fn ack_loop(self, mut pending: mpsc::Receiver<PendingAck>, in_flight: InFlight) {
        let mut batch = Vec::with_capacity(ACK_BATCH);
        while pending.recv_many(&mut batch, ACK_BATCH).await > 0 {
            let jobs: Vec<(&Leased, &str)> = batch.iter().map(|a| (&a.job, a.result.as_str())).collect();
            match self.queue.ack_many(&jobs, self.options.retention.succeeded).await {
                Ok(_) => {
                    let queue = self.queue.name().to_owned();
                    metrics::counter!("jobs_processed_total", "queue" => queue.clone(), "outcome" => "succeeded")
                        .increment(batch.len() as u64);
                    let histogram = metrics::histogram!("job_duration_seconds", "queue" => queue);
                    for ack in &batch {
                        histogram.record(ack.started.elapsed().as_secs_f64());
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, jobs = batch.len(), "acking jobs failed; their leases will expire")
                }
            }
            let mut running = lock(&in_flight);
            for ack in batch.drain(..) {
                running.remove(&ack.job.id);
            }
        }
    }

    /// Settles jobs whose worker stopped heartbeating, until `shutdown`.
    async fn reclaim_loop(self, shutdown: CancellationToken) {
        let every = (self.options.lease / 2).min(Duration::from_secs(1));
        while !shutdown.is_cancelled() {
            match self.queue.reclaim_expired(1000, self.options.retention.dead).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queue = %self.queue.name(), reclaimed = n, "jobs of vanished workers returned"),
                Err(error) => tracing::warn!(%error, "reclaiming expired leases failed"),
            }
            pause(&shutdown, every).await;
        }
    }
}

/// Leased jobs not yet settled, by id: released if shutdown cuts them off.
type InFlight = Arc<Mutex<HashMap<String, Leased>>>;

/// What a runner's job tasks share.
struct Shared {
    in_flight: InFlight,
    settling: Arc<Semaphore>,
    acks: mpsc::Sender<PendingAck>,
}

/// A succeeded attempt waiting for the acker; its permit bounds how many wait.
struct PendingAck {
    job: Leased,
    result: String,
    started: Instant,
    _permit: OwnedSemaphorePermit,
}

fn lock(map: &Mutex<HashMap<String, Leased>>) -> std::sync::MutexGuard<'_, HashMap<String, Leased>> {
    map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sleeps for `duration` or until shutdown.
async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}
