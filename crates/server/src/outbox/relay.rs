//! The relay: committed outbox rows to their streams, one pass at a time
//! ([`Relay::pass`], which tests drive directly) or as the worker's loop
//! ([`Relay::run`]): woken by `NOTIFY`, polling every [`POLL_EVERY`]
//! otherwise, backing off while Redis or PostgreSQL is away, and purging
//! relayed rows past the retention.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use switchyard_kit::{EventStream, Keyspace, KitError, NewEvent, Quota, RedisConnection};
use tokio_util::sync::CancellationToken;

use super::store::{self, PendingRow, CHANNEL};

/// The advisory lock a relay pass holds for its transaction: one pass at a
/// time across every worker, so each stream gets its rows in id order.
pub const RELAY_LOCK: &str = "outbox-relay";

/// How often an idle relay looks without being notified (a notification
/// lost while its listening connection was down, or rows left by a worker
/// that died mid-pass).
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// Rows claimed per pass.
pub const DEFAULT_BATCH: i64 = 500;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const PURGE_EVERY: Duration = Duration::from_secs(60);
const PURGE_BATCH: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Appended (and marked) this many rows; 0 when none was waiting.
    Relayed(usize),
    /// Another relay's pass holds the turn; it will take these rows.
    Busy,
}

#[derive(Clone, Debug)]
pub struct Relay {
    db: PgPool,
    redis: RedisConnection,
    keys: Keyspace,
    retention: Duration,
    batch: i64,
    /// Where an account's streams are listed, so the worker's processing
    /// groups find the streams the relay creates.
    registry: Option<Quota>,
}

impl Relay {
    /// A relay over `db` appending to `redis` under `keys`, deleting
    /// relayed rows after `retention`.
    pub fn new(db: PgPool, redis: RedisConnection, keys: Keyspace, retention: Duration) -> Self {
        Self { db, redis, keys, retention, batch: DEFAULT_BATCH, registry: None }
    }

    /// Lists every account stream it appends to (`<account>/<name>`) in
    /// `registry`. Server-written streams are always admitted: the
    /// per-account quota limits what accounts create.
    pub fn with_registry(mut self, registry: Quota) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Claims at most `batch` rows per pass (at least 1).
    pub fn with_batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// One pass: under the relay lock, claim the oldest pending rows,
    /// append them to their streams in id order (one pipeline per stream),
    /// mark them relayed and commit. An error rolls back: the rows stay
    /// pending (some may have been appended already; they carry their key).
    pub async fn pass(&self) -> Result<Pass, RelayError> {
        let mut tx = self.db.begin().await?;
        let turn: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !turn {
            return Ok(Pass::Busy);
        }
        let rows = store::claim(&mut tx, self.batch).await?;
        if rows.is_empty() {
            return Ok(Pass::Relayed(0));
        }
        for (stream, events) in by_stream(&rows) {
            if let (Some(registry), Some((owner, name))) = (&self.registry, stream.split_once('/')) {
                registry.admit(owner, name, u64::MAX).await?;
            }
            EventStream::new(self.redis.clone(), self.keys.clone(), stream).publish_many(&events).await?;
        }
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        store::mark_relayed(&mut tx, &ids).await?;
        tx.commit().await?;
        metrics::counter!("outbox_relayed_total").increment(ids.len() as u64);
        Ok(Pass::Relayed(ids.len()))
    }

    /// Deletes relayed rows past the retention; returns how many.
    pub async fn purge(&self) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let deleted = store::purge(&self.db, self.retention, PURGE_BATCH).await?;
            total += deleted;
            if deleted < PURGE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Rows waiting to be relayed.
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        store::pending(&self.db).await
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.db).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Relays until `shutdown` fires: a pass whenever notified, every
    /// [`POLL_EVERY`] otherwise, at once again after a full batch.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut backoff = MIN_BACKOFF;
        let mut purge_due = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if listener.is_none() {
                listener = self
                    .listen()
                    .await
                    .inspect_err(|error| tracing::warn!(%error, "outbox relay cannot listen; polling meanwhile"))
                    .ok();
            }
            // What was announced before this pass, the pass sees; what is
            // announced during it stays buffered and wakes the next one.
            if let Some(listener) = listener.as_mut() {
                while listener.next_buffered().is_some() {}
            }
            if purge_due <= tokio::time::Instant::now() {
                match self.purge().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "deleted relayed outbox rows past their retention"),
                    Err(error) => tracing::warn!(%error, "outbox purge failed; retrying later"),
                }
                purge_due = tokio::time::Instant::now() + PURGE_EVERY;
            }
            match self.pass().await {
                Ok(Pass::Relayed(n)) => {
                    backoff = MIN_BACKOFF;
                    if n as i64 >= self.batch {
                        continue;
                    }
                    if let Ok(pending) = self.pending().await {
                        metrics::gauge!("outbox_pending").set(pending as f64);
                    }
                }
                Ok(Pass::Busy) => {}
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "outbox relay pass failed; rows stay pending");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(POLL_EVERY) => {}
                heard = notified => if let Err(error) = heard {
                    tracing::warn!(%error, "outbox relay lost its listening connection; reconnecting");
                    listener = None;
                },
            }
        }
    }
}

/// The rows grouped by stream (streams in order of their first row), each
/// group in id order, as events keyed by their outbox id.
fn by_stream(rows: &[PendingRow]) -> Vec<(&str, Vec<NewEvent>)> {
    let mut groups: Vec<(&str, Vec<NewEvent>)> = Vec::new();
    for row in rows {
        let event = NewEvent::new(&row.kind, &row.data).with_key(row.id.to_string());
        match groups.iter_mut().find(|(stream, _)| *stream == row.stream) {
            Some((_, events)) => events.push(event),
            None => groups.push((&row.stream, vec![event])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, stream: &str) -> PendingRow {
        PendingRow {
            id,
            stream: stream.into(),
            kind: "k".into(),
            data: format!("{{\"n\":{id}}}"),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn rows_are_grouped_by_stream_in_id_order_and_keyed_by_their_id() {
        let rows = [row(1, "a"), row(2, "b"), row(3, "a"), row(4, "b"), row(5, "c")];
        let groups = by_stream(&rows);
        let shape: Vec<(&str, Vec<Option<String>>)> =
            groups.iter().map(|(s, events)| (*s, events.iter().map(|e| e.key.clone()).collect())).collect();
        assert_eq!(
            shape,
            [
                ("a", vec![Some("1".into()), Some("3".into())]),
                ("b", vec![Some("2".into()), Some("4".into())]),
                ("c", vec![Some("5".into())]),
            ]
        );
    }
}
