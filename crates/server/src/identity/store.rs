//! Users (with user management: search, changes, deletion that keeps
//! an anonymised row) and password resets in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Set when the user was deleted (the row is kept, anonymised).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Why an insert was refused.
#[derive(Debug)]
pub enum InsertUserError {
    EmailTaken,
    UsernameTaken,
    Database(sqlx::Error),
}

pub async fn insert_user(
    db: &mut PgConnection,
    username: &str,
    email: &str,
    password_hash: &str,
    role: &str,
) -> Result<UserRow, InsertUserError> {
    let result = sqlx::query_as::<_, UserRow>(
        "INSERT INTO users (id, username, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, username, email, password_hash, role, display_name, created_at, deleted_at",
    )
    .bind(Uuid::now_v7())
    .bind(username)
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .fetch_one(db)
    .await;
    result.map_err(InsertUserError::from)
}

impl From<sqlx::Error> for InsertUserError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => InsertUserError::EmailTaken,
            sqlx::Error::Database(db) if db.constraint() == Some("users_username_key") => {
                InsertUserError::UsernameTaken
            }
            _ => InsertUserError::Database(error),
        }
    }
}

const USER_COLUMNS: &str = "id, username, email, password_hash, role, display_name, created_at, deleted_at";

/// A live (not deleted) user by email.
pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL"
    )))
    .bind(email)
    .fetch_optional(db)
    .await
}

pub async fn find_by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn set_password(db: impl PgExecutor<'_>, user_id: Uuid, password_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn insert_reset(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    user_id: Uuid,
    valid_for: std::time::Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(valid_for.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// Marks an unused, unexpired reset token used and returns its user; `None`
/// when the token is unknown, used or expired. Single use holds under
/// concurrency: the UPDATE's row lock lets only one caller see it unused.
pub async fn consume_reset(db: impl PgExecutor<'_>, token_hash: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE password_resets SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}

/// Users newest first, older than `before` when given, whose username,
/// email or display name contains `query` (case-insensitively).
pub async fn page(
    db: impl PgExecutor<'_>,
    query: Option<&str>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let (before_at, before_id) = before.unzip();
    // LIKE's wildcards in the query are matched literally.
    let pattern = query.map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE ($1::text IS NULL OR username ILIKE $1 OR email ILIKE $1 OR display_name ILIKE $1)
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(pattern)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// What a change sets: `None` leaves a column as it is; `display_name:
/// Some(None)` clears it.
#[derive(Debug, Default, Clone)]
pub struct UserChange<'a> {
    pub username: Option<&'a str>,
    pub display_name: Option<Option<&'a str>>,
    pub role: Option<&'a str>,
}

/// Applies `change` to a live user; `None` when there is none.
pub async fn update_user(
    db: &mut PgConnection,
    id: Uuid,
    change: &UserChange<'_>,
) -> Result<Option<UserRow>, InsertUserError> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET username = COALESCE($2, username),
             display_name = CASE WHEN $3 THEN $4 ELSE display_name END,
             role = COALESCE($5, role), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING {USER_COLUMNS}"
    )))
    .bind(id)
    .bind(change.username)
    .bind(change.display_name.is_some())
    .bind(change.display_name.flatten())
    .bind(change.role)
    .fetch_optional(db)
    .await?;
    Ok(row)
}

/// Deletes a live user, keeping an anonymised row: the email and username
/// are replaced by values made from the id, the display name and the
/// password hash cleared (no password verifies against an empty hash), and
/// `deleted_at` set. `None` when there is no such live user.
pub async fn anonymise_user(db: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    let simple = id.simple().to_string();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET username = $2, email = $3, display_name = NULL, password_hash = '',
             deleted_at = now(), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING {USER_COLUMNS}"
    )))
    .bind(id)
    // `:` is not allowed in a username, so no live user can hold it.
    .bind(format!("deleted:{}", &simple[8..]))
    .bind(format!("deleted-{simple}@deleted.invalid"))
    .fetch_optional(db)
    .await
}
