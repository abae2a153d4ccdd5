//! API clients and keys in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub rate_limit: Option<i32>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What authenticating with a key resolves to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub client_id: Uuid,
    pub owner_id: Uuid,
    pub rate_limit: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The owning user's role (`user` or `admin`).
    pub owner_role: String,
}

pub async fn insert_client(
    db: impl PgExecutor<'_>,
    owner_id: Uuid,
    name: &str,
    rate_limit: Option<i32>,
) -> Result<ClientRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO api_clients (id, owner_id, name, rate_limit) VALUES ($1, $2, $3, $4)
         RETURNING id, owner_id, name, rate_limit, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(owner_id)
    .bind(name)
    .bind(rate_limit)
    .fetch_one(db)
    .await
}

pub async fn insert_key(
    db: impl PgExecutor<'_>,
    client_id: Uuid,
    key_hash: &[u8],
    prefix: &str,
) -> Result<KeyRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO api_keys (id, client_id, key_hash, prefix) VALUES ($1, $2, $3, $4)
         RETURNING id, client_id, prefix, created_at, expires_at, revoked_at, last_used_at",
    )
    .bind(Uuid::now_v7())
    .bind(client_id)
    .bind(key_hash)
    .bind(prefix)
    .fetch_one(db)
    .await
}

pub async fn owned_client(
    db: impl PgExecutor<'_>,
    owner_id: Uuid,
    client_id: Uuid,
) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, owner_id, name, rate_limit, created_at FROM api_clients WHERE id = $1 AND owner_id = $2")
        .bind(client_id)
        .bind(owner_id)
        .fetch_optional(db)
        .await
}

pub async fn clients_of(db: impl PgExecutor<'_>, owner_id: Uuid) -> Result<Vec<ClientRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, owner_id, name, rate_limit, created_at FROM api_clients WHERE owner_id = $1 ORDER BY created_at, id",
    )
    .bind(owner_id)
    .fetch_all(db)
    .await
}

/// Keys of the given clients, newest first.
pub async fn keys_of(db: impl PgExecutor<'_>, client_ids: &[Uuid]) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, client_id, prefix, created_at, expires_at, revoked_at, last_used_at FROM api_keys
         WHERE client_id = ANY($1) ORDER BY created_at DESC, id DESC",
    )
    .bind(client_ids)
    .fetch_all(db)
    .await
}

/// Revokes every live key of every client of `owner_id`.
pub async fn revoke_owner_keys(db: impl PgExecutor<'_>, owner_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys k SET revoked_at = now() FROM api_clients c
         WHERE c.id = k.client_id AND c.owner_id = $1 AND k.revoked_at IS NULL",
    )
    .bind(owner_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Every key of every client of `owner_id`: its hash, and whether it is
/// revoked (for cache invalidation).
pub async fn owner_key_hashes(db: impl PgExecutor<'_>, owner_id: Uuid) -> Result<Vec<(Vec<u8>, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.key_hash, k.revoked_at IS NOT NULL FROM api_keys k JOIN api_clients c ON c.id = k.client_id
         WHERE c.owner_id = $1",
    )
    .bind(owner_id)
    .fetch_all(db)
    .await
}

/// Hashes of every key of a client (for cache invalidation).
pub async fn key_hashes_of(db: impl PgExecutor<'_>, client_id: Uuid) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE client_id = $1").bind(client_id).fetch_all(db).await
}

/// Starts the grace period of every other live key of the client: it now
/// expires at `now + grace` (unless it expires sooner already). Returns the
/// newest such key's new expiry.
pub async fn start_grace(
    db: impl PgExecutor<'_>,
    client_id: Uuid,
    new_key_id: Uuid,
    grace: std::time::Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH updated AS (
             UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, 'infinity'), now() + make_interval(secs => $3))
             WHERE client_id = $1 AND id <> $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
             RETURNING created_at, id, expires_at)
         SELECT expires_at FROM updated ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(client_id)
    .bind(new_key_id)
    .bind(grace.as_secs_f64())
    .fetch_optional(db)
    .await
}

/// Revokes every live key of the client except the newest `keep`; returns
/// the revoked keys' hashes.
pub async fn enforce_retention(
    db: impl PgExecutor<'_>,
    client_id: Uuid,
    keep: i64,
) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now()
         WHERE client_id = $1 AND revoked_at IS NULL AND id NOT IN (
             SELECT id FROM api_keys WHERE client_id = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > now())
             ORDER BY created_at DESC, id DESC LIMIT $2)
         RETURNING key_hash",
    )
    .bind(client_id)
    .bind(keep)
    .fetch_all(db)
    .await
}

/// Revokes one key of a client owned by `owner_id`; false when there is no
/// such key for that owner.
pub async fn revoke_key(
    db: impl PgExecutor<'_>,
    owner_id: Uuid,
    client_id: Uuid,
    key_id: Uuid,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE api_keys k SET revoked_at = COALESCE(k.revoked_at, now())
         FROM api_clients c
         WHERE k.id = $3 AND k.client_id = $2 AND c.id = k.client_id AND c.owner_id = $1
         RETURNING k.key_hash",
    )
    .bind(owner_id)
    .bind(client_id)
    .bind(key_id)
    .fetch_optional(db)
    .await
}

/// The live key with this hash, marking it used.
pub async fn use_key(db: impl PgExecutor<'_>, key_hash: &[u8]) -> Result<Option<KeyOwner>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE api_keys k SET last_used_at = now()
         FROM api_clients c, users u
         WHERE k.key_hash = $1 AND c.id = k.client_id AND u.id = c.owner_id AND k.revoked_at IS NULL
           AND u.deleted_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > now())
         RETURNING k.id AS key_id, k.client_id, c.owner_id, c.rate_limit, k.expires_at, u.role AS owner_role",
    )
    .bind(key_hash)
    .fetch_optional(db)
    .await
}
