//! Enqueueing and inspecting jobs for a tenant, and operating queues.
//! A job belongs to the tenant that enqueued it; another tenant's job is
//! `NotFound`. Every queue a job is enqueued to is registered, so workers
//! started without `--queues` and the queue views find it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use switchyard_kit::{Backoff, DeadJob, Keyspace, KitError, NewJob, Queue, QueueOverview, RedisConnection};

use super::handlers::{self, Clearance, SYSTEM_OWNER};
use crate::config::JobSettings;
use crate::validation::{FieldError, Violations};

pub const MAX_PAYLOAD: usize = 256 * 1024;
pub const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;
/// Longest back-off between attempts: a week.
pub const MAX_BACKOFF_MS: u64 = 7 * 24 * 3600 * 1000;
/// Longest run time of one attempt: a day.
pub const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// How long finished jobs stay readable.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Succeeded and cancelled jobs.
    pub succeeded: Duration,
    pub dead: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error("no such queue")]
    NoSuchQueue,
    #[error("the enqueuer may not use this job type: {0}")]
    Forbidden(String),
    #[error("the job is {}, which does not allow this", .0.as_str())]
    WrongState(JobState),
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// Who enqueues: the tenant the jobs will belong to, and its clearance,
/// which decides the job types it may use.
#[derive(Debug, Clone, Copy)]
pub struct Enqueuer<'a> {
    /// `user:..`, `client:..` or [`SYSTEM_OWNER`].
    pub owner: &'a str,
    pub clearance: Clearance,
}

impl Enqueuer<'static> {
    /// switchyard itself (identity's mail, cron).
    pub const SYSTEM: Self = Self { owner: SYSTEM_OWNER, clearance: Clearance::System };
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its run time.
    Scheduled,
    /// Ready for a worker.
    Queued,
    Running,
    Succeeded,
    /// The last attempt failed; it runs again after its back-off (the
    /// queue overview's `retrying` count).
    Retrying,
    /// Out of attempts (or failed for good): in the dead-letter set.
    Dead,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            // The kit's scripts store a job waiting to retry as `failed`.
            "failed" => Self::Retrying,
            "dead" => Self::Dead,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// How long to wait before the next attempt, as the caller asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// `base * 2^(attempt-1)`, capped at the maximum, with jitter.
    Exponential,
    /// The same wait every time.
    Fixed,
}

/// A back-off as the caller describes it (validated when enqueued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSpec {
    pub kind: BackoffKind,
    pub base_ms: u64,
    pub max_ms: u64,
}

/// A job as the caller describes it.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    pub queue: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: Option<i32>,
    pub delay_ms: Option<u64>,
    /// When to run; in the past means now. Exclusive with `delay_ms`.
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<BackoffSpec>,
    pub timeout_ms: Option<u64>,
    pub unique_key: Option<String>,
    /// Not settable over the API: enqueue once per key within the window
    /// (a cron tick).
    pub dedupe: Option<(String, Duration)>,
}

/// A job's record, as callers see it (timestamps in Unix milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub state: JobState,
    pub priority: i32,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    /// Every failed attempt: [{attempt, error, at}].
    pub errors: Value,
    pub result: Option<Value>,
    pub created_at: Option<u64>,
    pub scheduled_for: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    owner: String,
}

impl JobRecord {
    /// The record of a job hash; `state_if_missing` for a hash that has
    /// none (a dead job whose record was deleted). `None` when the state is
    /// not one this version knows.
    fn from_fields(mut fields: HashMap<String, String>, state_if_missing: Option<JobState>) -> Option<Self> {
        let mut take = |name: &str| fields.remove(name).filter(|v| !v.is_empty());
        let id = take("id").unwrap_or_default();
        let state = match take("state") {
            Some(stored) => JobState::parse(&stored)?,
            None => state_if_missing?,
        };
        Some(Self {
            queue: Queue::queue_of(&id).unwrap_or_default().to_owned(),
            kind: take("type").unwrap_or_default(),
            state,
            priority: take("priority").and_then(|v| v.parse().ok()).unwrap_or(0),
            attempts: take("attempts").and_then(|v| v.parse().ok()).unwrap_or(0),
            max_attempts: take("max_attempts").and_then(|v| v.parse().ok()).unwrap_or(0),
            last_error: take("last_error"),
            errors: take("errors").and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_else(|| Value::Array(vec![])),
            result: take("result").and_then(|v| serde_json::from_str(&v).ok()),
            created_at: take("created_at").and_then(|v| v.parse().ok()),
            scheduled_for: take("scheduled_for").and_then(|v| v.parse().ok()),
            started_at: take("started_at").and_then(|v| v.parse().ok()),
            finished_at: take("finished_at").and_then(|v| v.parse().ok()),
            owner: take("owner").unwrap_or_default(),
            id,
        })
    }
}

/// A page of a queue's dead-letter set.
#[derive(Debug, Clone)]
pub struct DeadPage {
    pub jobs: Vec<JobRecord>,
    /// Pass back to read the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Jobs {
    redis: RedisConnection,
    keys: Keyspace,
    retention: Retention,
    /// Queues this process has registered already (registering is
    /// idempotent; this only saves the round trip). Registering here, before
    /// the first job, means no job is ever visible in an unregistered queue;
    /// after Redis loses its keys the memo is stale, and the kit's queue
    /// registers itself again with the first job it then receives.
    registered: Arc<Mutex<HashSet<String>>>,
}

pub fn valid_queue(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Jobs {
    pub fn new(redis: RedisConnection, keys: Keyspace, settings: &JobSettings) -> Self {
        let retention = Retention { succeeded: settings.succeeded_retention, dead: settings.dead_retention };
        Self { redis, keys, retention, registered: Arc::default() }
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    async fn register(&self, queue: &Queue) -> Result<(), KitError> {
        if self.registered.lock().map(|r| r.contains(queue.name())).unwrap_or(false) {
            return Ok(());
        }
        queue.register().await?;
        if let Ok(mut registered) = self.registered.lock() {
            registered.insert(queue.name().to_owned());
        }
        Ok(())
    }

    pub fn queue(&self, name: &str) -> Queue {
        Queue::new(self.redis.clone(), self.keys.clone(), name)
    }

    fn to_job(spec: &JobSpec, by: Enqueuer<'_>) -> Result<(String, NewJob), JobError> {
        Self::to_job_at(spec, by, "")
    }

    /// Validates `spec`; field names are prefixed with `at` (`jobs[3].`).
    fn to_job_at(spec: &JobSpec, by: Enqueuer<'_>, at: &str) -> Result<(String, NewJob), JobError> {
        let owner = by.owner;
        let mut v = Violations::default();
        let queue = spec.queue.clone().unwrap_or_else(|| "default".into());
        if !valid_queue(&queue) {
            v.push(FieldError::new(format!("{at}queue"), "must be 1-64 characters of [a-z0-9_-]"));
        }
        for error in handlers::check(&spec.kind, &spec.payload, by.clearance, at).map_err(JobError::Forbidden)? {
            v.push(error);
        }
        let payload = spec.payload.to_string();
        if payload.len() > MAX_PAYLOAD {
            v.push(FieldError::new(format!("{at}payload"), "must be at most 256 KiB of JSON"));
        }
        let delay_ms = match (spec.delay_ms, spec.run_at) {
            (Some(_), Some(_)) => {
                v.push(FieldError::new(format!("{at}run_at"), "give delay_ms or run_at, not both"));
                0
            }
            (Some(ms), None) if ms > MAX_DELAY_MS => {
                v.push(FieldError::new(format!("{at}delay_ms"), "must be at most one year"));
                0
            }
            (Some(ms), None) => ms,
            // Any RFC 3339 time (years up to 9999) is a whole number of
            // milliseconds a queue score holds exactly.
            (None, Some(at_time)) => (at_time - chrono::Utc::now()).num_milliseconds().max(0).unsigned_abs(),
            (None, None) => 0,
        };
        let priority = spec.priority.unwrap_or(0);
        if !(-1000..=1000).contains(&priority) {
            v.push(FieldError::new(format!("{at}priority"), "must be between -1000 and 1000"));
        }
        let max_attempts = spec.max_attempts.unwrap_or(3);
        if !(1..=100).contains(&max_attempts) {
            v.push(FieldError::new(format!("{at}max_attempts"), "must be between 1 and 100"));
        }
        let backoff = match spec.backoff {
            None => Backoff::Exponential { base: Duration::from_secs(1), max: Duration::from_secs(3600) },
            Some(BackoffSpec { kind: BackoffKind::Exponential, base_ms, max_ms })
                if base_ms > 0 && max_ms >= base_ms && max_ms <= MAX_BACKOFF_MS =>
            {
                Backoff::Exponential { base: Duration::from_millis(base_ms), max: Duration::from_millis(max_ms) }
            }
            Some(BackoffSpec { kind: BackoffKind::Fixed, base_ms, .. }) if base_ms > 0 && base_ms <= MAX_BACKOFF_MS => {
                Backoff::Fixed(Duration::from_millis(base_ms))
            }
            Some(_) => {
                v.push(FieldError::new(
                    format!("{at}backoff"),
                    "must be {kind: exponential|fixed, base_ms > 0, max_ms >= base_ms}, at most a week (604800000 ms)",
                ));
                Backoff::Fixed(Duration::from_secs(1))
            }
        };
        if spec.timeout_ms.is_some_and(|ms| ms > MAX_TIMEOUT_MS) {
            v.push(FieldError::new(format!("{at}timeout_ms"), "must be at most a day (86400000 ms)"));
        }
        if let Some(key) = &spec.unique_key {
            if key.is_empty() || key.chars().count() > 200 {
                v.push(FieldError::new(format!("{at}unique_key"), "must be 1-200 characters"));
            }
        }
        let errors = v.into_errors();
        if !errors.is_empty() {
            return Err(JobError::Validation(errors));
        }
        let job = NewJob {
            kind: spec.kind.clone(),
            payload,
            priority,
            delay: Duration::from_millis(delay_ms),
            max_attempts,
            backoff,
            timeout: spec.timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
            // Unique keys are per tenant.
            unique_key: spec.unique_key.as_ref().map(|k| format!("{owner}/{k}")),
            owner: owner.to_owned(),
            dedupe: spec.dedupe.clone(),
            sensitive: spec.kind == "mail",
        };
        Ok((queue, job))
    }

    /// Enqueues; returns (id, state).
    pub async fn enqueue(&self, by: Enqueuer<'_>, spec: &JobSpec) -> Result<(String, JobState), JobError> {
        let (queue, job) = Self::to_job(spec, by)?;
        let queue = self.queue(&queue);
        self.register(&queue).await?;
        let (id, created) = queue.enqueue(&job).await?;
        let state = if !created {
            // An existing job (same unique key): its state now.
            let stored = queue.job(&id).await?.and_then(|mut r| r.remove("state"));
            stored.as_deref().and_then(JobState::parse).unwrap_or(JobState::Queued)
        } else if job.delay.is_zero() {
            JobState::Queued
        } else {
            JobState::Scheduled
        };
        Ok((id, state))
    }

    /// Enqueues a job switchyard runs for itself (mail, cron).
    pub async fn enqueue_system(&self, spec: &JobSpec) -> Result<(String, JobState), JobError> {
        self.enqueue(Enqueuer::SYSTEM, spec).await
    }

    /// Enqueues 1-100 jobs in one Redis round trip; every job is validated
    /// first, so a bad one enqueues nothing. Returns the ids in order.
    pub async fn enqueue_batch(&self, by: Enqueuer<'_>, specs: &[JobSpec]) -> Result<Vec<String>, JobError> {
        if specs.is_empty() || specs.len() > 100 {
            return Err(JobError::Validation(vec![FieldError::new("jobs", "must hold 1-100 jobs")]));
        }
        let mut errors = Vec::new();
        let mut by_queue: Vec<(String, Vec<(usize, NewJob)>)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match Self::to_job_at(spec, by, &format!("jobs[{i}].")) {
                Ok((queue, job)) => match by_queue.iter_mut().find(|(q, _)| *q == queue) {
                    Some((_, jobs)) => jobs.push((i, job)),
                    None => by_queue.push((queue, vec![(i, job)])),
                },
                Err(JobError::Validation(mut e)) => errors.append(&mut e),
                Err(other) => return Err(other),
            }
        }
        if !errors.is_empty() {
            return Err(JobError::Validation(errors));
        }
        let mut ids = vec![String::new(); specs.len()];
        for (queue, jobs) in by_queue {
            let new_jobs: Vec<NewJob> = jobs.iter().map(|(_, j)| j.clone()).collect();
            let queue = self.queue(&queue);
            self.register(&queue).await?;
            let results = queue.enqueue_many(&new_jobs).await?;
            for ((i, _), (id, _)) in jobs.iter().zip(results) {
                ids[*i] = id;
            }
        }
        Ok(ids)
    }

    /// The caller's job record.
    pub async fn get(&self, owner: &str, id: &str) -> Result<JobRecord, JobError> {
        let queue = Queue::queue_of(id).filter(|q| valid_queue(q)).ok_or(JobError::NotFound)?;
        let fields = self.queue(queue).job(id).await?.ok_or(JobError::NotFound)?;
        let record = JobRecord::from_fields(fields, None).ok_or(JobError::NotFound)?;
        if record.owner != owner {
            return Err(JobError::NotFound);
        }
        Ok(record)
    }

    pub async fn cancel(&self, owner: &str, id: &str) -> Result<(), JobError> {
        self.get(owner, id).await?;
        let queue = Queue::queue_of(id).ok_or(JobError::NotFound)?;
        match self.queue(queue).cancel(id, self.retention.succeeded).await? {
            Some(true) => Ok(()),
            Some(false) => Err(self.wrong_state(owner, id).await),
            None => Err(JobError::NotFound),
        }
    }

    pub async fn retry(&self, owner: &str, id: &str) -> Result<(), JobError> {
        self.get(owner, id).await?;
        let queue = Queue::queue_of(id).ok_or(JobError::NotFound)?;
        match self.queue(queue).retry(id).await? {
            Some(true) => Ok(()),
            Some(false) => Err(self.wrong_state(owner, id).await),
            None => Err(JobError::NotFound),
        }
    }

    /// The refusal of a change the job's state did not allow, naming the
    /// state it is in now.
    async fn wrong_state(&self, owner: &str, id: &str) -> JobError {
        match self.get(owner, id).await {
            Ok(record) => JobError::WrongState(record.state),
            Err(error) => error,
        }
    }

    /// A registered queue, or `NotFound`.
    async fn registered_queue(&self, name: &str) -> Result<Queue, JobError> {
        if !valid_queue(name) || !Queue::registered(&self.redis, &self.keys).await?.iter().any(|q| q == name) {
            return Err(JobError::NoSuchQueue);
        }
        Ok(self.queue(name))
    }

    /// Every registered queue with its overview.
    pub async fn queues(&self) -> Result<Vec<(String, QueueOverview)>, JobError> {
        let mut out = Vec::new();
        for name in Queue::registered(&self.redis, &self.keys).await? {
            let overview = self.queue(&name).overview().await?;
            out.push((name, overview));
        }
        Ok(out)
    }

    /// Dead jobs of `queue`, oldest death first; `cursor` is the position
    /// returned by the previous page.
    pub async fn dead(&self, queue: &str, limit: u64, cursor: Option<&str>) -> Result<DeadPage, JobError> {
        let offset = match cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                JobError::Validation(vec![FieldError::new("cursor", "must be a cursor from a previous page")])
            })?,
        };
        if !(1..=500).contains(&limit) {
            return Err(JobError::Validation(vec![FieldError::new("limit", "must be between 1 and 500")]));
        }
        let dead: Vec<DeadJob> = self.registered_queue(queue).await?.dead(offset, limit).await?;
        let next_cursor = (dead.len() as u64 == limit).then(|| (offset + limit).to_string());
        let jobs = dead
            .into_iter()
            .filter_map(|d| {
                let mut record = JobRecord::from_fields(d.record, Some(JobState::Dead))?;
                if record.id.is_empty() {
                    record.id = d.id;
                }
                record.finished_at = record.finished_at.or(Some(d.died_at_ms));
                Some(record)
            })
            .collect();
        Ok(DeadPage { jobs, next_cursor })
    }

    /// Requeues the listed dead jobs, or every one; returns how many.
    pub async fn retry_dead(&self, queue: &str, ids: Option<&[String]>) -> Result<u64, JobError> {
        let queue = self.registered_queue(queue).await?;
        Ok(match ids {
            Some(ids) if ids.len() > 1000 => {
                return Err(JobError::Validation(vec![FieldError::new("ids", "must list at most 1000 ids")]))
            }
            Some(ids) => queue.retry_dead(ids).await?,
            None => queue.retry_all_dead().await?,
        })
    }

    /// Deletes every dead job of `queue`; returns how many.
    pub async fn purge_dead(&self, queue: &str) -> Result<u64, JobError> {
        Ok(self.registered_queue(queue).await?.purge_dead().await?)
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueueOverview, JobError> {
        let queue = self.registered_queue(queue).await?;
        if paused {
            queue.pause().await?;
        } else {
            queue.resume().await?;
        }
        Ok(queue.overview().await?)
    }

    /// Sets `jobs_queue_depth{queue,state}` and `jobs_queue_oldest_age_seconds`
    /// (the lag) for every registered queue; called at scrape time. A Redis
    /// error leaves the previous values.
    pub async fn record_queue_gauges(&self) {
        let Ok(queues) = self.queues().await else { return };
        for (name, o) in queues {
            #[allow(clippy::cast_precision_loss)]
            for (label, count) in [
                ("queued", o.queued),
                ("scheduled", o.scheduled),
                ("retrying", o.retrying),
                ("running", o.running),
                ("dead", o.dead),
            ] {
                metrics::gauge!("jobs_queue_depth", "queue" => name.clone(), "state" => label).set(count as f64);
            }
            let lag = o.oldest_queued_age.map_or(0.0, |age| age.as_secs_f64());
            metrics::gauge!("jobs_queue_oldest_age_seconds", "queue" => name.clone()).set(lag);
            metrics::gauge!("jobs_queue_paused", "queue" => name).set(if o.paused { 1.0 } else { 0.0 });
        }
    }
}
