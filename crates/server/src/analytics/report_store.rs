//! The usage SQL: the daily roll-up of `activity` into `usage_daily`, and
//! the report queries over `usage_daily`. Reads `api_clients` (owner and
//! name of a client) without writing it.
//!
//! Invariants: a day's roll-up replaces its rows and marks it in
//! `usage_rollups` in the caller's transaction, so a day has either all of
//! its roll-up or none; the latency bucket of a row is computed with the
//! bounds of [`super::usage`], the same rule as the live counters.

use std::collections::HashSet;

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::usage::{Usage, BUCKETS, LATENCY_BOUNDS_US};

fn bounds() -> Vec<i64> {
    LATENCY_BOUNDS_US.iter().map(|&b| i64::try_from(b).unwrap_or(i64::MAX)).collect()
}

/// Replaces `day`'s rows of `usage_daily` with the roll-up of its
/// activity and marks the day rolled; returns the rows written.
pub async fn roll_up_day(conn: &mut PgConnection, day: NaiveDate) -> Result<u64, sqlx::Error> {
    // Two workers rolling the same day wait for each other instead of
    // colliding on the unique index.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('usage_daily'), hashtext($1::text))")
        .bind(day)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM usage_daily WHERE day = $1").bind(day).execute(&mut *conn).await?;
    // width_bucket(x - 1, bounds) counts the bounds below x: bucket i holds
    // (bound[i-1], bound[i]], as `usage::bucket_of` does.
    let written = sqlx::query(
        "WITH bucketed AS (
             SELECT account_id, client_id, method, route,
                    width_bucket(latency_us - 1, $2::bigint[]) AS bucket,
                    count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors
             FROM activity
             WHERE occurred_at >= $1::date AND occurred_at < $1::date + 1
             GROUP BY 1, 2, 3, 4, 5
         ), grouped AS (
             SELECT account_id, client_id, method, route, sum(requests) AS requests, sum(errors) AS errors,
                    jsonb_object_agg(bucket, requests) AS buckets
             FROM bucketed GROUP BY 1, 2, 3, 4
         )
         INSERT INTO usage_daily (day, account_id, client_id, method, route, requests, errors, latency_histogram)
         SELECT $1, account_id, client_id, method, route, requests, errors,
                ARRAY(SELECT COALESCE((buckets ->> i::text)::bigint, 0) FROM generate_series(0, $3 - 1) AS i ORDER BY i)
         FROM grouped",
    )
    .bind(day)
    .bind(bounds())
    .bind(i32::try_from(BUCKETS).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO usage_rollups (day) VALUES ($1) ON CONFLICT (day) DO UPDATE SET rolled_at = EXCLUDED.rolled_at",
    )
    .bind(day)
    .execute(&mut *conn)
    .await?;
    Ok(written)
}

/// Days in `[from, to]` not rolled up yet, oldest first.
pub async fn unrolled_days(db: &PgPool, from: NaiveDate, to: NaiveDate) -> Result<Vec<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT d::date FROM generate_series($1::date, $2::date, interval '1 day') AS d
         WHERE NOT EXISTS (SELECT 1 FROM usage_rollups r WHERE r.day = d::date) ORDER BY 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// Days in `[from, to]` rolled up.
pub async fn rolled_days(db: &PgPool, from: NaiveDate, to: NaiveDate) -> Result<HashSet<NaiveDate>, sqlx::Error> {
    let days: Vec<NaiveDate> = sqlx::query_scalar("SELECT day FROM usage_rollups WHERE day BETWEEN $1 AND $2")
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await?;
    Ok(days.into_iter().collect())
}

/// How rolled-up usage is grouped: each group's key is text, spelled as
/// the live counters spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// `YYYY-MM-DD`.
    Day,
    /// The client id; rows without a client are left out.
    Client,
    /// `<METHOD> <route>`.
    Route,
}

/// Which rows count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub account: Option<Uuid>,
    pub client: Option<Uuid>,
}

/// Rolled-up usage of `[from, to]`, summed per group (histograms bucket by
/// bucket).
pub async fn usage(
    db: &PgPool,
    grouping: Grouping,
    filter: Filter,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, Usage)>, sqlx::Error> {
    let (key, only_clients) = match grouping {
        Grouping::Day => ("to_char(day, 'YYYY-MM-DD')", false),
        Grouping::Client => ("client_id::text", true),
        Grouping::Route => ("method || ' ' || route", false),
    };
    // `key` is one of the fixed expressions above, never input.
    let sql = format!(
        "WITH picked AS (
             SELECT {key} AS key, requests, errors, latency_histogram FROM usage_daily
             WHERE day BETWEEN $1 AND $2
               AND ($3::uuid IS NULL OR account_id = $3)
               AND ($4::uuid IS NULL OR client_id = $4)
               AND (NOT $5 OR client_id IS NOT NULL)
         ), totals AS (
             SELECT key, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors FROM picked GROUP BY key
         ), buckets AS (
             SELECT key, h.i, sum(h.n)::bigint AS n
             FROM picked, unnest(latency_histogram) WITH ORDINALITY AS h(n, i) GROUP BY key, h.i
         ), histograms AS (
             SELECT key, array_agg(n ORDER BY i) AS histogram FROM buckets GROUP BY key
         )
         SELECT t.key, t.requests, t.errors, COALESCE(h.histogram, '{{}}') FROM totals t LEFT JOIN histograms h USING (key)"
    );
    let rows: Vec<(String, i64, i64, Vec<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from)
        .bind(to)
        .bind(filter.account)
        .bind(filter.client)
        .bind(only_clients)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, requests, errors, histogram)| (key, Usage::from_stored(requests, errors, &histogram)))
        .collect())
}

/// The user owning API client `client`, if there is such a client.
pub async fn client_owner(db: &PgPool, client: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT owner_id FROM api_clients WHERE id = $1").bind(client).fetch_optional(db).await
}

/// The names of these API clients (those that still exist).
pub async fn client_names(db: &PgPool, clients: &[Uuid]) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, name FROM api_clients WHERE id = ANY($1)").bind(clients).fetch_all(db).await
}
