//! The recorder: the one task (in the `serve` process) that takes records
//! from the recording layer's channel and gets them into PostgreSQL.
//!
//! - The recorder is not woken per record: the sink wakes it when a
//!   batch's worth is waiting, and it looks at the channel at least every
//!   [`OBSERVE_EVERY`] on its own. A wake per request (a cross-thread
//!   wake-up, often a futex call, and a timer re-armed) cost more than
//!   everything else recording does on the request path.
//! - Records are shown to the [`BatchObserver`]s (live counters, the live
//!   feed) at every such look, so at most [`OBSERVE_EVERY`] after they
//!   arrive (the live feed lags by under a second whatever the flush
//!   interval); each record is observed once, before it is written.
//! - They are written in batches of `ACTIVITY_BATCH_SIZE`, or every
//!   `ACTIVITY_FLUSH_INTERVAL_MS`, whichever comes first, one statement
//!   per batch (`store::insert_batch`).
//! - When a write fails, that batch — and every later one until
//!   PostgreSQL answers again — goes to the Redis spill stream at once (the
//!   threshold is the first failed attempt: spilling is one XADD and keeps
//!   the channel moving, where retrying in place would fill it). The spill
//!   is drained oldest first with exponential back-off and jitter between
//!   attempts (200 ms doubling to 5 s); a successful drain step resets it.
//!   A new recorder drains whatever an earlier one left (start-up).
//! - When Redis refuses the spill too, batches wait in memory, at most
//!   `ACTIVITY_MEMORY_MAX_RECORDS` records; past that they are dropped,
//!   counted in `activity_dropped_total` and logged once per flush interval.
//! - On shutdown (after the HTTP server has drained) it empties the channel
//!   and writes, spills or drains everything it holds before its deadline.
//!
//! Invariants: one task owns all buffers (no locks); the request path only
//! ever `try_send`s; a record is written at least once and stored once
//! (its id is the key; `ON CONFLICT DO NOTHING`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::spill::Spill;
use super::{partitions, store, ActivityRecord, BatchObserver};

/// The longest records wait before the recorder looks at them and the
/// observers see them.
pub const OBSERVE_EVERY: Duration = Duration::from_millis(500);
/// Bound on one observer's call: a slow Redis must not hold up writes.
const OBSERVER_TIMEOUT: Duration = Duration::from_secs(1);
/// The most batches one write takes when the recorder is behind.
const BATCHES_PER_WRITE: usize = 10;
/// Bound on one batch write; an unanswered write counts as failed (and is
/// replayed from the spill, harmlessly if it did commit).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Spilled batches written per drain step before the recorder takes new
/// records again.
const DRAIN_STEP: usize = 16;
/// Shutdown budget when the stop signal carries none.
const FALLBACK_GRACE: Duration = Duration::from_secs(5);

/// The sending side, held by the recording layer; clones share it.
#[derive(Clone, Debug)]
pub struct ActivitySink(Arc<SinkInner>);

#[derive(Debug)]
struct SinkInner {
    tx: mpsc::Sender<ActivityRecord>,
    dropped: Arc<AtomicU64>,
    /// Woken when at least `batch_size` records wait.
    batch_ready: Arc<Notify>,
    batch_size: usize,
}

impl ActivitySink {
    /// Hands a record over without waiting; a full (or closed) channel
    /// drops it, counted. Wakes the recorder only once a batch's worth
    /// waits (a stored permit when it is busy: it looks again after).
    pub fn send(&self, record: ActivityRecord) {
        let inner = &*self.0;
        match inner.tx.try_send(record) {
            Ok(()) => {
                if inner.tx.max_capacity() - inner.tx.capacity() >= inner.batch_size {
                    inner.batch_ready.notify_one();
                }
            }
            Err(_) => {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("activity_dropped_total", "reason" => "channel_full").increment(1);
            }
        }
    }
}

/// The receiving side, for the [`Recorder`].
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<ActivityRecord>,
    batch_ready: Arc<Notify>,
    /// Records the sink could not hand over (shared with it).
    dropped_by_sink: Arc<AtomicU64>,
}

/// A channel of `capacity` records that wakes its reader per `batch_size`.
pub fn channel(capacity: usize, batch_size: usize) -> (ActivitySink, Inbox) {
    let (tx, rx) = mpsc::channel(capacity);
    let dropped = Arc::new(AtomicU64::new(0));
    let batch_ready = Arc::new(Notify::new());
    let batch_size = batch_size.clamp(1, capacity);
    let sink = SinkInner { tx, dropped: dropped.clone(), batch_ready: batch_ready.clone(), batch_size };
    (ActivitySink(Arc::new(sink)), Inbox { rx, batch_ready, dropped_by_sink: dropped })
}

/// Whether the channel can still bring records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    Open,
    /// Every sink is gone and the channel is empty.
    Closed,
}

/// How the recorder batches and what it may hold.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub memory_max_records: usize,
    pub partitions_ahead_days: u32,
}

/// Exponential back-off with jitter: each delay is drawn from the upper
/// half of the current step, so recorders of several instances spread out.
#[derive(Debug)]
struct Backoff {
    step: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { step: BACKOFF_FIRST }
    }

    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(BACKOFF_MAX);
        let half = u64::try_from(step.as_millis() / 2).unwrap_or(0);
        Duration::from_millis(half + rand::random_range(0..=half))
    }

    fn reset(&mut self) {
        self.step = BACKOFF_FIRST;
    }
}

/// The outcome of one step of draining the spill.
enum Drain {
    Empty,
    More,
    /// PostgreSQL refused a batch (or was not tried: memory still waits).
    Failed,
    /// Redis did not answer: the spill stays where it is.
    SpillUnreachable,
}

/// See the module docs.
pub struct Recorder {
    inbox: Inbox,
    db: PgPool,
    spill: Spill,
    observers: Vec<Arc<dyn BatchObserver>>,
    config: RecorderConfig,
    /// Records of the batch being formed; `pending[..observed]` have been
    /// shown to the observers.
    pending: Vec<ActivityRecord>,
    observed: usize,
    batch_started: Option<Instant>,
    /// Batches neither PostgreSQL nor Redis took, oldest first.
    memory: VecDeque<Vec<ActivityRecord>>,
    memory_len: usize,
    /// Whether the last write to PostgreSQL succeeded.
    db_ok: bool,
    /// Whether the spill may hold batches (true at start: an earlier
    /// process may have left some).
    spill_waiting: bool,
    backoff: Backoff,
    retry_at: Instant,
    /// Dropped records already logged, and when.
    dropped_here: u64,
    dropped_logged: u64,
    drops_logged_at: Instant,
    failure_logged_at: Option<Instant>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("pending", &self.pending.len())
            .field("memory", &self.memory_len)
            .field("db_ok", &self.db_ok)
            .field("spill_waiting", &self.spill_waiting)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(
        inbox: Inbox,
        db: PgPool,
        spill: Spill,
        observers: Vec<Arc<dyn BatchObserver>>,
        config: RecorderConfig,
    ) -> Self {
        let now = Instant::now();
        Self {
            inbox,
            db,
            spill,
            observers,
            config,
            pending: Vec::new(),
            observed: 0,
            batch_started: None,
            memory: VecDeque::new(),
            memory_len: 0,
            db_ok: true,
            spill_waiting: true,
            backoff: Backoff::new(),
            retry_at: now,
            dropped_here: 0,
            dropped_logged: 0,
            drops_logged_at: now,
            failure_logged_at: None,
        }
    }

    /// Runs until `stop` fires (with the deadline of the final flush), then
    /// flushes what it holds.
    pub async fn run(mut self, mut stop: oneshot::Receiver<Instant>) {
        let today = chrono::Utc::now().date_naive();
        if let Err(error) = partitions::maintain(&self.db, today, self.config.partitions_ahead_days, None).await {
            tracing::warn!(%error, "could not create the activity partitions at start-up; rows wait in the default partition");
        }
        let deadline = loop {
            if let Ok(at) = stop.try_recv() {
                break at;
            }
            if self.collect() == Intake::Closed {
                break Instant::now() + FALLBACK_GRACE;
            }
            self.step().await;
            if self.inbox.rx.len() >= self.config.batch_size {
                continue;
            }
            let wake = self.next_wake();
            tokio::select! {
                biased;
                at = &mut stop => break at.unwrap_or_else(|_| Instant::now() + FALLBACK_GRACE),
                () = self.inbox.batch_ready.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        };
        self.finish(deadline).await;
    }

    /// Moves waiting records into the batch being formed: up to
    /// [`BATCHES_PER_WRITE`] batches' worth, so a recorder that is behind
    /// writes a backlog with one statement and one commit per many batches
    /// rather than falling further behind one batch at a time.
    fn collect(&mut self) -> Intake {
        let most = self.config.batch_size.saturating_mul(BATCHES_PER_WRITE);
        while self.pending.len() < most {
            match self.inbox.rx.try_recv() {
                Ok(record) => {
                    self.batch_started.get_or_insert_with(Instant::now);
                    self.pending.push(record);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Intake::Closed,
            }
        }
        Intake::Open
    }

    fn needs_recovery(&self) -> bool {
        self.spill_waiting || !self.memory.is_empty()
    }

    /// The next look at the channel: [`OBSERVE_EVERY`] from now at the
    /// latest, sooner when the batch's flush or a recovery is due.
    fn next_wake(&self) -> Instant {
        let look = Instant::now() + OBSERVE_EVERY;
        let flush = self.batch_started.map(|at| at + self.config.flush_interval);
        let retry = self.needs_recovery().then_some(self.retry_at);
        [flush, retry].into_iter().flatten().fold(look, Instant::min)
    }

    /// Whatever is due: observe, write, recover; then the gauge and the
    /// drop log.
    async fn step(&mut self) {
        let flush_due = self.pending.len() >= self.config.batch_size
            || self.batch_started.is_some_and(|at| at + self.config.flush_interval <= Instant::now());
        // Every record is observed before it is written.
        if self.observed < self.pending.len() {
            self.observe().await;
        }
        if flush_due {
            let batch = self.take_batch();
            self.write(batch).await;
        }
        if self.needs_recovery() && self.retry_at <= Instant::now() {
            self.recover().await;
        }
        self.report();
    }

    fn take_batch(&mut self) -> Vec<ActivityRecord> {
        self.batch_started = None;
        self.observed = 0;
        std::mem::take(&mut self.pending)
    }

    /// Shows the records not yet observed to every observer, once.
    async fn observe(&mut self) {
        let fresh = &self.pending[self.observed..];
        for observer in &self.observers {
            let failure = match tokio::time::timeout(OBSERVER_TIMEOUT, observer.observe(fresh)).await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(_) => "timed out".to_owned(),
            };
            metrics::counter!("activity_observer_errors_total", "observer" => observer.name()).increment(1);
            tracing::warn!(observer = observer.name(), error = %failure, records = fresh.len(), "an activity observer failed; the records are written anyway");
        }
        self.observed = self.pending.len();
    }

    /// One batch statement, timed; the rows it added.
    async fn insert(&self, batch: &[ActivityRecord]) -> Result<u64, String> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(WRITE_TIMEOUT, store::insert_batch(&self.db, batch)).await;
        metrics::histogram!("activity_flush_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(added)) => {
                metrics::counter!("activity_written_total").increment(added);
                Ok(added)
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the write timed out".to_owned()),
        }
    }

    /// Writes a batch, or keeps it (spill, else memory) when PostgreSQL
    /// is away or something written earlier still waits.
    async fn write(&mut self, batch: Vec<ActivityRecord>) {
        if batch.is_empty() {
            return;
        }
        let nothing_waits = self.memory.is_empty() && !self.spill_waiting;
        if self.db_ok || nothing_waits {
            match self.insert(&batch).await {
                Ok(_) => {
                    self.db_ok = true;
                    return;
                }
                Err(error) => self.write_failed(&error),
            }
        }
        self.stash(batch).await;
    }

    fn write_failed(&mut self, error: &str) {
        if self.db_ok || self.failure_logged_at.is_none_or(|at| at.elapsed() >= self.config.flush_interval) {
            tracing::warn!(%error, "writing activity to PostgreSQL failed; spilling to Redis and retrying");
            self.failure_logged_at = Some(Instant::now());
        }
        if self.db_ok {
            self.retry_at = Instant::now() + self.backoff.next();
        }
        self.db_ok = false;
    }

    /// To the spill, else to memory.
    async fn stash(&mut self, batch: Vec<ActivityRecord>) {
        match self.spill.push(&batch).await {
            Ok(()) => {
                metrics::counter!("activity_spilled_total").increment(batch.len() as u64);
                self.spill_waiting = true;
            }
            Err(error) => {
                if self.failure_logged_at.is_none_or(|at| at.elapsed() >= self.config.flush_interval) {
                    tracing::warn!(%error, "spilling activity to Redis failed; holding it in memory");
                    self.failure_logged_at = Some(Instant::now());
                }
                self.hold(batch);
            }
        }
    }

    /// Into memory, up to the bound; the rest is dropped, counted.
    fn hold(&mut self, mut batch: Vec<ActivityRecord>) {
        let room = self.config.memory_max_records.saturating_sub(self.memory_len);
        if batch.len() > room {
            let over = (batch.len() - room) as u64;
            batch.truncate(room);
            self.dropped_here += over;
            metrics::counter!("activity_dropped_total", "reason" => "memory_full").increment(over);
        }
        if !batch.is_empty() {
            self.memory_len += batch.len();
            self.memory.push_back(batch);
        }
    }

    /// Memory first (into PostgreSQL, else into the spill), then the spill.
    async fn recover(&mut self) -> Drain {
        while let Some(batch) = self.memory.front() {
            match self.insert(batch).await {
                Ok(_) => {
                    self.db_ok = true;
                    self.memory_len -= batch.len();
                    self.memory.pop_front();
                }
                Err(error) => {
                    self.write_failed(&error);
                    break;
                }
            }
        }
        while let Some(batch) = self.memory.front() {
            if self.spill.push(batch).await.is_err() {
                break;
            }
            metrics::counter!("activity_spilled_total").increment(batch.len() as u64);
            self.spill_waiting = true;
            self.memory_len -= batch.len();
            self.memory.pop_front();
        }
        let drained =
            if self.spill_waiting && self.memory.is_empty() { self.drain_step().await } else { Drain::Failed };
        match drained {
            Drain::Empty => self.spill_waiting = false,
            Drain::More => {
                self.retry_at = Instant::now();
                return Drain::More;
            }
            Drain::Failed | Drain::SpillUnreachable => {}
        }
        if self.needs_recovery() {
            self.retry_at = Instant::now() + self.backoff.next();
        } else {
            self.backoff.reset();
        }
        drained
    }

    /// Writes the oldest spilled batches, deleting each after its commit.
    async fn drain_step(&mut self) -> Drain {
        let entries = match self.spill.oldest(DRAIN_STEP).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::debug!(%error, "reading the activity spill failed");
                return Drain::SpillUnreachable;
            }
        };
        if entries.is_empty() {
            return Drain::Empty;
        }
        for (id, batch) in entries {
            match batch {
                Some(batch) => match self.insert(&batch).await {
                    Ok(_) => {
                        if !self.db_ok {
                            tracing::info!("PostgreSQL takes activity again; draining the spill");
                        }
                        self.db_ok = true;
                        self.backoff.reset();
                    }
                    Err(error) => {
                        self.write_failed(&error);
                        return Drain::Failed;
                    }
                },
                None => {
                    tracing::warn!(entry = %id, "an activity spill entry cannot be read; deleting it");
                    self.dropped_here += 1;
                    metrics::counter!("activity_dropped_total", "reason" => "unreadable_spill").increment(1);
                }
            }
            if self.spill.delete(&id).await.is_err() {
                return Drain::SpillUnreachable;
            }
        }
        Drain::More
    }

    /// Sets the gauge; logs drops at most once per flush interval.
    fn report(&mut self) {
        let buffered = self.pending.len() + self.memory_len + self.inbox.rx.len();
        metrics::gauge!("activity_buffered").set(buffered as f64);
        let dropped = self.dropped_here + self.inbox.dropped_by_sink.load(Ordering::Relaxed);
        if dropped > self.dropped_logged && self.drops_logged_at.elapsed() >= self.config.flush_interval {
            tracing::warn!(
                dropped = dropped - self.dropped_logged,
                total = dropped,
                "activity records were dropped (channel or memory buffer full)"
            );
            self.dropped_logged = dropped;
            self.drops_logged_at = Instant::now();
        }
    }

    /// Takes what is left in the channel and gets everything it holds into
    /// PostgreSQL (or the spill) before `deadline`.
    async fn finish(mut self, deadline: Instant) {
        self.inbox.rx.close();
        while let Ok(record) = self.inbox.rx.try_recv() {
            self.pending.push(record);
        }
        let flushed = tokio::time::timeout_at(deadline, async {
            if self.observed < self.pending.len() {
                self.observe().await;
            }
            // Every record is observed now; each chunk leaves `pending` only
            // once its write is done, so what the deadline cuts off (a
            // write in flight included) is still there to be counted.
            self.observed = 0;
            while !self.pending.is_empty() {
                let chunk = self.pending.len().min(self.config.batch_size);
                self.write(self.pending[..chunk].to_vec()).await;
                self.pending.drain(..chunk);
            }
            while self.needs_recovery() {
                tokio::time::sleep_until(self.retry_at).await;
                // With Redis away and nothing in memory, the spill (if any)
                // waits in Redis for the next start.
                if matches!(self.recover().await, Drain::SpillUnreachable) && self.memory.is_empty() {
                    break;
                }
            }
        })
        .await;
        self.report();
        match flushed {
            Ok(()) => tracing::info!("activity recorder stopped; everything recorded is in PostgreSQL"),
            Err(_) => {
                let lost = self.memory_len + self.pending.len();
                if lost > 0 {
                    metrics::counter!("activity_dropped_total", "reason" => "shutdown").increment(lost as u64);
                }
                // A write the deadline cut short may have committed: `lost`
                // is an upper bound.
                tracing::warn!(
                    lost,
                    spill_waiting = self.spill_waiting,
                    "activity recorder stopped before everything was written; spilled batches are drained at the next start"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_200_ms_to_5_s_with_jitter_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next()).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200), "{delays:?}");
        assert!(delays[1] >= Duration::from_millis(200) && delays[1] <= Duration::from_millis(400), "{delays:?}");
        for delay in &delays[5..] {
            assert!(*delay >= Duration::from_millis(2500) && *delay <= BACKOFF_MAX, "{delays:?}");
        }
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(200));
    }
}
