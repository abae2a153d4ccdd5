//! The event log's SQL: the `events` table (one multi-row insert per
//! batch, idempotent by (stream, id)), the persistent-stream marks, the
//! counting groups' tables (each count in one statement with the record of
//! the events it counted, so a redelivery counts once), and the queries.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One event as the log stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub stream: String,
    pub id: String,
    pub id_ms: i64,
    pub id_seq: i64,
    pub account: Option<Uuid>,
    pub kind: String,
    /// JSON text.
    pub data: String,
    pub key: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Stores `events`; returns how many were new.
pub async fn insert_events(db: &PgPool, events: &[LoggedEvent]) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let column = |f: fn(&LoggedEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
    let streams = column(|e| e.stream.clone());
    let ids = column(|e| e.id.clone());
    let kinds = column(|e| e.kind.clone());
    let data = column(|e| e.data.clone());
    let ms: Vec<i64> = events.iter().map(|e| e.id_ms).collect();
    let seq: Vec<i64> = events.iter().map(|e| e.id_seq).collect();
    let accounts: Vec<Option<Uuid>> = events.iter().map(|e| e.account).collect();
    let keys: Vec<Option<String>> = events.iter().map(|e| e.key.clone()).collect();
    let at: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let done = sqlx::query(
        "INSERT INTO events (stream, id, id_ms, id_seq, account, type, data, key, occurred_at)
         SELECT s, i, m, q, a, t, d::json, k, o
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::uuid[], $6::text[], $7::text[],
                     $8::text[], $9::timestamptz[]) AS x(s, i, m, q, a, t, d, k, o)
         ON CONFLICT (stream, id) DO NOTHING",
    )
    .bind(&streams)
    .bind(&ids)
    .bind(&ms)
    .bind(&seq)
    .bind(&accounts)
    .bind(&kinds)
    .bind(&data)
    .bind(&keys)
    .bind(&at)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn set_persistent(db: &PgPool, account: Uuid, name: &str, persist: bool) -> Result<(), sqlx::Error> {
    let query = if persist {
        "INSERT INTO persistent_streams (account, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM persistent_streams WHERE account = $1 AND name = $2"
    };
    sqlx::query(query).bind(account).bind(name).execute(db).await?;
    Ok(())
}

pub async fn is_persistent(db: &PgPool, account: Uuid, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM persistent_streams WHERE account = $1 AND name = $2)")
        .bind(account)
        .bind(name)
        .fetch_one(db)
        .await
}

/// Every persistent stream (of `account`, or of all accounts).
pub async fn persistent_streams(db: &PgPool, account: Option<Uuid>) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT account, name FROM persistent_streams WHERE $1::uuid IS NULL OR account = $1")
        .bind(account)
        .fetch_all(db)
        .await
}

/// Counts the `task.completed` events `(id, assignee)` of `stream` not
/// counted before, per assignee, in one statement.
pub async fn count_completions(
    db: &PgPool,
    group: &str,
    stream: &str,
    account: Uuid,
    events: &[(String, Option<String>)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    let assignees: Vec<Option<&str>> = events.iter().map(|(_, a)| a.as_deref()).collect();
    sqlx::query(
        "WITH input AS (SELECT * FROM UNNEST($3::text[], $4::text[]) AS t(id, assignee)),
         fresh AS (INSERT INTO processed_events (consumer_group, stream, id)
                   SELECT $1, $2, id FROM input ON CONFLICT DO NOTHING RETURNING id)
         INSERT INTO task_completions (account, assignee, completed)
         SELECT $5, i.assignee, count(*) FROM fresh f JOIN input i USING (id)
         WHERE i.assignee IS NOT NULL GROUP BY i.assignee
         ON CONFLICT (account, assignee) DO UPDATE SET completed = task_completions.completed + EXCLUDED.completed",
    )
    .bind(group)
    .bind(stream)
    .bind(&ids)
    .bind(&assignees)
    .bind(account)
    .execute(db)
    .await?;
    Ok(())
}

/// Counts the `system.error` events `(id, minute)` of `stream` not counted
/// before, per minute; returns the minutes touched with more than
/// `threshold` errors.
pub async fn count_errors(
    db: &PgPool,
    group: &str,
    stream: &str,
    account: Uuid,
    events: &[(String, DateTime<Utc>)],
    threshold: u64,
) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    let minutes: Vec<DateTime<Utc>> = events.iter().map(|(_, m)| *m).collect();
    sqlx::query(
        "WITH input AS (SELECT * FROM UNNEST($3::text[], $4::timestamptz[]) AS t(id, minute)),
         fresh AS (INSERT INTO processed_events (consumer_group, stream, id)
                   SELECT $1, $2, id FROM input ON CONFLICT DO NOTHING RETURNING id)
         INSERT INTO log_error_counts (account, minute, errors)
         SELECT $5, i.minute, count(*) FROM fresh f JOIN input i USING (id) GROUP BY i.minute
         ON CONFLICT (account, minute) DO UPDATE SET errors = log_error_counts.errors + EXCLUDED.errors",
    )
    .bind(group)
    .bind(stream)
    .bind(&ids)
    .bind(&minutes)
    .bind(account)
    .execute(db)
    .await?;
    // Every minute touched, counted now or before: an alert whose delivery
    // failed is retried with the redelivered events.
    sqlx::query_as(
        "SELECT minute, errors FROM log_error_counts
         WHERE account = $1 AND minute = ANY($2) AND errors > $3 ORDER BY minute",
    )
    .bind(account)
    .bind(&minutes)
    .bind(i64::try_from(threshold).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await
}

/// Task completions per assignee of `account`.
pub async fn completions(db: &PgPool, account: Uuid) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT assignee, completed FROM task_completions WHERE account = $1 ORDER BY assignee")
        .bind(account)
        .fetch_all(db)
        .await
}

/// Forgets counted events older than a week (a redelivery comes long before).
pub async fn prune_processed(db: &PgPool) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM processed_events WHERE processed_at < now() - interval '7 days'").execute(db).await?;
    Ok(done.rows_affected())
}

/// What a reader may see: an account's rows, and the operator streams'
/// (account NULL) when `operator`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub account: Uuid,
    pub operator: bool,
    pub stream: Option<String>,
    pub kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Where a newest-first page resumes: strictly older than this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub id_ms: i64,
    pub id_seq: i64,
    pub stream: String,
}

type Row = (String, String, i64, i64, Option<Uuid>, String, String, Option<String>, DateTime<Utc>);

/// Up to `limit` events newest first, after `position`.
pub async fn page(
    db: &PgPool,
    filter: &Filter,
    position: Option<&Position>,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT stream, id, id_ms, id_seq, account, type, data::text, key, occurred_at FROM events
         WHERE (account = $1 OR ($2 AND account IS NULL))
           AND ($3::text IS NULL OR stream = $3)
           AND ($4::text IS NULL OR type = $4)
           AND ($5::timestamptz IS NULL OR occurred_at >= $5)
           AND ($6::timestamptz IS NULL OR occurred_at < $6)
           AND ($7::int8 IS NULL OR (id_ms, id_seq, stream) < ($7, $8, $9))
         ORDER BY id_ms DESC, id_seq DESC, stream DESC
         LIMIT $10",
    )
    .bind(filter.account)
    .bind(filter.operator)
    .bind(&filter.stream)
    .bind(&filter.kind)
    .bind(filter.from)
    .bind(filter.to)
    .bind(position.map(|p| p.id_ms))
    .bind(position.map(|p| p.id_seq))
    .bind(position.map(|p| p.stream.clone()))
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(stream, id, id_ms, id_seq, account, kind, data, key, occurred_at)| LoggedEvent {
            stream,
            id,
            id_ms,
            id_seq,
            account,
            kind,
            data,
            key,
            occurred_at,
        })
        .collect())
}

/// Events per day, stream and type in `[from, to)`: the account's, or
/// every stream's for an operator.
pub async fn daily_counts(
    db: &PgPool,
    filter: &Filter,
) -> Result<Vec<(NaiveDate, String, Option<Uuid>, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, stream, account, type, count(*)
         FROM events
         WHERE ($2 OR account = $1)
           AND ($3::timestamptz IS NULL OR occurred_at >= $3)
           AND ($4::timestamptz IS NULL OR occurred_at < $4)
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 4",
    )
    .bind(filter.account)
    .bind(filter.operator)
    .bind(filter.from)
    .bind(filter.to)
    .fetch_all(db)
    .await
}
