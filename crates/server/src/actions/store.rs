//! Actions in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ActionRow {
    pub id: Uuid,
    pub actor_kind: String,
    pub actor_id: Uuid,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, actor_kind, actor_id, type, metadata, created_at";

/// An action about to be inserted (its id is made by the caller, so rows
/// of a batch can be matched to their requests).
#[derive(Debug, Clone)]
pub struct NewAction {
    pub id: Uuid,
    pub actor_kind: String,
    pub actor_id: Uuid,
    /// The actor's account (the user, or the client's owner).
    pub account_id: Uuid,
    pub kind: String,
    pub metadata: serde_json::Value,
}

/// Inserts many actions in one statement (one commit).
pub async fn insert_many(db: impl PgExecutor<'_>, actions: &[NewAction]) -> Result<Vec<ActionRow>, sqlx::Error> {
    let ids: Vec<Uuid> = actions.iter().map(|a| a.id).collect();
    let kinds: Vec<&str> = actions.iter().map(|a| a.actor_kind.as_str()).collect();
    let actors: Vec<Uuid> = actions.iter().map(|a| a.actor_id).collect();
    let accounts: Vec<Uuid> = actions.iter().map(|a| a.account_id).collect();
    let types: Vec<&str> = actions.iter().map(|a| a.kind.as_str()).collect();
    // As text, so the `json` column keeps it as written (see the migration
    // json_as_written).
    let metadata: Vec<String> = actions.iter().map(|a| a.metadata.to_string()).collect();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO actions (id, actor_kind, actor_id, type, metadata, account_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[]::json[], $6::uuid[])
         RETURNING {COLUMNS}"
    )))
    .bind(ids)
    .bind(kinds)
    .bind(actors)
    .bind(types)
    .bind(metadata)
    .bind(accounts)
    .fetch_all(db)
    .await
}

pub async fn mark_published(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("UPDATE actions SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL")
        .bind(ids)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Whose actions a page holds.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// One actor's own (`user` or `client`, and its id).
    Actor(&'a str, Uuid),
    /// Every action of an account: its user's and its clients'.
    Account(Uuid),
}

/// Actions of `owner`, newest first, before `before` (a cursor: an id).
pub async fn page(
    db: impl PgExecutor<'_>,
    owner: Owner<'_>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ActionRow>, sqlx::Error> {
    // Both filters take the same parameters, so the rest of the query and
    // its bindings are shared; the account filter only types `$1`.
    let (filter, kind, id) = match owner {
        Owner::Actor(kind, id) => ("actor_kind = $1 AND actor_id = $2", Some(kind), id),
        Owner::Account(id) => ("$1::text IS NULL AND account_id = $2", None, id),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM actions WHERE {filter} AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    )))
    .bind(kind)
    .bind(id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Actions whose side effects are still missing after `older_than`,
/// locked for this repairer (others skip them).
pub async fn unpublished(
    db: impl PgExecutor<'_>,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<ActionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM actions WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1)
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(db)
    .await
}
