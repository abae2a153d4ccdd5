//! `switchyard consume`: one consumer of a group of any stream, from the
//! command line. It creates the group when missing (at `--from`), then
//! prints one JSON line per event (`stream`, `id`, `type`, `data`,
//! `deliveries`) and acknowledges the event once its line is written and
//! flushed, until shutdown.

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_kit::{EventStream, Keyspace, KitError, RedisConnection};
use tokio_util::sync::CancellationToken;

/// How long one read waits before looking at the shutdown signal again.
const WAIT: Duration = Duration::from_secs(1);
const BATCH: u64 = 100;

/// What to consume.
#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    /// The kit stream name: `sys:users`, `user:<id>/orders`.
    pub stream: String,
    pub group: String,
    pub consumer: String,
    /// Where a new group starts: `$` (new events only), `0` (every event
    /// kept) or an entry id (the events after it).
    pub from: String,
}

/// Why `consume` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error("cannot write to standard output: {0}")]
    Output(#[from] std::io::Error),
}

impl ConsumeSpec {
    fn check(&self) -> Result<(), ConsumeError> {
        if self.stream.is_empty() || self.stream.len() > 200 {
            return Err(ConsumeError::Invalid("--stream must be a stream name such as sys:users or user:<id>/orders"));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if !name_ok(&self.group) {
            return Err(ConsumeError::Invalid("--group must be 1-64 characters of [A-Za-z0-9_.-]"));
        }
        if !name_ok(&self.consumer) {
            return Err(ConsumeError::Invalid("--consumer must be 1-64 characters of [A-Za-z0-9_.-]"));
        }
        if !matches!(self.from.as_str(), "$" | "0") && !switchyard_kit::stream::is_entry_id(&self.from, true) {
            return Err(ConsumeError::Invalid("--from must be $, 0 or an event id such as 1700000000000-0"));
        }
        Ok(())
    }
}

/// Consumes until `shutdown`, writing lines to `out`; `waiter` is a
/// connection of its own for the blocking reads.
pub async fn consume(
    redis: RedisConnection,
    waiter: RedisConnection,
    keys: Keyspace,
    spec: &ConsumeSpec,
    mut out: impl Write,
    shutdown: CancellationToken,
) -> Result<u64, ConsumeError> {
    spec.check()?;
    let stream = EventStream::new(redis, keys, &spec.stream);
    stream.create_group_at(&spec.group, &spec.from).await?;
    let mut consumed = 0;
    loop {
        let read = tokio::select! {
            () = shutdown.cancelled() => break,
            read = stream.read_group_waiting(&waiter, &spec.group, &spec.consumer, BATCH, WAIT) => read?,
        };
        if read.is_empty() {
            continue;
        }
        for delivery in &read {
            let event = &delivery.event;
            let data: Value = serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
            let line = json!({
                "stream": spec.stream,
                "id": event.id,
                "type": event.kind,
                "data": data,
                "deliveries": delivery.deliveries,
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        let ids: Vec<&str> = read.iter().map(|d| d.event.id.as_str()).collect();
        stream.ack(&spec.group, &ids).await?;
        consumed += read.len() as u64;
    }
    Ok(consumed)
}
