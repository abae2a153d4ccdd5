//! `EventLog`: what the built-in consumer groups read (discovery of the
//! operator streams, the persistent streams and every account's `tasks` and
//! `logs` streams), the work each does with a batch, and the queries of
//! `/v1/events:processed` and `/v1/events:stats`.
//!
//! Invariants: a batch's work is one statement (autocommitted) before the
//! batch is acknowledged, and it is idempotent by (stream, id), so a
//! redelivered event neither adds a row nor counts twice. Readers see their
//! account's events; operators also the operator streams (`sys:*`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, NaiveDate, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sqlx::PgPool;
use switchyard_kit::{Delivery, EventStream, Keyspace, KitError, Quota, RedisConnection};
use uuid::Uuid;

use super::store::{self, Filter, LoggedEvent, Position};
use crate::domain::PrincipalId;
use crate::validation::FieldError;

/// The operator streams the event log always reads; others are found in
/// the stream registry under the owner [`SYSTEM_OWNER`].
pub const SYSTEM_STREAMS: &[&str] = &["sys:users", "sys:chat"];
/// The stream registry's owner of the operator streams.
pub const SYSTEM_OWNER: &str = "sys";
pub const MAX_PAGE: i64 = 1000;
/// Streams `/v1/events:stats` reports groups of, at most.
pub const MAX_STATS_STREAMS: usize = 1000;

/// The built-in consumer groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Stores every event of the operator and persistent streams.
    EventLog,
    /// Counts `task.completed` per assignee from every account's `tasks`.
    TaskProcessing,
    /// Counts `system.error` per account from every account's `logs`, and
    /// alerts past `LOG_ERROR_ALERT_PER_MINUTE`.
    LogProcessing,
}

pub const GROUPS: [Group; 3] = [Group::EventLog, Group::TaskProcessing, Group::LogProcessing];

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Self::EventLog => "event-log",
            Self::TaskProcessing => "task-processing",
            Self::LogProcessing => "log-processing",
        }
    }

    /// The account stream a counting group reads.
    fn account_stream(self) -> Option<&'static str> {
        match self {
            Self::EventLog => None,
            Self::TaskProcessing => Some("tasks"),
            Self::LogProcessing => Some("logs"),
        }
    }
}

/// A stream a group reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    /// The kit stream's name (`sys:users`, `user:<id>/orders`).
    pub stream: String,
    /// The account it belongs to; `None` for an operator stream.
    pub account: Option<Uuid>,
}

/// How the groups reclaim, dead-letter and alert.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub reclaim_idle: Duration,
    pub max_deliveries: u64,
    pub error_alert_per_minute: u64,
}

/// Where an account's alerts go (notifications, wired in by the
/// composition root). `once_key` makes a repeated alert a no-op.
pub trait Alerts: Send + Sync + std::fmt::Debug + 'static {
    fn alert<'a>(
        &'a self,
        account: Uuid,
        once_key: &'a str,
        title: &'a str,
        body: &'a str,
        data: &'a Value,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("no such stream")]
    NoSuchStream,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error("alerting failed: {0}")]
    Alert(anyhow::Error),
}

/// Who reads the log: an account, and whether an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub account: Uuid,
    pub operator: bool,
}

/// `/v1/events:processed`'s parameters.
#[derive(Debug, Clone, Default)]
pub struct ProcessedQuery {
    pub stream: Option<String>,
    pub kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<String>,
    pub limit: Option<u64>,
}

/// An event as the log gives it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// The stream as the viewer names it (`orders`, `sys:users`; another
    /// account's in full, `user:<id>/orders`).
    pub stream: String,
    pub id: String,
    pub kind: String,
    pub data: Value,
    pub key: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: NaiveDate,
    pub stream: String,
    pub kind: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub group: &'static str,
    pub stream: String,
    pub consumers: u64,
    pub pending: u64,
    pub lag: Option<u64>,
    /// Of the stream (the dead-letter stream is shared by its groups).
    pub dead_letters: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub counts: Vec<DayCount>,
    pub groups: Vec<GroupState>,
}

#[derive(Debug, Clone)]
pub struct EventLog {
    db: PgPool,
    redis: RedisConnection,
    keys: Keyspace,
    registry: Quota,
    settings: GroupSettings,
    alerts: Arc<dyn Alerts>,
}

/// An account stream's kit name.
fn account_stream(account: Uuid, name: &str) -> String {
    format!("{}/{name}", PrincipalId::User(account))
}

/// `<ms>-<seq>` as numbers.
fn id_parts(id: &str) -> Option<(i64, i64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The event's data as JSON text: as stored when it is JSON, else as a
/// JSON string (another writer may have stored anything).
fn json_text(data: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok() {
        data.to_owned()
    } else {
        Value::String(data.to_owned()).to_string()
    }
}

fn logged(source: &Source, delivery: &Delivery) -> Option<LoggedEvent> {
    let event = &delivery.event;
    let (id_ms, id_seq) = id_parts(&event.id)?;
    Some(LoggedEvent {
        stream: source.stream.clone(),
        id: event.id.clone(),
        id_ms,
        id_seq,
        account: source.account,
        kind: event.kind.replace('\0', ""),
        data: json_text(&event.data),
        key: event.key.clone(),
        occurred_at: DateTime::from_timestamp_millis(id_ms).unwrap_or_default(),
    })
}

fn field_error(field: &str, message: &str) -> EventLogError {
    EventLogError::Validation(vec![FieldError::new(field, message)])
}

fn encode_cursor(event: &LoggedEvent) -> String {
    let hex: String = event.stream.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}.{hex}", event.id_ms, event.id_seq)
}

fn decode_cursor(cursor: &str) -> Option<Position> {
    let (id, hex) = cursor.split_once('.')?;
    let (id_ms, id_seq) = id_parts(id)?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    Some(Position { id_ms, id_seq, stream: String::from_utf8(bytes?).ok()? })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
}

impl EventLog {
    pub fn new(
        db: PgPool,
        redis: RedisConnection,
        keys: Keyspace,
        registry: Quota,
        settings: GroupSettings,
        alerts: Arc<dyn Alerts>,
    ) -> Self {
        Self { db, redis, keys, registry, settings, alerts }
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// The kit stream of `source`.
    pub fn stream(&self, source: &Source) -> EventStream {
        EventStream::new(self.redis.clone(), self.keys.clone(), &source.stream)
    }

    pub async fn set_persistent(&self, account: Uuid, name: &str, persist: bool) -> Result<(), sqlx::Error> {
        store::set_persistent(&self.db, account, name, persist).await
    }

    pub async fn is_persistent(&self, account: Uuid, name: &str) -> Result<bool, sqlx::Error> {
        store::is_persistent(&self.db, account, name).await
    }

    /// The streams `group` reads: of `account` only, or of everyone.
    pub async fn sources(&self, group: Group, account: Option<Uuid>) -> Result<Vec<Source>, EventLogError> {
        let mut sources = Vec::new();
        match group.account_stream() {
            None => {
                if account.is_none() {
                    let mut system: Vec<String> = SYSTEM_STREAMS.iter().map(|s| (*s).to_owned()).collect();
                    for name in self.registry.names(SYSTEM_OWNER).await? {
                        let name = format!("sys:{name}");
                        if !system.contains(&name) {
                            system.push(name);
                        }
                    }
                    sources.extend(system.into_iter().map(|stream| Source { stream, account: None }));
                }
                for (owner, name) in store::persistent_streams(&self.db, account).await? {
                    sources.push(Source { stream: account_stream(owner, &name), account: Some(owner) });
                }
            }
            Some(name) => {
                let owners = match account {
                    Some(account) => vec![PrincipalId::User(account).to_string()],
                    None => self.registry.owners().await?,
                };
                for owner in self.registry.owners_with(&owners, name).await? {
                    let Some(id) = owner.strip_prefix("user:").and_then(|id| Uuid::try_parse(id).ok()) else {
                        continue;
                    };
                    sources.push(Source { stream: format!("{owner}/{name}"), account: Some(id) });
                }
            }
        }
        Ok(sources)
    }

    /// Does `group`'s work with a batch of `source`'s events; once this
    /// returns, the batch may be acknowledged.
    pub async fn process(&self, group: Group, source: &Source, batch: &[Delivery]) -> Result<(), EventLogError> {
        match group {
            Group::EventLog => {
                let rows: Vec<LoggedEvent> = batch.iter().filter_map(|d| logged(source, d)).collect();
                store::insert_events(&self.db, &rows).await?;
            }
            Group::TaskProcessing => {
                let Some(account) = source.account else { return Ok(()) };
                let completed: Vec<(String, Option<String>)> = batch
                    .iter()
                    .filter(|d| d.event.kind == "task.completed")
                    .map(|d| {
                        let data: Value = serde_json::from_str(&d.event.data).unwrap_or(Value::Null);
                        let assignee = match &data["assigned_to"] {
                            Value::String(s) if !s.is_empty() => Some(s.replace('\0', "")),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        };
                        (d.event.id.clone(), assignee)
                    })
                    .collect();
                if !completed.is_empty() {
                    store::count_completions(&self.db, group.name(), &source.stream, account, &completed).await?;
                }
            }
            Group::LogProcessing => {
                let Some(account) = source.account else { return Ok(()) };
                let errors: Vec<(String, DateTime<Utc>)> = batch
                    .iter()
                    .filter(|d| d.event.kind == "system.error")
                    .filter_map(|d| {
                        let (ms, _) = id_parts(&d.event.id)?;
                        let minute =
                            DateTime::from_timestamp_millis(ms)?.duration_trunc(chrono::TimeDelta::minutes(1)).ok()?;
                        Some((d.event.id.clone(), minute))
                    })
                    .collect();
                if errors.is_empty() {
                    return Ok(());
                }
                let threshold = self.settings.error_alert_per_minute;
                let over =
                    store::count_errors(&self.db, group.name(), &source.stream, account, &errors, threshold).await?;
                for (minute, count) in over {
                    let once_key = format!("log-errors:{account}:{}", minute.timestamp());
                    let body = format!(
                        "{count} system.error events in the minute from {} (more than {threshold})",
                        minute.to_rfc3339()
                    );
                    let data = json!({"minute": minute, "errors": count, "threshold": threshold});
                    self.alerts
                        .alert(account, &once_key, "Error rate alert", &body, &data)
                        .await
                        .map_err(EventLogError::Alert)?;
                }
            }
        }
        Ok(())
    }

    /// Completed tasks per assignee of `account`.
    pub async fn completions(&self, account: Uuid) -> Result<Vec<(String, i64)>, sqlx::Error> {
        store::completions(&self.db, account).await
    }

    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        store::prune_processed(&self.db).await
    }

    /// How `viewer` names `stream`.
    fn display(viewer: Viewer, stream: &str) -> String {
        let own = format!("{}/", PrincipalId::User(viewer.account));
        stream.strip_prefix(&own).unwrap_or(stream).to_owned()
    }

    /// The kit name of a stream `viewer` names.
    fn resolve(viewer: Viewer, stream: &str) -> Result<String, EventLogError> {
        let rule = "must be 1-64 characters of [a-z0-9_.-] (operators: or sys:<name>)";
        match stream.strip_prefix("sys:") {
            Some(_) if !viewer.operator => Err(EventLogError::NoSuchStream),
            Some(name) if valid_name(name) => Ok(stream.to_owned()),
            None if valid_name(stream) => Ok(account_stream(viewer.account, stream)),
            _ => Err(field_error("stream", rule)),
        }
    }

    fn check_range(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), EventLogError> {
        match (from, to) {
            (Some(from), Some(to)) if to < from => Err(field_error("to", "must not be before from")),
            _ => Ok(()),
        }
    }

    /// A newest-first page of the log; the cursor for the next one.
    pub async fn processed(
        &self,
        viewer: Viewer,
        query: ProcessedQuery,
    ) -> Result<(Vec<Processed>, Option<String>), EventLogError> {
        let stream = query.stream.as_deref().map(|s| Self::resolve(viewer, s)).transpose()?;
        if let Some(kind) = &query.kind {
            if kind.is_empty() || kind.chars().count() > 128 {
                return Err(field_error("type", "must be 1-128 characters"));
            }
        }
        Self::check_range(query.from, query.to)?;
        let limit = match query.limit.unwrap_or(100) {
            n @ 1..=1000 => i64::try_from(n).unwrap_or(MAX_PAGE),
            _ => return Err(field_error("limit", "must be between 1 and 1000")),
        };
        let position = match query.cursor.as_deref() {
            Some(cursor) => Some(
                decode_cursor(cursor).ok_or_else(|| field_error("cursor", "must be a next_cursor this API gave"))?,
            ),
            None => None,
        };
        let filter = Filter {
            account: viewer.account,
            operator: viewer.operator,
            stream,
            kind: query.kind,
            from: query.from,
            to: query.to,
        };
        let rows = store::page(&self.db, &filter, position.as_ref(), limit).await?;
        let next = (rows.len() as i64 == limit).then(|| rows.last().map(encode_cursor)).flatten();
        let events = rows
            .into_iter()
            .map(|row| Processed {
                stream: Self::display(viewer, &row.stream),
                data: serde_json::from_str(&row.data).unwrap_or(Value::String(row.data)),
                id: row.id,
                kind: row.kind,
                key: row.key,
                occurred_at: row.occurred_at,
            })
            .collect();
        Ok((events, next))
    }

    /// Counts per day, stream and type, and the built-in groups' progress:
    /// the viewer's account's, or everything for an operator.
    pub async fn stats(
        &self,
        viewer: Viewer,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Stats, EventLogError> {
        Self::check_range(from, to)?;
        let filter = Filter { account: viewer.account, operator: viewer.operator, stream: None, kind: None, from, to };
        let counts = store::daily_counts(&self.db, &filter)
            .await?
            .into_iter()
            .map(|(day, stream, _, kind, count)| DayCount { day, stream: Self::display(viewer, &stream), kind, count })
            .collect();
        let scope = (!viewer.operator).then_some(viewer.account);
        let mut groups = Vec::new();
        for group in GROUPS {
            for source in self.sources(group, scope).await? {
                if groups.len() >= MAX_STATS_STREAMS {
                    break;
                }
                let stats = self.stream(&source).stats().await?;
                let state = stats.groups.iter().find(|g| g.name == group.name());
                groups.push(GroupState {
                    group: group.name(),
                    stream: Self::display(viewer, &source.stream),
                    consumers: state.map_or(0, |g| g.consumers),
                    pending: state.map_or(0, |g| g.pending),
                    lag: state.map_or(Some(stats.length), |g| g.lag),
                    dead_letters: stats.dead_letters,
                });
            }
        }
        Ok(Stats { counts, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let event = LoggedEvent {
            stream: "user:00000000-0000-0000-0000-000000000001/orders".into(),
            id: "1700000000000-12".into(),
            id_ms: 1_700_000_000_000,
            id_seq: 12,
            account: None,
            kind: "x".into(),
            data: "{}".into(),
            key: None,
            occurred_at: Utc::now(),
        };
        let position = decode_cursor(&encode_cursor(&event)).unwrap();
        assert_eq!(
            (position.id_ms, position.id_seq, position.stream.as_str()),
            (event.id_ms, 12, event.stream.as_str())
        );
        for foreign in ["", "1-2", "1-2.zz", "x-1.61", "1-2.6", "1-2.é1"] {
            assert!(decode_cursor(foreign).is_none(), "{foreign}");
        }
    }

    #[test]
    fn data_that_is_not_json_is_kept_as_a_json_string() {
        assert_eq!(json_text(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(json_text("plain"), r#""plain""#);
    }
}
