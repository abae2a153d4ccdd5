//! Stream names, tenancy, quotas, validation and waiting reads over the
//! kit's `EventStream`. A stream lives in its account's namespace (a user
//! and the API clients it owns share one), so one account never reads
//! another's. The operator streams (`sys:<name>`, written only by the
//! server) are named as such by operators, and do not exist for anyone
//! else. An account creates at most `EVENTS_MAX_STREAMS_PER_ACCOUNT`
//! streams (the kit's `Quota` registry, which also lets the worker find
//! every account's streams); marking a stream persistent goes through the
//! [`PersistentStreams`] port.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use switchyard_kit::{
    BlockingConnections, DeadEvent, Delivery, Event, EventStream, Keyspace, KitError, NewEvent, Quota, Reclaimed,
    RedisConnection, StartAt, StreamStats,
};

use crate::domain::{Principal, PrincipalId};
use crate::validation::{FieldError, Violations};

/// Largest `data` of one event, as JSON.
pub const MAX_DATA_BYTES: usize = 64 * 1024;
pub const MAX_BATCH: usize = 100;
pub const MAX_PAGE: u64 = 1000;
pub const MAX_READ: u64 = 100;
/// The longest a read may wait for events (less if the request timeout is
/// shorter).
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// Reads waiting at once per process; beyond it a read returns at once.
pub const MAX_WAITING_READS: usize = 64;
pub const MAX_DELIVERIES: u64 = 100;
/// Longest `min_idle_ms` of a reclaim.
pub const MAX_MIN_IDLE: Duration = Duration::from_secs(86_400);

/// The prefix of the operator streams' names.
pub const SYSTEM_PREFIX: &str = "sys:";

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("no such group")]
    NoSuchGroup,
    #[error("no such stream")]
    NoSuchStream,
    /// A new stream past the account's quota.
    #[error("the account has {limit} streams, the most EVENTS_MAX_STREAMS_PER_ACCOUNT allows")]
    QuotaExceeded { limit: u64 },
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error(transparent)]
    Store(anyhow::Error),
}

/// Whose streams a call names: the caller's account, and whether the caller
/// may name the operator streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub account: PrincipalId,
    pub operator: bool,
}

impl From<&Principal> for Owner {
    fn from(principal: &Principal) -> Self {
        Self { account: principal.account(), operator: principal.is_operator() }
    }
}

/// Where the marks of persistent streams are kept (the event log, wired in
/// by the composition root): the worker stores every event of a marked
/// stream.
pub trait PersistentStreams: Send + Sync + std::fmt::Debug + 'static {
    fn set(&self, account: uuid::Uuid, stream: &str, persist: bool) -> BoxFuture<'_, anyhow::Result<()>>;
    fn is_persistent(&self, account: uuid::Uuid, stream: &str) -> BoxFuture<'_, anyhow::Result<bool>>;
}

/// How a group read goes.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    pub consumer: String,
    pub count: Option<u64>,
    /// Wait up to this long when nothing is there yet.
    pub wait: Option<Duration>,
}

/// How a reclaim goes.
#[derive(Debug, Clone)]
pub struct ReclaimSpec {
    pub consumer: String,
    pub min_idle: Duration,
    pub count: Option<u64>,
    pub max_deliveries: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Events {
    redis: RedisConnection,
    keys: Keyspace,
    waiters: BlockingConnections,
    registry: Quota,
    max_streams: u64,
    persistence: Arc<dyn PersistentStreams>,
}

fn name_error(field: &str, name: &str, extra: fn(u8) -> bool) -> Option<FieldError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.') || extra(b));
    (!valid).then(|| FieldError::new(field, "must be 1-64 characters of [a-z0-9_.-]"))
}

fn stream_name_error(name: &str) -> Option<FieldError> {
    name_error("stream", name, |_| false)
}

/// A stream a reader may name: its account's, or `sys:<name>`.
fn readable_name_error(name: &str) -> Option<FieldError> {
    stream_name_error(name.strip_prefix(SYSTEM_PREFIX).unwrap_or(name))
        .map(|_| FieldError::new("stream", "must be 1-64 characters of [a-z0-9_.-] (operators: or sys:<name>)"))
}

fn group_name_error(name: &str) -> Option<FieldError> {
    name_error("group", name, |_| false)
}

fn consumer_name_error(name: &str) -> Option<FieldError> {
    name_error("consumer", name, |b| b.is_ascii_uppercase())
        .map(|_| FieldError::new("consumer", "must be 1-64 characters of [A-Za-z0-9_.-]"))
}

/// A full stream entry id (`<ms>-<seq>`), as `after` and `ids` take them.
fn is_entry_id(id: &str) -> bool {
    switchyard_kit::stream::is_entry_id(id, false)
}

fn check_event(event: &NewEvent, at: &str, v: &mut Violations) {
    if event.kind.is_empty() || event.kind.chars().count() > 128 || event.kind.chars().any(char::is_control) {
        v.push(FieldError::new(format!("{at}type"), "must be 1-128 characters, no control characters"));
    }
    if event.data.len() > MAX_DATA_BYTES {
        v.push(FieldError::new(format!("{at}data"), "must be at most 64 KiB of JSON"));
    }
}

fn checked(errors: impl IntoIterator<Item = Option<FieldError>>) -> Result<(), EventsError> {
    let errors: Vec<FieldError> = errors.into_iter().flatten().collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EventsError::Validation(errors))
    }
}

fn bounded(field: &str, value: Option<u64>, default: u64, max: u64) -> Result<u64, FieldError> {
    match value.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(FieldError::new(field, format!("must be between 1 and {max}"))),
    }
}

fn after_error(after: Option<&str>) -> Option<FieldError> {
    after.filter(|id| !is_entry_id(id)).map(|_| FieldError::new("after", "must be an event id like 1700000000000-0"))
}

/// NOGROUP: the group (or the stream) does not exist.
fn no_group(error: KitError) -> EventsError {
    match &error {
        KitError::Redis(e) if e.code() == Some("NOGROUP") => EventsError::NoSuchGroup,
        _ => EventsError::Redis(error),
    }
}

impl Events {
    /// `request_timeout` bounds how long a read may wait; `registry` holds
    /// each account's streams, at most `max_streams` each.
    pub fn new(
        redis: RedisConnection,
        keys: Keyspace,
        redis_config: &switchyard_kit::RedisConfig,
        request_timeout: Duration,
        registry: Quota,
        max_streams: u64,
        persistence: Arc<dyn PersistentStreams>,
    ) -> Self {
        let max_wait = MAX_WAIT.min(request_timeout.saturating_sub(Duration::from_secs(1)));
        let waiters = BlockingConnections::new(redis_config, MAX_WAITING_READS, max_wait);
        Self { redis, keys, waiters, registry, max_streams, persistence }
    }

    /// The kit stream's name: `sys:<name>` as it is, an account's stream
    /// `<account>/<name>` (what producers outside the API use too).
    pub fn kit_name(account: PrincipalId, name: &str) -> String {
        if name.starts_with(SYSTEM_PREFIX) {
            name.to_owned()
        } else {
            format!("{account}/{name}")
        }
    }

    fn stream(&self, owner: Owner, name: &str) -> EventStream {
        EventStream::new(self.redis.clone(), self.keys.clone(), &Self::kit_name(owner.account, name))
    }

    /// An operator stream named by anyone else does not exist.
    fn visible(owner: Owner, name: &str) -> Result<(), EventsError> {
        if name.starts_with(SYSTEM_PREFIX) && !owner.operator {
            return Err(EventsError::NoSuchStream);
        }
        Ok(())
    }

    /// Admits the account's stream `name` under its quota (a new one is
    /// recorded; an operator stream is not the account's to count).
    async fn admit(&self, owner: Owner, name: &str) -> Result<(), EventsError> {
        if name.starts_with(SYSTEM_PREFIX) {
            return Ok(());
        }
        if self.registry.admit(&owner.account.to_string(), name, self.max_streams).await? {
            Ok(())
        } else {
            Err(EventsError::QuotaExceeded { limit: self.max_streams })
        }
    }

    /// Marks the account's stream persistent (the worker stores its events
    /// in the event log) or not; marking creates the stream under the quota.
    pub async fn set_persist(&self, owner: Owner, stream: &str, persist: bool) -> Result<(), EventsError> {
        checked([stream_name_error(stream)])?;
        if persist {
            self.admit(owner, stream).await?;
        }
        self.persistence.set(owner.account.uuid(), stream, persist).await.map_err(EventsError::Store)
    }

    /// Whether the stream's events go to the event log (always, for the
    /// operator streams).
    pub async fn is_persistent(&self, owner: Owner, stream: &str) -> Result<bool, EventsError> {
        Self::visible(owner, stream)?;
        checked([readable_name_error(stream)])?;
        if stream.starts_with(SYSTEM_PREFIX) {
            return Ok(true);
        }
        self.persistence.is_persistent(owner.account.uuid(), stream).await.map_err(EventsError::Store)
    }

    /// Appends one event; returns its id.
    pub async fn publish(&self, owner: Owner, stream: &str, event: NewEvent) -> Result<String, EventsError> {
        let mut ids = self.append(owner, stream, std::slice::from_ref(&event), |_| String::new()).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Appends 1-100 events in order, in one round trip; a bad one appends none.
    pub async fn publish_batch(
        &self,
        owner: Owner,
        stream: &str,
        events: &[NewEvent],
    ) -> Result<Vec<String>, EventsError> {
        self.append(owner, stream, events, |i| format!("events[{i}].")).await
    }

    /// Checks and appends `events`; `at(i)` prefixes the field names of the
    /// `i`th event's errors.
    async fn append(
        &self,
        owner: Owner,
        stream: &str,
        events: &[NewEvent],
        at: fn(usize) -> String,
    ) -> Result<Vec<String>, EventsError> {
        let mut v = Violations::default();
        if let Some(error) = stream_name_error(stream) {
            v.push(error);
        }
        if events.is_empty() || events.len() > MAX_BATCH {
            v.push(FieldError::new("events", format!("must hold 1-{MAX_BATCH} events")));
        }
        for (i, event) in events.iter().enumerate() {
            check_event(event, &at(i), &mut v);
        }
        checked(v.into_errors().into_iter().map(Some))?;
        self.admit(owner, stream).await?;
        Ok(self.stream(owner, stream).publish_many(events).await?)
    }

    /// Up to `limit` events after `after`, oldest first.
    pub async fn replay(
        &self,
        owner: Owner,
        stream: &str,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<Event>, EventsError> {
        Self::visible(owner, stream)?;
        let limit = bounded("limit", limit, 100, MAX_PAGE);
        checked([readable_name_error(stream), after_error(after), limit.as_ref().err().cloned()])?;
        Ok(self.stream(owner, stream).range(after, limit.unwrap_or(1)).await?)
    }

    /// Creates a group; false when it existed (it keeps its position).
    pub async fn create_group(
        &self,
        owner: Owner,
        stream: &str,
        group: &str,
        start: Option<&str>,
    ) -> Result<bool, EventsError> {
        let start_at = match start.unwrap_or("end") {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            _ => Err(FieldError::new("start", "must be beginning or end")),
        };
        Self::visible(owner, stream)?;
        checked([readable_name_error(stream), group_name_error(group), start_at.as_ref().err().cloned()])?;
        // MKSTREAM: a group on a new stream creates it.
        self.admit(owner, stream).await?;
        Ok(self.stream(owner, stream).create_group(group, start_at.unwrap_or(StartAt::End)).await?)
    }

    /// Deletes a group and what it had pending; false when there was none.
    pub async fn delete_group(&self, owner: Owner, stream: &str, group: &str) -> Result<bool, EventsError> {
        Self::visible(owner, stream)?;
        checked([readable_name_error(stream), group_name_error(group)])?;
        Ok(self.stream(owner, stream).delete_group(group).await?)
    }

    /// Events never delivered to `group`, now delivered to the consumer;
    /// waits for some when asked and a waiting connection is free.
    pub async fn read(
        &self,
        owner: Owner,
        stream: &str,
        group: &str,
        spec: &ReadSpec,
    ) -> Result<Vec<Delivery>, EventsError> {
        let count = bounded("count", spec.count, 10, MAX_READ);
        let wait = match spec.wait {
            Some(wait) if wait > MAX_WAIT => Err(FieldError::new("wait_ms", "must be at most 20000")),
            other => Ok(other.unwrap_or_default().min(self.waiters.max_wait())),
        };
        Self::visible(owner, stream)?;
        checked([
            readable_name_error(stream),
            group_name_error(group),
            consumer_name_error(&spec.consumer),
            count.as_ref().err().cloned(),
            wait.as_ref().err().cloned(),
        ])?;
        let (events, count, wait) = (self.stream(owner, stream), count.unwrap_or(1), wait.unwrap_or_default());
        let ready = events.read_group(group, &spec.consumer, count).await.map_err(no_group)?;
        if !ready.is_empty() || wait.is_zero() {
            return Ok(ready);
        }
        let Some(waiter) = self.waiters.try_get().await? else { return Ok(ready) };
        let waited = events
            .read_group_waiting(waiter.connection(), group, &spec.consumer, count, wait)
            .await
            .map_err(no_group)?;
        waiter.done();
        Ok(waited)
    }

    /// Acknowledges events for `group`; returns how many were pending.
    pub async fn ack(&self, owner: Owner, stream: &str, group: &str, ids: &[String]) -> Result<u64, EventsError> {
        let ids_error = (ids.is_empty() || ids.len() > MAX_BATCH || !ids.iter().all(|id| is_entry_id(id)))
            .then(|| FieldError::new("ids", format!("must hold 1-{MAX_BATCH} event ids")));
        Self::visible(owner, stream)?;
        checked([readable_name_error(stream), group_name_error(group), ids_error])?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.stream(owner, stream).ack(group, &ids).await.map_err(no_group)
    }

    /// Takes over events left unacknowledged, dead-lettering those
    /// delivered too often.
    pub async fn reclaim(
        &self,
        owner: Owner,
        stream: &str,
        group: &str,
        spec: &ReclaimSpec,
    ) -> Result<Reclaimed, EventsError> {
        let count = bounded("count", spec.count, 10, MAX_READ);
        let max_deliveries = bounded("max_deliveries", spec.max_deliveries, 5, MAX_DELIVERIES);
        // Redis keeps idle times as signed 64-bit milliseconds: a day is the
        // longest that makes sense for a consumer to be gone.
        let idle_error = (spec.min_idle > MAX_MIN_IDLE)
            .then(|| FieldError::new("min_idle_ms", "must be at most a day (86400000 ms)"));
        Self::visible(owner, stream)?;
        checked([
            readable_name_error(stream),
            group_name_error(group),
            consumer_name_error(&spec.consumer),
            count.as_ref().err().cloned(),
            max_deliveries.as_ref().err().cloned(),
            idle_error,
        ])?;
        let events = self.stream(owner, stream);
        let (count, max_deliveries) = (count.unwrap_or(1), max_deliveries.unwrap_or(1));
        events.reclaim(group, &spec.consumer, spec.min_idle, count, max_deliveries).await.map_err(no_group)
    }

    /// Dead-lettered events after `after`, oldest first.
    pub async fn dead(
        &self,
        owner: Owner,
        stream: &str,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<DeadEvent>, EventsError> {
        Self::visible(owner, stream)?;
        let limit = bounded("limit", limit, 100, MAX_PAGE);
        checked([readable_name_error(stream), after_error(after), limit.as_ref().err().cloned()])?;
        Ok(self.stream(owner, stream).dead(after, limit.unwrap_or(1)).await?)
    }

    pub async fn stats(&self, owner: Owner, stream: &str) -> Result<StreamStats, EventsError> {
        Self::visible(owner, stream)?;
        checked([readable_name_error(stream)])?;
        Ok(self.stream(owner, stream).stats().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_checked() {
        assert!(stream_name_error("orders.v2").is_none());
        assert!(stream_name_error("Orders").is_some());
        assert!(stream_name_error("").is_some());
        assert!(stream_name_error(&"a".repeat(65)).is_some());
        assert!(stream_name_error("sys:users").is_some(), "nobody publishes to sys:*");
        assert!(readable_name_error("sys:users").is_none());
        assert!(readable_name_error("sys:").is_some());
        assert!(consumer_name_error("Worker-1").is_none());
        assert!(consumer_name_error("worker 1").is_some());
        assert!(is_entry_id("1700000000000-0"));
        assert!(!is_entry_id("1700000000000"));
        assert!(!is_entry_id("-0"));
        assert!(!is_entry_id("1-x"));
        assert!(!is_entry_id("+"));
        assert!(!is_entry_id("18446744073709551616-0"), "past u64");
    }
}
