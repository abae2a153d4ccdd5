//! Enqueueing and inspecting jobs for a tenant. A job belongs to the
//! tenant that enqueued it; another tenant's job is `NotFound`.

use std::collections::HashMap;
use std::time::Duration;

use switchyard_kit::{Backoff, Keyspace, KitError, NewJob, Queue, RedisConnection};

use super::handlers::KNOWN_TYPES;
use crate::validation::{FieldError, Violations};

/// How long finished jobs stay readable.
pub const SUCCEEDED_RETENTION: Duration = Duration::from_secs(24 * 3600);
pub const DEAD_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_PAYLOAD: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error("the job is not in a state that allows this")]
    WrongState,
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// A job as the caller describes it.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    pub queue: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: Option<i32>,
    pub delay_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    /// (`exponential` | `fixed`, base ms, max ms)
    pub backoff: Option<(String, u64, u64)>,
    pub timeout_ms: Option<u64>,
    pub unique_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Jobs {
    redis: RedisConnection,
    keys: Keyspace,
}

fn valid_queue(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Jobs {
    pub fn new(redis: RedisConnection, keys: Keyspace) -> Self {
        Self { redis, keys }
    }

    pub fn queue(&self, name: &str) -> Queue {
        Queue::new(self.redis.clone(), self.keys.clone(), name)
    }

    fn to_job(spec: &JobSpec, owner: &str) -> Result<(String, NewJob), JobError> {
        Self::to_job_at(spec, owner, "")
    }

    /// Validates `spec`; field names are prefixed with `at` (`jobs[3].`).
    fn to_job_at(spec: &JobSpec, owner: &str, at: &str) -> Result<(String, NewJob), JobError> {
        let mut v = Violations::default();
        let queue = spec.queue.clone().unwrap_or_else(|| "default".into());
        if !valid_queue(&queue) {
            v.check::<()>(Err(FieldError::new(format!("{at}queue"), "must be 1-64 characters of [a-z0-9_-]")));
        }
        if !KNOWN_TYPES.contains(&spec.kind.as_str()) {
            v.check::<()>(Err(FieldError::new(
                format!("{at}type"),
                format!("must be one of {}", KNOWN_TYPES.join(", ")),
            )));
        }
        let payload = spec.payload.to_string();
        if payload.len() > MAX_PAYLOAD {
            v.check::<()>(Err(FieldError::new(format!("{at}payload"), "must be at most 256 KiB of JSON")));
        }
        let priority = spec.priority.unwrap_or(0);
        if !(-1000..=1000).contains(&priority) {
            v.check::<()>(Err(FieldError::new(format!("{at}priority"), "must be between -1000 and 1000")));
        }
        let max_attempts = spec.max_attempts.unwrap_or(3);
        if !(1..=100).contains(&max_attempts) {
            v.check::<()>(Err(FieldError::new(format!("{at}max_attempts"), "must be between 1 and 100")));
        }
        let backoff = match &spec.backoff {
            None => Backoff::Exponential { base: Duration::from_secs(1), max: Duration::from_secs(3600) },
            Some((kind, base, max)) if kind == "exponential" && *base > 0 && max >= base => {
                Backoff::Exponential { base: Duration::from_millis(*base), max: Duration::from_millis(*max) }
            }
            Some((kind, base, _)) if kind == "fixed" && *base > 0 => Backoff::Fixed(Duration::from_millis(*base)),
            Some(_) => {
                v.check::<()>(Err(FieldError::new(
                    format!("{at}backoff"),
                    "must be {kind: exponential|fixed, base_ms > 0, max_ms >= base_ms}",
                )));
                Backoff::Fixed(Duration::from_secs(1))
            }
        };
        if let Some(key) = &spec.unique_key {
            if key.is_empty() || key.len() > 200 {
                v.check::<()>(Err(FieldError::new(format!("{at}unique_key"), "must be 1-200 characters")));
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
            delay: Duration::from_millis(spec.delay_ms.unwrap_or(0)),
            max_attempts,
            backoff,
            timeout: spec.timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
            // Unique keys are per tenant.
            unique_key: spec.unique_key.as_ref().map(|k| format!("{owner}/{k}")),
            owner: owner.to_owned(),
        };
        Ok((queue, job))
    }

    /// Enqueues; returns (id, state).
    pub async fn enqueue(&self, owner: &str, spec: &JobSpec) -> Result<(String, String), JobError> {
        let (queue, job) = Self::to_job(spec, owner)?;
        let queue = self.queue(&queue);
        let (id, _) = queue.enqueue(&job).await?;
        let state = queue.job(&id).await?.and_then(|mut r| r.remove("state")).unwrap_or_else(|| "queued".into());
        Ok((id, state))
    }

    /// Enqueues 1-100 jobs in one Redis round trip; every job is validated
    /// first, so a bad one enqueues nothing. Returns the ids in order.
    pub async fn enqueue_batch(&self, owner: &str, specs: &[JobSpec]) -> Result<Vec<String>, JobError> {
        if specs.is_empty() || specs.len() > 100 {
            return Err(JobError::Validation(vec![FieldError::new("jobs", "must hold 1-100 jobs")]));
        }
        let mut errors = Vec::new();
        let mut by_queue: Vec<(String, Vec<(usize, NewJob)>)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match Self::to_job_at(spec, owner, &format!("jobs[{i}].")) {
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
            let results = self.queue(&queue).enqueue_many(&new_jobs).await?;
            for ((i, _), (id, _)) in jobs.iter().zip(results) {
                ids[*i] = id;
            }
        }
        Ok(ids)
    }

    /// The caller's job record.
    pub async fn get(&self, owner: &str, id: &str) -> Result<HashMap<String, String>, JobError> {
        let queue = Queue::queue_of(id).filter(|q| valid_queue(q)).ok_or(JobError::NotFound)?;
        let record = self.queue(queue).job(id).await?.ok_or(JobError::NotFound)?;
        if record.get("owner").map(String::as_str) != Some(owner) {
            return Err(JobError::NotFound);
        }
        Ok(record)
    }

    pub async fn cancel(&self, owner: &str, id: &str) -> Result<(), JobError> {
        self.get(owner, id).await?;
        let queue = Queue::queue_of(id).ok_or(JobError::NotFound)?;
        match self.queue(queue).cancel(id, SUCCEEDED_RETENTION).await? {
            Some(true) => Ok(()),
            Some(false) => Err(JobError::WrongState),
            None => Err(JobError::NotFound),
        }
    }

    pub async fn retry(&self, owner: &str, id: &str) -> Result<(), JobError> {
        self.get(owner, id).await?;
        let queue = Queue::queue_of(id).ok_or(JobError::NotFound)?;
        match self.queue(queue).retry(id).await? {
            Some(true) => Ok(()),
            Some(false) => Err(JobError::WrongState),
            None => Err(JobError::NotFound),
        }
    }
}
