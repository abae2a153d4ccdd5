//! Tasks in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

const COLUMNS: &str = "id, account_id, title, description, priority, status, assigned_to, created_by, created_at, \
                       completed_at, completed_by";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub priority: String,
    pub status: String,
    pub assigned_to: Option<Uuid>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
}

/// A task to insert.
#[derive(Debug, Clone)]
pub struct NewTaskRow<'a> {
    pub account_id: Uuid,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub priority: &'a str,
    pub assigned_to: Option<Uuid>,
    pub created_by: &'a str,
}

/// Inserts the task; `None` when `assigned_to` names no live user.
pub async fn insert(conn: &mut PgConnection, task: &NewTaskRow<'_>) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tasks (id, account_id, title, description, priority, assigned_to, created_by)
         SELECT $1, $2, $3, $4, $5, $6, $7
         WHERE $6::uuid IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $6 AND deleted_at IS NULL)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(task.account_id)
    .bind(task.title)
    .bind(task.description)
    .bind(task.priority)
    .bind(task.assigned_to)
    .bind(task.created_by)
    .fetch_optional(conn)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, account_id: Uuid, id: Uuid) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tasks WHERE id = $1 AND account_id = $2")))
        .bind(id)
        .bind(account_id)
        .fetch_optional(db)
        .await
}

/// Which tasks a page holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskFilter<'a> {
    pub status: Option<&'a str>,
    pub assigned_to: Option<Uuid>,
}

/// The account's tasks newest first, older than `before` when given.
pub async fn page(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    filter: TaskFilter<'_>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let (before_at, before_id) = before.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE account_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR assigned_to = $3)
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
         ORDER BY created_at DESC, id DESC LIMIT $6"
    )))
    .bind(account_id)
    .bind(filter.status)
    .bind(filter.assigned_to)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Completes an open task of the account; `None` when there is no such
/// open task (none at all, or completed already).
pub async fn complete(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    completed_by: &str,
) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = 'completed', completed_at = now(), completed_by = $3
         WHERE id = $1 AND account_id = $2 AND status = 'open'
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(account_id)
    .bind(completed_by)
    .fetch_optional(conn)
    .await
}
