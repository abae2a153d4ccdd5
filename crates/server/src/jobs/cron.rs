//! Recurring jobs declared in config (`[[cron]]`): every worker process
//! runs a scheduler, and each tick is enqueued exactly once however many
//! run, because the enqueue carries a per-tick dedupe key (`cron:<name>:
//! <tick>`) that the queue's enqueue script checks and sets atomically.
//!
//! A scheduler fires the ticks that fell since it last looked. Ticks from
//! before it started (all workers down) are skipped, unless the entry sets
//! `catch_up_secs`: then a starting scheduler enqueues the entry's latest
//! tick within that window, deduplicated like any tick, so it runs once if
//! it was missed and not again if it ran. Every tick's dedupe key outlives
//! the catch-up window for that reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron::Schedule;
use tokio_util::sync::CancellationToken;

use super::handlers::{self, Clearance};
use super::service::{JobError, JobSpec, Jobs};
use crate::config::{parse_schedule, CronSetting};

/// How long a tick's dedupe key lives beyond the entry's catch-up window:
/// far longer than schedulers can disagree about which ticks are due.
const DEDUPE_WINDOW: Duration = Duration::from_secs(600);

/// Enqueues the configured recurring jobs on time.
#[derive(Debug, Clone)]
pub struct CronScheduler {
    jobs: Arc<Jobs>,
    entries: Vec<(CronSetting, Schedule)>,
}

impl CronScheduler {
    /// Checks every entry (schedule, queue, type and payload) up front.
    pub fn new(jobs: Arc<Jobs>, settings: &[CronSetting]) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in settings {
            let schedule = parse_schedule(&entry.schedule).map_err(|m| format!("cron {}: {m}", entry.name))?;
            if !super::service::valid_queue(&entry.queue) {
                return Err(format!("cron {}: queue must be 1-64 characters of [a-z0-9_-]", entry.name));
            }
            let errors = handlers::check(&entry.kind, &entry.payload, Clearance::System, "")
                .map_err(|reason| format!("cron {}: {reason}", entry.name))?;
            if let Some(error) = errors.first() {
                return Err(format!("cron {}: {} {}", entry.name, error.field, error.message));
            }
            entries.push((entry.clone(), schedule));
        }
        Ok(Self { jobs, entries })
    }

    /// Enqueues every tick in `(since, now]` of every entry; returns the
    /// ids of the jobs (created now or by another scheduler).
    pub async fn fire_due(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>, JobError> {
        let mut ids = Vec::new();
        for (entry, schedule) in &self.entries {
            for tick in schedule.after(&since).take_while(|tick| *tick <= now) {
                ids.push(self.enqueue_tick(entry, tick).await?);
            }
        }
        Ok(ids)
    }

    /// For each entry with a catch-up window, enqueues its latest tick in
    /// `(now - catch_up, now]` (a no-op if that tick already ran); returns
    /// the ids of those ticks' jobs.
    pub async fn catch_up(&self, now: DateTime<Utc>) -> Result<Vec<String>, JobError> {
        let mut ids = Vec::new();
        for (entry, schedule) in &self.entries {
            let Ok(window) = chrono::TimeDelta::from_std(Duration::from_secs(entry.catch_up_secs)) else { continue };
            if window.is_zero() {
                continue;
            }
            if let Some(tick) = schedule.after(&(now - window)).take_while(|tick| *tick <= now).last() {
                ids.push(self.enqueue_tick(entry, tick).await?);
            }
        }
        Ok(ids)
    }

    /// Enqueues `entry`'s job for `tick` once, however many schedulers ask.
    async fn enqueue_tick(&self, entry: &CronSetting, tick: DateTime<Utc>) -> Result<String, JobError> {
        let window = DEDUPE_WINDOW + Duration::from_secs(entry.catch_up_secs);
        let spec = JobSpec {
            queue: Some(entry.queue.clone()),
            kind: entry.kind.clone(),
            payload: entry.payload.clone(),
            dedupe: Some((format!("cron:{}:{}", entry.name, tick.timestamp()), window)),
            ..JobSpec::default()
        };
        Ok(self.jobs.enqueue_system(&spec).await?.0)
    }

    /// When the next tick of any entry falls after `now`.
    fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|(_, schedule)| schedule.after(&now).next()).min()
    }

    /// Fires ticks as they come until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.entries.is_empty() {
            return;
        }
        let started = Utc::now();
        let mut since = started;
        let mut caught_up = false;
        while !shutdown.is_cancelled() {
            if !caught_up {
                match self.catch_up(started).await {
                    Ok(_) => caught_up = true,
                    Err(error) => tracing::warn!(%error, "catching up missed recurring jobs failed; retrying"),
                }
            }
            let now = Utc::now();
            let wait = self
                .next_tick(now)
                .and_then(|tick| (tick - now).to_std().ok())
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let now = Utc::now();
            match self.fire_due(since, now).await {
                Ok(_) => since = now,
                // `since` stays: the missed ticks are tried again next time.
                Err(error) => tracing::warn!(%error, "enqueueing recurring jobs failed; retrying"),
            }
        }
    }
}
