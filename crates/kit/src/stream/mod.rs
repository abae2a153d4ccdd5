//! Event streams: append-only logs on Redis Streams, read in order from any
//! point (replay) or shared out by consumer groups with acknowledgement.
//!
//! Invariants:
//! - a stream and its dead-letter stream share one hash tag (`ev:<name>`),
//!   so the reclaim script, which moves an entry delivered too often to the
//!   dead-letter stream and acknowledges it in one step, runs on Cluster;
//! - every append trims the stream to about `max_len` entries (`MAXLEN ~`),
//!   so no stream grows without bound;
//! - an entry of a group is delivered to one consumer at a time: a second
//!   consumer only gets it by reclaiming it after it sat unacknowledged for
//!   the reclaim's idle time, and concurrent reclaimers never both get it;
//! - blocking reads hold their connection, so they take a connection of
//!   their own (as [`crate::Queue::wait_for_work`] does).

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use crate::duration::millis;
use crate::{Keyspace, KitError, RedisConnection};

static RECLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("reclaim.lua")));

/// A stream entry id as Redis takes it: `<ms>-<seq>`, or `<ms>` alone
/// where `partial` allows it (range bounds), each part a decimal `u64`.
/// Checked before it reaches Redis, which refuses anything else with an
/// error that is the caller's fault, not the server's.
pub fn is_entry_id(id: &str, partial: bool) -> bool {
    let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u64>().is_ok();
    match id.split_once('-') {
        Some((ms, seq)) => part(ms) && part(seq),
        None => partial && part(id),
    }
}

/// Entries kept per stream unless [`EventStream::with_max_len`] says otherwise.
pub const DEFAULT_MAX_LEN: u64 = 100_000;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What happened, e.g. `user.created`.
    pub kind: String,
    /// The event's body (JSON by convention; stored as given).
    pub data: String,
    /// An idempotency key the producer chose (e.g. its outbox row id), so a
    /// consumer can drop a repeat of an event delivered at least once.
    /// Stored as the entry field `key` only when present.
    pub key: Option<String>,
}

impl NewEvent {
    pub fn new(kind: &str, data: &str) -> Self {
        Self { kind: kind.to_owned(), data: data.to_owned(), key: None }
    }

    /// The same event carrying the idempotency key `key`.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The stream entry id, `<ms>-<seq>`: ordered, and the append time.
    pub id: String,
    pub kind: String,
    pub data: String,
    /// The producer's idempotency key, when it gave one.
    pub key: Option<String>,
}

impl Event {
    /// When Redis appended the event (Unix milliseconds), from its id.
    pub fn timestamp_ms(&self) -> Option<u64> {
        self.id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
    }
}

/// An event handed to a consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: Event,
    /// How many times the group has delivered it, this time included.
    pub deliveries: u64,
}

/// What one [`EventStream::reclaim`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reclaimed {
    /// Entries now delivered to the reclaiming consumer.
    pub claimed: Vec<Delivery>,
    /// Ids moved to the dead-letter stream (and acknowledged).
    pub dead: Vec<String>,
}

/// An event moved to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEvent {
    /// The dead-letter entry's own id.
    pub id: String,
    /// The event as it was in the stream (its original id).
    pub event: Event,
    pub group: String,
    pub deliveries: u64,
}

/// Where a new group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// With the oldest entry still in the stream.
    Beginning,
    /// With the next entry appended.
    End,
}

/// A group's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    pub name: String,
    pub consumers: u64,
    /// Delivered, not yet acknowledged.
    pub pending: u64,
    pub last_delivered_id: String,
    /// Entries not yet delivered to the group (`None` when Redis cannot
    /// tell, e.g. after entries were deleted out of order).
    pub lag: Option<u64>,
}

/// A stream at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamStats {
    pub length: u64,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub dead_letters: u64,
    pub groups: Vec<GroupStats>,
}

/// One named event stream.
#[derive(Clone, Debug)]
pub struct EventStream {
    conn: RedisConnection,
    keys: Keyspace,
    tag: String,
    max_len: u64,
}

/// `XRANGE`/`XCLAIM` entries: `[id, [field, value, ...]]`.
type RawEntry = (String, Vec<(String, String)>);

fn event_of((id, fields): RawEntry) -> Event {
    let mut event = Event { id, kind: String::new(), data: String::new(), key: None };
    for (field, value) in fields {
        match field.as_str() {
            "type" => event.kind = value,
            "data" => event.data = value,
            "key" => event.key = Some(value),
            _ => {}
        }
    }
    event
}

impl EventStream {
    pub fn new(conn: RedisConnection, keys: Keyspace, name: &str) -> Self {
        Self { conn, keys, tag: format!("ev:{name}"), max_len: DEFAULT_MAX_LEN }
    }

    /// Keeps about `max_len` entries (at least 1) in the stream and in its
    /// dead-letter stream.
    pub fn with_max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len.max(1);
        self
    }

    /// The stream's Redis key (for inspection and tests).
    pub fn key(&self) -> String {
        self.keys.tagged(&self.tag, &["events"])
    }

    /// The dead-letter stream's Redis key.
    pub fn dead_key(&self) -> String {
        self.keys.tagged(&self.tag, &["dead"])
    }

    fn append_to(&self, pipe: &mut redis::Pipeline, event: &NewEvent) {
        pipe.cmd("XADD")
            .arg(self.key())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg("type")
            .arg(&event.kind)
            .arg("data")
            .arg(&event.data);
        if let Some(key) = &event.key {
            pipe.arg("key").arg(key);
        }
    }

    /// Appends `event`; returns its id.
    pub async fn publish(&self, event: &NewEvent) -> Result<String, KitError> {
        let mut ids = self.publish_many(std::slice::from_ref(event)).await?;
        ids.pop().ok_or_else(|| KitError::Config("XADD returned no id".into()))
    }

    /// Appends `events` in order in one round trip; returns their ids.
    pub async fn publish_many(&self, events: &[NewEvent]) -> Result<Vec<String>, KitError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for event in events {
            self.append_to(&mut pipe, event);
        }
        let mut conn = self.conn.clone();
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// Up to `count` events after `after` (exclusive; `None`: from the
    /// oldest), oldest first: how a reader replays or pages through.
    pub async fn range(&self, after: Option<&str>, count: u64) -> Result<Vec<Event>, KitError> {
        Ok(self.entries_after(&self.key(), after, count).await?.into_iter().map(event_of).collect())
    }

    /// Up to `count` raw entries of the stream at `key` after `after`.
    async fn entries_after(&self, key: &str, after: Option<&str>, count: u64) -> Result<Vec<RawEntry>, KitError> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XRANGE")
            .arg(key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await?)
    }

    /// Creates `group` (and the stream, if it has no entry yet); false when
    /// the group exists already (it keeps its position).
    pub async fn create_group(&self, group: &str, start: StartAt) -> Result<bool, KitError> {
        let position = match start {
            StartAt::Beginning => "0",
            StartAt::End => "$",
        };
        self.create_group_at(group, position).await
    }

    /// [`EventStream::create_group`] at `position`: `0`, `$` or an entry id
    /// (the group's first delivery is the entry after it).
    pub async fn create_group_at(&self, group: &str, position: &str) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.key())
            .arg(group)
            .arg(position)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `group` with its pending list; false when there was none.
    pub async fn delete_group(&self, group: &str) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let destroyed: Result<u64, redis::RedisError> =
            redis::cmd("XGROUP").arg("DESTROY").arg(self.key()).arg(group).query_async(&mut conn).await;
        match destroyed {
            Ok(n) => Ok(n == 1),
            // No stream at all: no group either.
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                    && !self.exists().await? =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn exists(&self) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let exists: u64 = redis::cmd("EXISTS").arg(self.key()).query_async(&mut conn).await?;
        Ok(exists == 1)
    }

    /// Up to `count` events never delivered to `group`, now delivered to
    /// `consumer` (pending until acknowledged); empty when there are none.
    pub async fn read_group(&self, group: &str, consumer: &str, count: u64) -> Result<Vec<Delivery>, KitError> {
        self.read_group_on(&self.conn, group, consumer, count, None).await
    }

    /// [`EventStream::read_group`], waiting up to `block` for an event on
    /// `waiter` (a connection of its own: the wait holds it).
    pub async fn read_group_waiting(
        &self,
        waiter: &RedisConnection,
        group: &str,
        consumer: &str,
        count: u64,
        block: Duration,
    ) -> Result<Vec<Delivery>, KitError> {
        self.read_group_on(waiter, group, consumer, count, Some(block)).await
    }

    async fn read_group_on(
        &self,
        conn: &RedisConnection,
        group: &str,
        consumer: &str,
        count: u64,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, KitError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count.max(1));
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(millis(block).max(1));
        }
        cmd.arg("STREAMS").arg(self.key()).arg(">");
        let mut conn = conn.clone();
        let reply: Option<Vec<(String, Vec<RawEntry>)>> = cmd.query_async(&mut conn).await?;
        let entries = reply.into_iter().flatten().flat_map(|(_, entries)| entries);
        Ok(entries.map(|entry| Delivery { event: event_of(entry), deliveries: 1 }).collect())
    }

    /// Acknowledges `ids` for `group`; returns how many were pending.
    pub async fn ack(&self, group: &str, ids: &[&str]) -> Result<u64, KitError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XACK").arg(self.key()).arg(group).arg(ids).query_async(&mut conn).await?)
    }

    /// Deletes the entries `ids` (a work list consumed without groups, once
    /// each entry is done); returns how many existed.
    pub async fn delete(&self, ids: &[&str]) -> Result<u64, KitError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XDEL").arg(self.key()).arg(ids).query_async(&mut conn).await?)
    }

    /// Takes over up to `count` of `group`'s entries left unacknowledged for
    /// at least `min_idle` (their consumer crashed or stalled) for
    /// `consumer`; an entry already delivered `max_deliveries` times goes to
    /// the dead-letter stream instead. One atomic script.
    pub async fn reclaim(
        &self,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: u64,
        max_deliveries: u64,
    ) -> Result<Reclaimed, KitError> {
        let mut conn = self.conn.clone();
        type Reply = (Vec<(String, Vec<(String, String)>, u64)>, Vec<String>);
        let (claimed, dead): Reply = RECLAIM
            .key(self.key())
            .key(self.dead_key())
            .arg(group)
            .arg(consumer)
            .arg(millis(min_idle))
            .arg(count.max(1))
            .arg(max_deliveries.max(1))
            .arg(self.max_len)
            .invoke_async(&mut conn)
            .await?;
        let claimed = claimed
            .into_iter()
            .map(|(id, fields, deliveries)| Delivery { event: event_of((id, fields)), deliveries })
            .collect();
        Ok(Reclaimed { claimed, dead })
    }

    /// Up to `count` dead-lettered events after `after` (exclusive), oldest first.
    pub async fn dead(&self, after: Option<&str>, count: u64) -> Result<Vec<DeadEvent>, KitError> {
        let entries = self.entries_after(&self.dead_key(), after, count).await?;
        Ok(entries
            .into_iter()
            .map(|(id, fields)| {
                let field = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v.clone());
                let source = field("source_id").unwrap_or_default();
                let deliveries = field("deliveries").and_then(|d| d.parse().ok()).unwrap_or(0);
                let group = field("group").unwrap_or_default();
                DeadEvent { event: event_of((source, fields)), id, group, deliveries }
            })
            .collect())
    }

    /// Length, ends, dead letters and every group's progress, in two round
    /// trips. A stream that does not exist has zero length and no groups.
    pub async fn stats(&self) -> Result<StreamStats, KitError> {
        let mut conn = self.conn.clone();
        let (exists, length, first, last, dead_letters): (bool, u64, Vec<RawEntry>, Vec<RawEntry>, u64) = redis::pipe()
            .cmd("EXISTS")
            .arg(self.key())
            .cmd("XLEN")
            .arg(self.key())
            .cmd("XRANGE")
            .arg(self.key())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .cmd("XREVRANGE")
            .arg(self.key())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("XLEN")
            .arg(self.dead_key())
            .query_async(&mut conn)
            .await?;
        let groups = if exists { self.group_stats(&mut conn).await? } else { Vec::new() };
        Ok(StreamStats {
            length,
            first_id: first.into_iter().next().map(|(id, _)| id),
            last_id: last.into_iter().next().map(|(id, _)| id),
            dead_letters,
            groups,
        })
    }

    async fn group_stats(&self, conn: &mut RedisConnection) -> Result<Vec<GroupStats>, KitError> {
        let groups: Vec<Value> = redis::cmd("XINFO").arg("GROUPS").arg(self.key()).query_async(conn).await?;
        groups.into_iter().map(group_of).collect()
    }
}

/// One `XINFO GROUPS` entry: a flat `[name, value, ...]` list (RESP2) or a
/// map (RESP3).
fn group_of(value: Value) -> Result<GroupStats, KitError> {
    let pairs: Vec<(String, Value)> = match value {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Ok((redis::from_redis_value::<String>(k)?, v)))
            .collect::<Result<_, redis::ParsingError>>()
            .map_err(redis::RedisError::from)?,
        other => redis::from_redis_value(other).map_err(redis::RedisError::from)?,
    };
    let mut stats =
        GroupStats { name: String::new(), consumers: 0, pending: 0, last_delivered_id: String::new(), lag: None };
    for (field, value) in pairs {
        let number = || redis::from_redis_value::<Option<u64>>(value.clone()).ok().flatten();
        match field.as_str() {
            "name" => stats.name = redis::from_redis_value(value).map_err(redis::RedisError::from)?,
            "consumers" => stats.consumers = number().unwrap_or(0),
            "pending" => stats.pending = number().unwrap_or(0),
            "last-delivered-id" => {
                stats.last_delivered_id = redis::from_redis_value(value).map_err(redis::RedisError::from)?
            }
            "lag" => stats.lag = number(),
            _ => {}
        }
    }
    Ok(stats)
}
