//! Stream names, tenancy, validation and waiting reads over the kit's
//! `EventStream`. A stream lives in its account's namespace (a user and the
//! API clients it owns share one), so one account never reads another's.

use std::time::Duration;

use switchyard_kit::{
    BlockingConnections, DeadEvent, Delivery, Event, EventStream, Keyspace, KitError, NewEvent, Reclaimed,
    RedisConnection, StartAt, StreamStats,
};

use crate::domain::PrincipalId;
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

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("no such group")]
    NoSuchGroup,
    #[error(transparent)]
    Redis(#[from] KitError),
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
    /// `request_timeout` bounds how long a read may wait.
    pub fn new(
        redis: RedisConnection,
        keys: Keyspace,
        redis_config: &switchyard_kit::RedisConfig,
        request_timeout: Duration,
    ) -> Self {
        let max_wait = MAX_WAIT.min(request_timeout.saturating_sub(Duration::from_secs(1)));
        Self { redis, keys, waiters: BlockingConnections::new(redis_config, MAX_WAITING_READS, max_wait) }
    }

    fn stream(&self, account: PrincipalId, name: &str) -> EventStream {
        EventStream::new(self.redis.clone(), self.keys.clone(), &format!("{account}/{name}"))
    }

    /// Appends one event; returns its id.
    pub async fn publish(&self, account: PrincipalId, stream: &str, event: NewEvent) -> Result<String, EventsError> {
        let mut ids = self.append(account, stream, std::slice::from_ref(&event), |_| String::new()).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Appends 1-100 events in order, in one round trip; a bad one appends none.
    pub async fn publish_batch(
        &self,
        account: PrincipalId,
        stream: &str,
        events: &[NewEvent],
    ) -> Result<Vec<String>, EventsError> {
        self.append(account, stream, events, |i| format!("events[{i}].")).await
    }

    /// Checks and appends `events`; `at(i)` prefixes the field names of the
    /// `i`th event's errors.
    async fn append(
        &self,
        account: PrincipalId,
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
        Ok(self.stream(account, stream).publish_many(events).await?)
    }

    /// Up to `limit` events after `after`, oldest first.
    pub async fn replay(
        &self,
        account: PrincipalId,
        stream: &str,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<Event>, EventsError> {
        let limit = bounded("limit", limit, 100, MAX_PAGE);
        checked([stream_name_error(stream), after_error(after), limit.as_ref().err().cloned()])?;
        Ok(self.stream(account, stream).range(after, limit.unwrap_or(1)).await?)
    }

    /// Creates a group; false when it existed (it keeps its position).
    pub async fn create_group(
        &self,
        account: PrincipalId,
        stream: &str,
        group: &str,
        start: Option<&str>,
    ) -> Result<bool, EventsError> {
        let start_at = match start.unwrap_or("end") {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            _ => Err(FieldError::new("start", "must be beginning or end")),
        };
        checked([stream_name_error(stream), group_name_error(group), start_at.as_ref().err().cloned()])?;
        Ok(self.stream(account, stream).create_group(group, start_at.unwrap_or(StartAt::End)).await?)
    }

    /// Deletes a group and what it had pending; false when there was none.
    pub async fn delete_group(&self, account: PrincipalId, stream: &str, group: &str) -> Result<bool, EventsError> {
        checked([stream_name_error(stream), group_name_error(group)])?;
        Ok(self.stream(account, stream).delete_group(group).await?)
    }

    /// Events never delivered to `group`, now delivered to the consumer;
    /// waits for some when asked and a waiting connection is free.
    pub async fn read(
        &self,
        account: PrincipalId,
        stream: &str,
        group: &str,
        spec: &ReadSpec,
    ) -> Result<Vec<Delivery>, EventsError> {
        let count = bounded("count", spec.count, 10, MAX_READ);
        let wait = match spec.wait {
            Some(wait) if wait > MAX_WAIT => Err(FieldError::new("wait_ms", "must be at most 20000")),
            other => Ok(other.unwrap_or_default().min(self.waiters.max_wait())),
        };
        checked([
            stream_name_error(stream),
            group_name_error(group),
            consumer_name_error(&spec.consumer),
            count.as_ref().err().cloned(),
            wait.as_ref().err().cloned(),
        ])?;
        let (events, count, wait) = (self.stream(account, stream), count.unwrap_or(1), wait.unwrap_or_default());
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
    pub async fn ack(
        &self,
        account: PrincipalId,
        stream: &str,
        group: &str,
        ids: &[String],
    ) -> Result<u64, EventsError> {
        let ids_error = (ids.is_empty() || ids.len() > MAX_BATCH || !ids.iter().all(|id| is_entry_id(id)))
            .then(|| FieldError::new("ids", format!("must hold 1-{MAX_BATCH} event ids")));
        checked([stream_name_error(stream), group_name_error(group), ids_error])?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.stream(account, stream).ack(group, &ids).await.map_err(no_group)
    }

    /// Takes over events left unacknowledged, dead-lettering those
    /// delivered too often.
    pub async fn reclaim(
        &self,
        account: PrincipalId,
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
        checked([
            stream_name_error(stream),
            group_name_error(group),
            consumer_name_error(&spec.consumer),
            count.as_ref().err().cloned(),
            max_deliveries.as_ref().err().cloned(),
            idle_error,
        ])?;
        let events = self.stream(account, stream);
        let (count, max_deliveries) = (count.unwrap_or(1), max_deliveries.unwrap_or(1));
        events.reclaim(group, &spec.consumer, spec.min_idle, count, max_deliveries).await.map_err(no_group)
    }

    /// Dead-lettered events after `after`, oldest first.
    pub async fn dead(
        &self,
        account: PrincipalId,
        stream: &str,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<DeadEvent>, EventsError> {
        let limit = bounded("limit", limit, 100, MAX_PAGE);
        checked([stream_name_error(stream), after_error(after), limit.as_ref().err().cloned()])?;
        Ok(self.stream(account, stream).dead(after, limit.unwrap_or(1)).await?)
    }

    pub async fn stats(&self, account: PrincipalId, stream: &str) -> Result<StreamStats, EventsError> {
        checked([stream_name_error(stream)])?;
        Ok(self.stream(account, stream).stats().await?)
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
