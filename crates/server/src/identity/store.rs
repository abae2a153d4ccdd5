//! Users and password resets in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

/// Why an insert was refused.
#[derive(Debug)]
pub enum InsertUserError {
    EmailTaken,
    UsernameTaken,
    Database(sqlx::Error),
}

pub async fn insert_user(
    db: impl PgExecutor<'_>,
    username: &str,
    email: &str,
    password_hash: &str,
    role: &str,
) -> Result<UserRow, InsertUserError> {
    let result = sqlx::query_as::<_, UserRow>(
        "INSERT INTO users (id, username, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, username, email, password_hash, role, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(username)
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .fetch_one(db)
    .await;
    result.map_err(|error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => InsertUserError::EmailTaken,
        sqlx::Error::Database(db) if db.constraint() == Some("users_username_key") => InsertUserError::UsernameTaken,
        _ => InsertUserError::Database(error),
    })
}

const USER_COLUMNS: &str = "id, username, email, password_hash, role, created_at";

pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1)")))
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
