//! One built-in consumer group at work: each step takes, from every stream
//! the group reads, what a dead consumer left (after `EVENTS_RECLAIM_IDLE_MS`;
//! past `EVENTS_MAX_DELIVERIES` it is dead-lettered instead, in the same
//! script) and a batch of new events, does the group's work and only then
//! acknowledges. A test drives [`GroupWorker::step`]; the worker runs
//! [`GroupWorker::run`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::{KitError, StartAt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::service::{EventLog, EventLogError, Group, Source};

/// Events reclaimed from one stream per step.
pub const BATCH: u64 = 100;
/// Events read from one stream per step, at most: a backlog (after a
/// burst, a restart, a new stream) drains in large inserts, each about as
/// costly as a small one, instead of one commit per hundred events.
pub const READ_MAX: u64 = 1000;
/// How long a loop that found nothing waits before looking again: at
/// first briefly (events keep coming while there is traffic), doubling
/// while it stays idle up to the longest, which bounds what an idle group
/// costs Redis (one read per stream per wait).
const IDLE_WAIT_MIN: Duration = Duration::from_millis(2);
const IDLE_WAIT_MAX: Duration = Duration::from_millis(50);
/// How often the loop looks for new streams.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);
/// How often counted events older than a week are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stepped {
    /// Events processed and acknowledged.
    pub processed: usize,
    /// Events moved to a dead-letter stream.
    pub dead: usize,
}

/// One consumer of one built-in group.
#[derive(Debug)]
pub struct GroupWorker {
    log: Arc<EventLog>,
    group: Group,
    consumer: String,
    /// Streams whose group this worker has made sure of.
    created: HashSet<String>,
    sources: Vec<Source>,
}

fn is_nogroup(error: &KitError) -> bool {
    matches!(error, KitError::Redis(e) if e.code() == Some("NOGROUP"))
}

impl GroupWorker {
    pub fn new(log: Arc<EventLog>, group: Group, consumer: &str) -> Self {
        Self { log, group, consumer: consumer.to_owned(), created: HashSet::new(), sources: Vec::new() }
    }

    /// Looks for the streams the group reads (new persistent streams, new
    /// accounts' streams).
    pub async fn discover(&mut self) -> Result<(), EventLogError> {
        self.sources = self.log.sources(self.group, None).await?;
        Ok(())
    }

    /// Discovers, then reclaims (when `reclaim`) and processes one batch of
    /// every stream. A stream that fails is logged and skipped.
    pub async fn step(&mut self, reclaim: bool) -> Result<Stepped, EventLogError> {
        self.discover().await?;
        self.step_known(reclaim).await
    }

    async fn step_known(&mut self, reclaim: bool) -> Result<Stepped, EventLogError> {
        let mut total = Stepped::default();
        for source in self.sources.clone() {
            match self.step_stream(&source, reclaim).await {
                Ok(done) => {
                    total.processed += done.processed;
                    total.dead += done.dead;
                }
                Err(EventLogError::Redis(e)) if is_nogroup(&e) => {
                    // The stream was deleted: make the group again next time.
                    self.created.remove(&source.stream);
                }
                Err(error) => {
                    tracing::warn!(%error, group = self.group.name(), stream = %source.stream, "event processing failed; retrying");
                }
            }
        }
        Ok(total)
    }

    async fn step_stream(&mut self, source: &Source, reclaim: bool) -> Result<Stepped, EventLogError> {
        let stream = self.log.stream(source);
        let name = self.group.name();
        if !self.created.contains(&source.stream) {
            stream.create_group(name, StartAt::Beginning).await?;
            self.created.insert(source.stream.clone());
        }
        let mut batch = Vec::new();
        let mut dead = 0;
        if reclaim {
            let settings = self.log.settings();
            let reclaimed =
                stream.reclaim(name, &self.consumer, settings.reclaim_idle, BATCH, settings.max_deliveries).await?;
            dead = reclaimed.dead.len();
            batch = reclaimed.claimed;
        }
        batch.extend(stream.read_group(name, &self.consumer, READ_MAX - batch.len() as u64).await?);
        if batch.is_empty() {
            return Ok(Stepped { processed: 0, dead });
        }
        self.log.process(self.group, source, &batch).await?;
        let ids: Vec<&str> = batch.iter().map(|d| d.event.id.as_str()).collect();
        stream.ack(name, &ids).await?;
        Ok(Stepped { processed: batch.len(), dead })
    }

    /// Steps until `shutdown`: at once while there is work, after an idle
    /// wait growing from `IDLE_WAIT_MIN` to `IDLE_WAIT_MAX` otherwise; reclaims every half reclaim idle time (at
    /// most every 5 s), looks for new streams every second.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let reclaim_every =
            (self.log.settings().reclaim_idle / 2).clamp(Duration::from_millis(10), Duration::from_secs(5));
        let (mut reclaim_due, mut discover_due, mut prune_due) = (Instant::now(), Instant::now(), Instant::now());
        let mut idle_wait = IDLE_WAIT_MIN;
        tracing::info!(group = self.group.name(), consumer = %self.consumer, "consumer group started");
        while !shutdown.is_cancelled() {
            let now = Instant::now();
            if discover_due <= now {
                if let Err(error) = self.discover().await {
                    tracing::warn!(%error, group = self.group.name(), "looking for streams failed; retrying");
                }
                discover_due = now + DISCOVER_EVERY;
            }
            if self.group == Group::TaskProcessing && prune_due <= now {
                if let Err(error) = self.log.prune().await {
                    tracing::warn!(%error, "pruning counted events failed; retrying later");
                }
                prune_due = now + PRUNE_EVERY;
            }
            let reclaim = reclaim_due <= now;
            if reclaim {
                reclaim_due = now + reclaim_every;
            }
            let busy = match self.step_known(reclaim).await {
                Ok(done) => done.processed > 0,
                Err(error) => {
                    tracing::warn!(%error, group = self.group.name(), "event processing failed; retrying");
                    false
                }
            };
            if busy {
                idle_wait = IDLE_WAIT_MIN;
            } else {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(idle_wait) => {}
                }
                idle_wait = (idle_wait * 2).min(IDLE_WAIT_MAX);
            }
        }
        tracing::info!(group = self.group.name(), "consumer group stopped");
    }
}
