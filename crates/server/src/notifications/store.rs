//! Notifications in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct NotificationRow {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// Stores the notification of job `job_id` once: a retried job gets the
/// row its first attempt stored. Returns its id and creation time.
pub async fn insert_once(
    db: impl PgExecutor<'_>,
    job_id: &str,
    user_id: Uuid,
    title: &str,
    body: &str,
    data: &serde_json::Value,
) -> Result<Option<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        // `data` goes as text so `json` keeps it as written (see the
        // migration json_as_written).
        "INSERT INTO notifications (job_id, user_id, title, body, data) VALUES ($1, $2, $3, $4, $5::text::json)
         ON CONFLICT (job_id) DO UPDATE SET job_id = EXCLUDED.job_id
         RETURNING id, created_at",
    )
    .bind(job_id)
    .bind(user_id)
    .bind(title)
    .bind(body)
    .bind(data.to_string())
    .fetch_optional(db)
    .await
}

/// The user's notifications, newest first, older than `before`
/// (created_at, id) when given.
pub async fn page(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    unread_only: bool,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let (before_at, before_id) = before.unzip();
    sqlx::query_as(
        "SELECT id, title, body, data, created_at, read_at FROM notifications
         WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(user_id)
    .bind(unread_only)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn unread_count(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user_id)
        .fetch_one(db)
        .await
}

/// Marks one of the user's notifications read (keeping the first read
/// time); false when the user has no such notification.
pub async fn mark_read(db: impl PgExecutor<'_>, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks every unread notification of the user read; how many were.
pub async fn mark_all_read(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
