//! The `activity` table: batches written with one statement, pages read
//! newest first on (occurred_at, id).
//!
//! A batch is one binary `COPY` (one statement, one transaction, whatever
//! its size): PostgreSQL inserts its rows in bulk, with less work per row
//! than an `INSERT`, and the rows are encoded without building per-column
//! arrays. `COPY` cannot skip rows already stored, so a batch of which any
//! row is (a retry after a commit whose answer was lost, a spill replayed
//! after a restart) fails whole on the primary key and is written again as
//! one `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO NOTHING`.
//!
//! Invariant: writing a batch again adds nothing; every write is one
//! transaction, so a failed one adds nothing either.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolCopyExt;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::copy_binary::CopyRows;
use super::record::IpText;
use super::{ActivityRecord, PrincipalKind};

const COPY: &str = "COPY activity (id, occurred_at, request_id, principal_kind, user_id, client_id, account_id,
                       method, route, status, latency_us, request_bytes, response_bytes, client_ip, user_agent)
                    FROM STDIN (FORMAT binary)";

/// PostgreSQL's `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

/// Stores the records not stored yet; how many were new.
pub async fn insert_batch(db: &PgPool, batch: &[ActivityRecord]) -> Result<u64, sqlx::Error> {
    if batch.is_empty() {
        return Ok(0);
    }
    match copy_batch(db, batch).await {
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            insert_new(db, batch).await
        }
        done => done,
    }
}

/// The batch as one binary `COPY`; fails whole if any row is stored.
async fn copy_batch(db: &PgPool, batch: &[ActivityRecord]) -> Result<u64, sqlx::Error> {
    let mut rows = CopyRows::with_capacity(batch.len());
    for r in batch {
        rows.row(15)
            .uuid(Some(r.id))
            .timestamptz(r.occurred_at)
            .text(Some(&r.request_id))
            .text(Some(r.principal_kind.as_str()))
            .uuid(r.user_id)
            .uuid(r.client_id)
            .uuid(r.account_id)
            .text(Some(&r.method))
            .text(Some(&r.route))
            .int2(i16::try_from(r.status).unwrap_or(i16::MAX))
            .int8(i64::try_from(r.latency_us).unwrap_or(i64::MAX))
            .int8(i64::try_from(r.request_bytes).unwrap_or(i64::MAX))
            .int8(i64::try_from(r.response_bytes).unwrap_or(i64::MAX))
            .text(r.client_ip.map(IpText::new).as_ref().map(IpText::as_str))
            .text(r.user_agent.as_deref());
    }
    let mut copy = db.copy_in_raw(COPY).await?;
    copy.send(rows.finish()).await?;
    copy.finish().await
}

/// The records not stored yet, skipping the others; how many were new.
async fn insert_new(db: impl PgExecutor<'_>, batch: &[ActivityRecord]) -> Result<u64, sqlx::Error> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut request_ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    let mut accounts = Vec::with_capacity(n);
    let mut methods = Vec::with_capacity(n);
    let mut routes = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut request_bytes = Vec::with_capacity(n);
    let mut response_bytes = Vec::with_capacity(n);
    let mut ips = Vec::with_capacity(n);
    let mut agents = Vec::with_capacity(n);
    for r in batch {
        ids.push(r.id);
        occurred.push(r.occurred_at);
        request_ids.push(r.request_id.as_str());
        kinds.push(r.principal_kind.as_str());
        users.push(r.user_id);
        clients.push(r.client_id);
        accounts.push(r.account_id);
        methods.push(r.method.as_ref());
        routes.push(r.route.as_ref());
        statuses.push(i16::try_from(r.status).unwrap_or(i16::MAX));
        latencies.push(i64::try_from(r.latency_us).unwrap_or(i64::MAX));
        request_bytes.push(i64::try_from(r.request_bytes).unwrap_or(i64::MAX));
        response_bytes.push(i64::try_from(r.response_bytes).unwrap_or(i64::MAX));
        ips.push(r.client_ip.map(|ip| ip.to_string()));
        agents.push(r.user_agent.as_deref());
    }
    let done = sqlx::query(
        "INSERT INTO activity (id, occurred_at, request_id, principal_kind, user_id, client_id, account_id,
                               method, route, status, latency_us, request_bytes, response_bytes, client_ip, user_agent)
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::uuid[],
                              $7::uuid[], $8::text[], $9::text[], $10::int2[], $11::int8[], $12::int8[], $13::int8[],
                              $14::text[], $15::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(ids)
    .bind(occurred)
    .bind(request_ids)
    .bind(kinds)
    .bind(users)
    .bind(clients)
    .bind(accounts)
    .bind(methods)
    .bind(routes)
    .bind(statuses)
    .bind(latencies)
    .bind(request_bytes)
    .bind(response_bytes)
    .bind(ips)
    .bind(agents)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Which rows a page is taken from.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `None`: every account (operators).
    pub account_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub route: Option<String>,
    pub status: Option<u16>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    request_id: String,
    principal_kind: String,
    user_id: Option<Uuid>,
    client_id: Option<Uuid>,
    account_id: Option<Uuid>,
    method: String,
    route: String,
    status: i16,
    latency_us: i64,
    request_bytes: i64,
    response_bytes: i64,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

impl From<Row> for ActivityRecord {
    fn from(r: Row) -> Self {
        let principal_kind = match r.principal_kind.as_str() {
            "user" => PrincipalKind::User,
            "client" => PrincipalKind::Client,
            _ => PrincipalKind::Anonymous,
        };
        Self {
            id: r.id,
            occurred_at: r.occurred_at,
            request_id: r.request_id,
            principal_kind,
            user_id: r.user_id,
            client_id: r.client_id,
            account_id: r.account_id,
            method: r.method.into(),
            route: r.route.into(),
            status: u16::try_from(r.status).unwrap_or(0),
            latency_us: u64::try_from(r.latency_us).unwrap_or(0),
            request_bytes: u64::try_from(r.request_bytes).unwrap_or(0),
            response_bytes: u64::try_from(r.response_bytes).unwrap_or(0),
            // Written from an address by this module.
            client_ip: r.client_ip.and_then(|ip| ip.parse().ok()),
            user_agent: r.user_agent,
        }
    }
}

/// Rows matching `filter`, newest first, older than `before` (occurred_at,
/// id) when given.
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &Filter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ActivityRecord>, sqlx::Error> {
    let (before_at, before_id) = before.unzip();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, occurred_at, request_id, principal_kind, user_id, client_id, account_id, method, route,
                status, latency_us, request_bytes, response_bytes, client_ip, user_agent
         FROM activity
         WHERE ($1::uuid IS NULL OR account_id = $1)
           AND ($2::uuid IS NULL OR client_id = $2)
           AND ($3::text IS NULL OR route = $3)
           AND ($4::int2 IS NULL OR status = $4)
           AND ($5::timestamptz IS NULL OR occurred_at >= $5)
           AND ($6::timestamptz IS NULL OR occurred_at < $6)
           AND ($7::timestamptz IS NULL OR (occurred_at, id) < ($7, $8))
         ORDER BY occurred_at DESC, id DESC LIMIT $9",
    )
    .bind(filter.account_id)
    .bind(filter.client_id)
    .bind(filter.route.as_deref())
    .bind(filter.status.map(|s| i16::try_from(s).unwrap_or(i16::MAX)))
    .bind(filter.from)
    .bind(filter.to)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
