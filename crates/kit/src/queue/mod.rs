//! A job queue on Redis: every state change is one Lua script.
//!
//! Jobs are hashes; a queue is four sorted sets sharing the queue's hash
//! tag: `ready` (scored by priority, then enqueue order: higher priority
//! first, FIFO within one), `scheduled` (delayed and retry-waiting jobs by
//! due time, promoted when a fetch finds them due), `active` (leased jobs
//! by lease deadline) and `dead`. A fetch leases a job; the worker acks or
//! fails it with the attempt number it was given, so a worker whose lease
//! expired (and whose job was reclaimed and handed to another) can no
//! longer settle it. Unique keys make a second enqueue return the pending
//! job's id.
//!
//! Delivery is at least once: a job whose lease expires counts an attempt
//! and is retried (or goes dead), never lost.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use rand::Rng;
use redis::Script;

use crate::duration::millis;
use crate::{Keyspace, KitError, RedisConnection};

mod admin;
pub use admin::{DeadJob, QueueOverview};

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("enqueue.lua")));
static FETCH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fetch.lua")));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("ack.lua")));
static FAIL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fail.lua")));
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("heartbeat.lua")));
static CANCEL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("cancel.lua")));
pub(super) static RETRY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("retry.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));

/// How long to wait before retrying a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// `base * 2^(attempt-1)`, capped at `max`, with equal jitter.
    Exponential {
        base: Duration,
        max: Duration,
    },
    Fixed(Duration),
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    /// JSON text.
    pub payload: String,
    /// -1000..=1000, higher first.
    pub priority: i32,
    pub delay: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Lease length for this job; `None` uses the fetcher's.
    pub timeout: Option<Duration>,
    pub unique_key: Option<String>,
    /// Who the job belongs to (stored as the `owner` field).
    pub owner: String,
    /// While a job enqueued with this key was created less than the given
    /// window ago, enqueueing returns its id (whatever its state): how a
    /// recurring job is enqueued once per tick by many schedulers.
    pub dedupe: Option<(String, Duration)>,
    /// The payload carries a secret: it is deleted once the job succeeds or
    /// dies (a dead one cannot be retried usefully then).
    pub sensitive: bool,
}

impl NewJob {
    pub fn new(kind: &str, payload: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            payload: payload.to_owned(),
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: 3,
            backoff: Backoff::Exponential { base: Duration::from_secs(1), max: Duration::from_secs(3600) },
            timeout: None,
            unique_key: None,
            owner: String::new(),
            dedupe: None,
            sensitive: false,
        }
    }
}

/// A leased job, to be acked or failed with its `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease_until_ms: u64,
    /// The job's own limit on one attempt's run time.
    pub timeout: Option<Duration>,
}

/// What one fetch found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    pub jobs: Vec<Leased>,
    /// How long until the next scheduled job is due (`None`: none is, or
    /// the queue is paused): how long an idle worker may block.
    pub next_due: Option<Duration>,
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Scheduled again after its back-off.
    Retrying,
    /// Its attempts are spent: in the dead set.
    Dead,
}

/// One named queue.
#[derive(Clone, Debug)]
pub struct Queue {
    conn: RedisConnection,
    keys: Keyspace,
    tag: String,
    name: String,
}

impl Queue {
    pub fn new(conn: RedisConnection, keys: Keyspace, name: &str) -> Self {
        Self { conn, keys, tag: format!("q:{name}"), name: name.to_owned() }
    }

    /// The queue a job id belongs to (ids are `<queue>.<hex>`).
    pub fn queue_of(id: &str) -> Option<&str> {
        id.rsplit_once('.').map(|(queue, _)| queue).filter(|q| !q.is_empty())
    }

    fn key(&self, part: &str) -> String {
        self.keys.tagged(&self.tag, &[part])
    }

    fn job_key(&self, id: &str) -> String {
        self.keys.tagged(&self.tag, &["job", id])
    }

    fn job_prefix(&self) -> String {
        self.keys.tagged(&self.tag, &["job", ""])
    }

    /// The counter of `what` (processed, failed) for the current period.
    fn stats_key(&self, what: &str) -> String {
        self.stats_key_at(what, stats_period_now())
    }

    fn stats_key_at(&self, what: &str, period: u64) -> String {
        self.keys.tagged(&self.tag, &["stats", what, &period.to_string()])
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn enqueue_invocation(&self, job: &NewJob) -> redis::ScriptInvocation<'static> {
        let id = format!("{}.{}", self.name, uuid_like());
        let unique_slot = job.unique_key.as_ref().map(|k| self.keys.tagged(&self.tag, &["unique", k]));
        let dedupe_slot = job.dedupe.as_ref().map(|(k, _)| self.keys.tagged(&self.tag, &["once", k]));
        let (kind, base, max) = match job.backoff {
            Backoff::Exponential { base, max } => ("exponential", base, max),
            Backoff::Fixed(d) => ("fixed", d, d),
        };
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation
            .key(self.job_key(&id))
            .key(self.key("ready"))
            .key(self.key("scheduled"))
            .key(self.key("seq"))
            .key(unique_slot.clone().unwrap_or_else(|| self.job_key(&id)))
            .key(self.key("ready_at"))
            .key(self.key("signal"))
            .key(dedupe_slot.unwrap_or_else(|| self.job_key(&id)))
            .arg(&id)
            .arg(&job.kind)
            .arg(&job.payload)
            .arg(job.priority.clamp(-1000, 1000))
            .arg(millis(job.delay))
            .arg(job.max_attempts.max(1))
            .arg(kind)
            .arg(millis(base))
            .arg(millis(max))
            .arg(job.timeout.map_or(0, millis))
            .arg(u8::from(unique_slot.is_some()))
            .arg(&job.owner)
            .arg(job.dedupe.as_ref().map_or(0, |(_, window)| millis(*window).max(1)))
            .arg(u8::from(job.sensitive));
        invocation
    }

    /// Enqueues a job; returns its id and whether it was created (`false`:
    /// a pending job with the same unique key exists and its id is returned).
    ///
    /// The queue registers itself (see [`Queue::register`]) when this is its
    /// first job, also the first after Redis lost the queue's keys; a caller
    /// that must see it registered before any job is visible registers first.
    pub async fn enqueue(&self, job: &NewJob) -> Result<(String, bool), KitError> {
        let mut conn = self.conn.clone();
        let (id, created, first): (String, u8, u8) = self.enqueue_invocation(job).invoke_async(&mut conn).await?;
        if first == 1 {
            self.register().await?;
        }
        Ok((id, created == 1))
    }

    /// Enqueues many jobs in one round trip (each atomically); results in
    /// order. Registers the queue as [`Queue::enqueue`] does.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(String, bool)>, KitError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.invoke_script(&self.enqueue_invocation(job));
        }
        let replies: Vec<(String, u8, u8)> = crate::connection::query_pipeline(&self.conn, &pipe, &[&ENQUEUE]).await?;
        if replies.iter().any(|(_, _, first)| *first == 1) {
            self.register().await?;
        }
        Ok(replies.into_iter().map(|(id, created, _)| (id, created == 1)).collect())
    }

    /// Leases the next job for `lease` (the worker heartbeats to keep it).
    pub async fn fetch(&self, lease: Duration) -> Result<Option<Leased>, KitError> {
        Ok(self.fetch_many(lease, 1).await?.jobs.pop())
    }

    /// Promotes due scheduled jobs and leases up to `max` ready ones, in
    /// priority order, in one script call.
    pub async fn fetch_many(&self, lease: Duration, max: u32) -> Result<Fetched, KitError> {
        type Row = (String, String, String, u32, u32, u64, u64);
        let mut conn = self.conn.clone();
        let (rows, wait_ms): (Vec<Row>, i64) = FETCH
            .key(self.key("ready"))
            .key(self.key("scheduled"))
            .key(self.key("active"))
            .key(self.key("ready_at"))
            .key(self.key("paused"))
            .key(self.key("retrying"))
            .arg(self.job_prefix())
            .arg(millis(lease).max(1))
            .arg(1000)
            .arg(max.max(1))
            .invoke_async(&mut conn)
            .await?;
        let jobs = rows
            .into_iter()
            .map(|(id, kind, payload, attempt, max_attempts, lease_until_ms, timeout_ms)| Leased {
                id,
                kind,
                payload,
                attempt,
                max_attempts,
                lease_until_ms,
                timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
            })
            .collect();
        let next_due = u64::try_from(wait_ms).ok().map(Duration::from_millis);
        Ok(Fetched { jobs, next_due })
    }

    /// Blocks on `waiter` (a connection of its own: the wait holds it) until
    /// a job may be ready or `timeout` passes (at most the connection's
    /// response timeout). True when woken by an enqueue.
    pub async fn wait_for_work(&self, waiter: &RedisConnection, timeout: Duration) -> Result<bool, KitError> {
        let mut conn = waiter.clone();
        let seconds = timeout.as_secs_f64().clamp(0.01, 60.0);
        let woken: Option<(String, String)> =
            redis::cmd("BLPOP").arg(self.key("signal")).arg(seconds).query_async(&mut conn).await?;
        Ok(woken.is_some())
    }

    /// Extends the lease of `job`'s attempt; false when it no longer holds it.
    pub async fn heartbeat(&self, job: &Leased, lease: Duration) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let done: u8 = HEARTBEAT
            .key(self.job_key(&job.id))
            .key(self.key("active"))
            .arg(&job.id)
            .arg(job.attempt)
            .arg(millis(lease).max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    /// Marks the attempt succeeded; false when it no longer held the lease.
    pub async fn ack(&self, job: &Leased, result: &str, retention: Duration) -> Result<bool, KitError> {
        Ok(self.ack_many(&[(job, result)], retention).await?.first().copied().unwrap_or(false))
    }

    /// Acks many attempts of this queue in one script call (each as `ack`);
    /// one flag per job, in order.
    pub async fn ack_many(&self, jobs: &[(&Leased, &str)], retention: Duration) -> Result<Vec<bool>, KitError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = ACK.prepare_invoke();
        invocation
            .key(self.key("active"))
            .key(self.stats_key("processed"))
            .arg(self.job_prefix())
            .arg(millis(retention).max(1))
            .arg(STATS_LIFETIME_MS);
        for (job, result) in jobs {
            invocation.arg(&job.id).arg(job.attempt).arg(*result);
        }
        let mut conn = self.conn.clone();
        let done: Vec<u8> = invocation.invoke_async(&mut conn).await?;
        Ok(done.into_iter().map(|d| d == 1).collect())
    }

    /// One call of the fail script: `mode` is `fail` (target = the job id)
    /// or `reclaim` (target = how many expired leases to settle).
    async fn run_fail(
        &self,
        mode: &str,
        target: &str,
        attempt: u32,
        error: &str,
        settle: Settle,
    ) -> Result<u64, KitError> {
        let jitter: f64 = rand::rng().random();
        let mut conn = self.conn.clone();
        Ok(FAIL
            .key(self.key("active"))
            .key(self.key("scheduled"))
            .key(self.key("dead"))
            .key(self.key("retrying"))
            .key(self.stats_key("failed"))
            .key(self.key("signal"))
            .arg(self.job_prefix())
            .arg(mode)
            .arg(target)
            .arg(attempt)
            .arg(error)
            .arg(jitter)
            .arg(millis(settle.dead_retention).max(1))
            .arg(u8::from(settle.is_final))
            .arg(STATS_LIFETIME_MS)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Records a failed attempt; `None` when it no longer held the lease.
    /// A final failure goes dead at once, whatever attempts are left.
    pub async fn fail(
        &self,
        job: &Leased,
        error: &str,
        is_final: bool,
        dead_retention: Duration,
    ) -> Result<Option<Failed>, KitError> {
        let settle = Settle { is_final, dead_retention };
        Ok(match self.run_fail("fail", &job.id, job.attempt, error, settle).await? {
            1 => Some(Failed::Retrying),
            2 => Some(Failed::Dead),
            _ => None,
        })
    }

    /// Settles up to `limit` jobs whose lease expired as failed attempts;
    /// returns how many.
    pub async fn reclaim_expired(&self, limit: u32, dead_retention: Duration) -> Result<u64, KitError> {
        let settle = Settle { is_final: false, dead_retention };
        self.run_fail("reclaim", &limit.to_string(), 0, "", settle).await
    }

    /// Gives a leased job back to the queue without counting the attempt
    /// (for a worker that stops before finishing it); false when the lease
    /// was no longer held.
    pub async fn release(&self, job: &Leased) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let done: u8 = RELEASE
            .key(self.job_key(&job.id))
            .key(self.key("active"))
            .key(self.key("ready"))
            .key(self.key("ready_at"))
            .key(self.key("signal"))
            .arg(&job.id)
            .arg(job.attempt)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    /// Cancels a scheduled or queued job: `Some(true)` cancelled,
    /// `Some(false)` in another state, `None` no such job.
    pub async fn cancel(&self, id: &str, retention: Duration) -> Result<Option<bool>, KitError> {
        let mut conn = self.conn.clone();
        let outcome: i64 = CANCEL
            .key(self.job_key(id))
            .key(self.key("ready"))
            .key(self.key("scheduled"))
            .key(self.key("ready_at"))
            .arg(id)
            .arg(millis(retention).max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        })
    }

    /// Requeues a dead or retry-waiting job with fresh attempts:
    /// `Some(true)` done, `Some(false)` in another state, `None` no such job.
    pub async fn retry(&self, id: &str) -> Result<Option<bool>, KitError> {
        let mut conn = self.conn.clone();
        let outcome: i64 = self.retry_invocation(id).invoke_async(&mut conn).await?;
        Ok(match outcome {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        })
    }

    fn retry_invocation(&self, id: &str) -> redis::ScriptInvocation<'static> {
        let mut invocation = RETRY.prepare_invoke();
        invocation
            .key(self.job_key(id))
            .key(self.key("ready"))
            .key(self.key("scheduled"))
            .key(self.key("dead"))
            .key(self.key("ready_at"))
            .key(self.key("signal"))
            .key(self.key("retrying"))
            .arg(id);
        invocation
    }

    /// The job's record (state, attempts, errors, ...), if it still exists.
    pub async fn job(&self, id: &str) -> Result<Option<HashMap<String, String>>, KitError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.job_key(id)).query_async(&mut conn).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }
}

/// The arguments of settling a failed attempt.
#[derive(Debug, Clone, Copy)]
struct Settle {
    is_final: bool,
    dead_retention: Duration,
}

/// Throughput counters are kept per 10-second period for two minutes.
pub(super) const STATS_PERIOD_SECS: u64 = 10;
pub(super) const STATS_LIFETIME_MS: u64 = 120_000;

pub(super) fn stats_period_now() -> u64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs / STATS_PERIOD_SECS
}

/// A time-ordered, random-suffixed id (hex), unique across processes.
fn uuid_like() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let random: u64 = rand::rng().random();
    format!("{millis:012x}{random:016x}")
}
