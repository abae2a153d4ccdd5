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

/// Events taken from one stream per step.
pub const BATCH: u64 = 100;
/// How long an idle loop waits before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(50);
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
        let room = BATCH - batch.len() as u64;
        if room > 0 {
            batch.extend(stream.read_group(name, &self.consumer, room).await?);
        }
        if batch.is_empty() {
            return Ok(Stepped { processed: 0, dead });
        }
        self.log.process(self.group, source, &batch).await?;
        let ids: Vec<&str> = batch.iter().map(|d| d.event.id.as_str()).collect();
        stream.ack(name, &ids).await?;
        Ok(Stepped { processed: batch.len(), dead })
    }

    /// Steps until `shutdown`: at once while there is work, every
    /// `IDLE_WAIT` otherwise; reclaims every half reclaim idle time (at
    /// most every 5 s), looks for new streams every second.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let reclaim_every =
            (self.log.settings().reclaim_idle / 2).clamp(Duration::from_millis(10), Duration::from_secs(5));
        let (mut reclaim_due, mut discover_due, mut prune_due) = (Instant::now(), Instant::now(), Instant::now());
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
            if !busy {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(IDLE_WAIT) => {}
                }
            }
        }
        tracing::info!(group = self.group.name(), "consumer group stopped");
    }
}
