//! `Activity`: the activity capability's service — the handle of the
//! recorder (its channel's sending side, which the recording layer gets,
//! and its task, started and stopped by the server), the queries over the
//! `activity` table, the live feed, and partition maintenance.
//!
//! Invariants: a caller reads only its account's rows (operators read
//! any); another account's API client is "not found", never "forbidden"
//! (for operators, a client that no longer exists is "not found" too, as
//! in the usage report);
//! cursors are [`PageCursor`]s on (occurred_at, id).

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgPool;
use switchyard_kit::{Keyspace, KitError, PubSubHub};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::layer::RecordingLayer;
use super::live::{self, LiveActivity};
use super::partitions::{self, Maintained};
use super::recorder::{self, ActivitySink, Recorder, RecorderConfig};
use super::report_store;
use super::spill::Spill;
use super::store::{self, Filter};
use super::{ActivityRecord, BatchObserver};
use crate::config::AnalyticsSettings;
use crate::domain::{PageCursor, Principal};
use crate::validation::FieldError;

pub const MAX_PAGE: u64 = 100;
const DEFAULT_PAGE: u64 = 20;
const MAX_ROUTE_CHARS: usize = 256;

/// Who owns which API client: the clients capability knows, the
/// composition root asks it.
pub trait ClientOwners: Send + Sync + std::fmt::Debug + 'static {
    /// Whether `account` owns the API client `client_id`.
    fn owns(&self, account: Uuid, client_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error("looking up the API client failed: {0}")]
    Clients(anyhow::Error),
}

/// What to list, as the caller asked (checked by [`Activity::list`]).
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub client_id: Option<Uuid>,
    pub route: Option<String>,
    pub status: Option<u16>,
    /// RFC 3339 or `YYYY-MM-DD` (that day's start, UTC); inclusive.
    pub from: Option<String>,
    /// RFC 3339 (exclusive) or `YYYY-MM-DD` (through the end of that day, UTC).
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u64>,
}

/// One page, newest first.
#[derive(Debug, Clone)]
pub struct ActivityPage {
    pub records: Vec<ActivityRecord>,
    /// For the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Where the recorder task is in its life.
#[derive(Debug)]
enum RecorderTask {
    NotStarted(Box<Recorder>),
    Running { stop: oneshot::Sender<Instant>, task: JoinHandle<()> },
    Stopped,
}

#[derive(Debug)]
pub struct Activity {
    db: PgPool,
    hub: PubSubHub,
    keys: Keyspace,
    owners: Arc<dyn ClientOwners>,
    settings: AnalyticsSettings,
    sink: ActivitySink,
    recorder: Mutex<RecorderTask>,
    /// Cancelled when the server starts shutting down: live streams end.
    closing: CancellationToken,
}

/// A time bound as the API takes it: RFC 3339, or a date meaning that UTC
/// day's start (`from`) or the next day's start (`to`, so the day is
/// included).
fn parse_bound(field: &str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>, FieldError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|day| if end_of_day { day.succ_opt() } else { Some(day) })
        .map(|day| day.and_time(NaiveTime::MIN).and_utc())
        .ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)"))
}

/// The account whose activity a caller sees; `None` for operators (all).
fn scope(principal: &Principal) -> Option<Uuid> {
    (!principal.is_operator()).then(|| principal.account().uuid())
}

impl Activity {
    /// The service and its (not yet started) recorder. `observers` see
    /// every batch; the live feed is added here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: PgPool,
        redis: switchyard_kit::RedisConnection,
        hub: PubSubHub,
        keys: Keyspace,
        settings: &AnalyticsSettings,
        owners: Arc<dyn ClientOwners>,
        mut observers: Vec<Arc<dyn BatchObserver>>,
        closing: CancellationToken,
    ) -> Self {
        observers.push(Arc::new(live::LiveFeed::new(redis.clone(), &keys)));
        let (sink, inbox) = recorder::channel(settings.channel_capacity, settings.batch_size);
        let config = RecorderConfig {
            batch_size: settings.batch_size,
            flush_interval: settings.flush_interval,
            memory_max_records: settings.memory_max_records,
            partitions_ahead_days: settings.partitions_ahead_days,
        };
        let spill = Spill::new(redis, &keys, settings.spill_maxlen);
        let recorder = Recorder::new(inbox, db.clone(), spill, observers, config);
        Self {
            db,
            hub,
            keys,
            owners,
            settings: settings.clone(),
            sink,
            recorder: Mutex::new(RecorderTask::NotStarted(Box::new(recorder))),
            closing,
        }
    }

    /// The recording layer, or `None` when `ACTIVITY_ENABLED` is off (then
    /// the stack has no such layer at all).
    pub fn layer(&self) -> Option<RecordingLayer> {
        self.settings.enabled.then(|| RecordingLayer::new(self.sink.clone()))
    }

    /// Starts the recorder task (once; later calls do nothing). It also
    /// creates the coming days' partitions and drains what an earlier
    /// process spilled.
    pub fn start_recorder(&self) {
        let mut state = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        if let RecorderTask::NotStarted(_) = &*state {
            let RecorderTask::NotStarted(recorder) = std::mem::replace(&mut *state, RecorderTask::Stopped) else {
                return;
            };
            let (stop, stopped) = oneshot::channel();
            *state = RecorderTask::Running { stop, task: tokio::spawn(recorder.run(stopped)) };
        }
    }

    /// Stops the recorder after it has written (or spilled) everything it
    /// holds, or at `deadline`. Call after the HTTP server has drained.
    pub async fn stop_recorder(&self, deadline: Instant) {
        let state = std::mem::replace(
            &mut *self.recorder.lock().unwrap_or_else(PoisonError::into_inner),
            RecorderTask::Stopped,
        );
        if let RecorderTask::Running { stop, task } = state {
            let _ = stop.send(deadline);
            if let Err(error) = task.await {
                tracing::error!(%error, "the activity recorder failed");
            }
        }
    }

    /// Cancelled when the server starts shutting down.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The caller's account's activity (operators: every account's),
    /// newest first.
    pub async fn list(&self, principal: &Principal, query: ActivityQuery) -> Result<ActivityPage, ActivityError> {
        let mut errors = Vec::new();
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        if query.status.is_some_and(|s| !(100..=599).contains(&s)) {
            errors.push(FieldError::new("status", "must be an HTTP status, 100-599"));
        }
        if query.route.as_ref().is_some_and(|r| r.is_empty() || r.chars().count() > MAX_ROUTE_CHARS) {
            errors
                .push(FieldError::new("route", format!("must be a route template of 1-{MAX_ROUTE_CHARS} characters")));
        }
        let mut bound = |field: &str, value: Option<&str>, end: bool| {
            value.and_then(|v| parse_bound(field, v, end).map_err(|e| errors.push(e)).ok())
        };
        let from = bound("from", query.from.as_deref(), false);
        let to = bound("to", query.to.as_deref(), true);
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                errors.push(FieldError::new("to", "must be later than from"));
            }
        }
        let before = match query.cursor.as_deref() {
            None => None,
            Some(cursor) => match PageCursor::parse(cursor) {
                Some(cursor) => Some((cursor.at, cursor.id)),
                None => {
                    errors.push(FieldError::new("cursor", "is not a cursor from this API"));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(ActivityError::Validation(errors));
        }
        // A client's rows are looked for within its owner's account: the
        // account's index serves both filters (the table has no index by
        // client, one less to maintain per recorded request).
        let account_id = match (scope(principal), query.client_id) {
            (Some(account), Some(client_id)) => {
                if !self.owners.owns(account, client_id).await.map_err(ActivityError::Clients)? {
                    return Err(ActivityError::NotFound);
                }
                Some(account)
            }
            (None, Some(client_id)) => {
                Some(report_store::client_owner(&self.db, client_id).await?.ok_or(ActivityError::NotFound)?)
            }
            (account, None) => account,
        };
        let filter =
            Filter { account_id, client_id: query.client_id, route: query.route, status: query.status, from, to };
        let limit = i64::try_from(limit).unwrap_or(1);
        let mut records = store::page(&self.db, &filter, before, limit + 1).await?;
        let next_cursor = if records.len() as i64 > limit {
            records.truncate(records.len() - 1);
            records.last().map(|r| PageCursor::new(r.occurred_at, r.id).encode())
        } else {
            None
        };
        Ok(ActivityPage { records, next_cursor })
    }

    /// The caller's account's requests as they are recorded (operators:
    /// everyone's), from when this returns.
    pub async fn live(&self, principal: &Principal) -> Result<LiveActivity, ActivityError> {
        let account = scope(principal);
        let subscription = self.hub.subscribe(&live::channel(&self.keys)).await?;
        Ok(LiveActivity::new(subscription, account))
    }

    /// Creates the partitions of `today` and the days ahead, and drops
    /// those past the retention (the worker's periodic maintenance).
    pub async fn maintain_partitions(&self, today: NaiveDate) -> Result<Maintained, ActivityError> {
        let done = partitions::maintain(
            &self.db,
            today,
            self.settings.partitions_ahead_days,
            Some(self.settings.retention_days),
        )
        .await?;
        if !done.created.is_empty() || !done.dropped.is_empty() {
            tracing::info!(created = ?done.created, dropped = ?done.dropped, moved = done.moved, "activity partitions maintained");
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_rfc_3339_times_or_whole_utc_days() {
        let at = parse_bound("from", "2026-01-31T12:00:00+01:00", false).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-31T11:00:00+00:00");
        assert_eq!(parse_bound("from", "2026-01-31", false).unwrap().to_rfc3339(), "2026-01-31T00:00:00+00:00");
        assert_eq!(parse_bound("to", "2026-01-31", true).unwrap().to_rfc3339(), "2026-02-01T00:00:00+00:00");
        for bad in ["", "yesterday", "2026-13-01", "1700000000"] {
            assert_eq!(parse_bound("to", bad, true).unwrap_err().field, "to", "{bad}");
        }
    }
}
