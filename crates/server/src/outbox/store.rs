//! The `outbox` table: producers' inserts, the relay's claims, marks and
//! purges.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// The `NOTIFY` channel the relay listens on.
pub const CHANNEL: &str = "switchyard_outbox";

/// Writes an event for `stream` on the caller's transaction and wakes the
/// relays when it commits; returns the row id (the event's key).
///
/// `order_key` names what the event is about (a user, a room, a task):
/// events of one stream and order key reach the stream in commit order;
/// events of different keys are not ordered among themselves, so their
/// transactions commit side by side. Call it last in the transaction: it
/// holds the key's turn until the commit. `data` should carry the ids of
/// what changed and an `occurred_at`.
pub async fn enqueue(
    conn: &mut PgConnection,
    stream: &str,
    order_key: &str,
    kind: &str,
    data: &serde_json::Value,
) -> Result<i64, sqlx::Error> {
    // The key's turn first, so its ids on the stream are drawn in commit
    // order; NOTIFY is delivered only on commit (and not at all on rollback).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('outbox:' || $1 || ':' || $2, 0)), pg_notify($3, '')")
        .bind(stream)
        .bind(order_key)
        .bind(CHANNEL)
        .execute(&mut *conn)
        .await?;
    // `data` goes as text so `json` keeps it as written.
    sqlx::query_scalar("INSERT INTO outbox (stream, kind, data) VALUES ($1, $2, $3::text::json) RETURNING id")
        .bind(stream)
        .bind(kind)
        .bind(data.to_string())
        .fetch_one(&mut *conn)
        .await
}

/// A row waiting to be relayed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub id: i64,
    pub stream: String,
    pub kind: String,
    /// The JSON as written.
    pub data: String,
    pub created_at: DateTime<Utc>,
}

/// Up to `limit` unrelayed rows, oldest first, locked for the caller's
/// transaction (rows another transaction holds are skipped).
pub async fn claim(conn: &mut PgConnection, limit: i64) -> Result<Vec<PendingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, stream, kind, data::text AS data, created_at FROM outbox
         WHERE relayed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn mark_relayed(conn: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET relayed_at = now() WHERE id = ANY($1)").bind(ids).execute(conn).await?;
    Ok(())
}

/// Deletes up to `limit` rows relayed more than `retention` ago; returns
/// how many.
pub async fn purge(db: impl PgExecutor<'_>, retention: std::time::Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox WHERE relayed_at < now() - make_interval(secs => $1) LIMIT $2)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Rows not relayed yet.
pub async fn pending(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE relayed_at IS NULL").fetch_one(db).await
}
