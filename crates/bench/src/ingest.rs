//! `switchyard-bench ingest`: how fast the activity recorder gets records
//! into PostgreSQL, beside a raw `COPY` of the same rows, in one run.
//!
//! - recorder: the server's own [`Recorder`] (no observers), fed through
//!   its channel. The channel (capacity N) is filled with N records and
//!   its sending side dropped before the clock starts; the recorder then
//!   takes them in batches of `--batch-size` and writes each with
//!   `store::insert_batch`, one batch at a time, exactly as in `serve`;
//!   the clock stops when its task returns (the channel is empty and every
//!   batch committed), and the row count is checked;
//! - copy: the same N rows as one `COPY ... FROM STDIN` (text format) into
//!   `activity_copy`, a table made `LIKE activity INCLUDING ALL` (same
//!   columns, primary key and indexes as a daily partition); the clock
//!   includes encoding the rows.
//!
//! Each round runs both, in alternating order, after emptying both tables.
//! The database is created for the run (from the admin URL) and dropped at
//! the end; Redis is only touched if a write fails (the spill), under a key
//! prefix of the run's own, deleted at the end.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use chrono::Utc;
use clap::Args;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use switchyard::analytics::recorder::{self, Recorder, RecorderConfig};
use switchyard::analytics::spill::Spill;
use switchyard::analytics::{partitions, ActivityRecord, PrincipalKind};
use switchyard_kit::{Keyspace, RedisConfig, RedisConnection};
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// A PostgreSQL URL whose role may create databases; the run's own
    /// database is created beside it and dropped at the end.
    #[arg(
        long,
        value_name = "URL",
        env = "SY_PG_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    /// Redis, for the recorder's spill (used only if a write fails).
    #[arg(long, value_name = "URL", env = "SY_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Rows per run.
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Recorder batch sizes to measure (`ACTIVITY_BATCH_SIZE`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    batch_size: Vec<usize>,
    /// Rounds per batch size (each round: recorder and COPY, alternating
    /// which goes first).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const COLUMNS: &str = "id, occurred_at, request_id, principal_kind, user_id, client_id, account_id, method, route, \
                       status, latency_us, request_bytes, response_bytes, client_ip, user_agent";

pub async fn run(args: IngestArgs) -> Result<()> {
    ensure!(args.rows > 0 && args.rounds > 0, "--rows and --rounds must be positive");
    let suffix = crate::queue::rand_suffix();
    let db_name = format!("sy_bench_ingest_{suffix:x}");
    let mut admin = PgConnection::connect(&args.admin_url).await.context("connecting with --admin-url")?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).execute(&mut admin).await?;
    let db_url = database_url(&args.admin_url, &db_name)?;
    let outcome = measure(&args, &db_url, &format!("sy-bench-ingest-{suffix:x}")).await;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))).execute(&mut admin).await?;
    outcome
}

/// `admin_url` with its database replaced by `name` (query kept).
fn database_url(admin_url: &str, name: &str) -> Result<String> {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let slash =
        base.rfind('/').filter(|&i| i > base.find("//").map_or(0, |j| j + 1)).context("no database in --admin-url")?;
    Ok(format!("{}/{name}{}", &base[..slash], query.map(|q| format!("?{q}")).unwrap_or_default()))
}

async fn measure(args: &IngestArgs, db_url: &str, prefix: &str) -> Result<()> {
    let db =
        PgPoolOptions::new().max_connections(4).connect(db_url).await.context("connecting to the run's database")?;
    switchyard::startup::MIGRATOR.run(&db).await?;
    partitions::maintain(&db, Utc::now().date_naive(), 1, None).await?;
    sqlx::query("CREATE TABLE activity_copy (LIKE activity INCLUDING ALL)").execute(&db).await?;
    let redis = RedisConnection::connect(&RedisConfig::new(&args.redis)?).await.context("connecting to Redis")?;
    let keys = Keyspace::new(prefix)?;
    let spill = Spill::new(redis, &keys, 100_000);
    let records = synthetic(args.rows);
    eprintln!("ingest: {} rows per run, batch sizes {:?}, {} rounds", args.rows, args.batch_size, args.rounds);

    println!("| batch size | round | recorder rows/s | COPY rows/s | recorder / COPY |");
    println!("| --- | --- | --- | --- | --- |");
    let mut summary = Vec::new();
    for &batch_size in &args.batch_size {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            let recorder_first = round % 2 == 1;
            let (mut a, mut b) = (0.0, 0.0);
            for step in 0..2 {
                empty(&db).await?;
                if (step == 0) == recorder_first {
                    a = through_recorder(&db, &spill, &records, batch_size).await?;
                } else {
                    b = through_copy(&db, &records).await?;
                }
            }
            println!("| {batch_size} | {round} | {a:.0} | {b:.0} | {:.2} |", a / b);
            ours.push(a);
            raw.push(b);
        }
        summary.push((batch_size, median(&ours), median(&raw), ours, raw));
    }
    println!();
    println!("| batch size | recorder rows/s (median) | COPY rows/s (median) | recorder / COPY (median; per round) |");
    println!("| --- | --- | --- | --- |");
    for (batch_size, a, b, ours, raw) in summary {
        let per_round: Vec<String> = ours.iter().zip(&raw).map(|(x, y)| format!("{:.2}", x / y)).collect();
        let ratios: Vec<f64> = ours.iter().zip(&raw).map(|(x, y)| x / y).collect();
        println!("| {batch_size} | {a:.0} | {b:.0} | {:.2} ({}) |", median(&ratios), per_round.join(" / "));
    }
    db.close().await;
    Ok(())
}

async fn empty(db: &PgPool) -> Result<()> {
    sqlx::query("TRUNCATE activity, activity_copy").execute(db).await?;
    // Start each run from the same state: no dead tuples, fresh statistics.
    sqlx::query("VACUUM ANALYZE activity, activity_copy").execute(db).await?;
    sqlx::query("CHECKPOINT").execute(db).await.ok();
    Ok(())
}

/// Rows per second through the recorder, all rows checked.
async fn through_recorder(db: &PgPool, spill: &Spill, records: &[ActivityRecord], batch_size: usize) -> Result<f64> {
    let (sink, inbox) = recorder::channel(records.len(), batch_size);
    for record in records {
        sink.send(record.clone());
    }
    drop(sink);
    let config = RecorderConfig {
        batch_size,
        flush_interval: Duration::from_secs(5),
        memory_max_records: records.len(),
        partitions_ahead_days: 1,
    };
    let recorder = Recorder::new(inbox, db.clone(), spill.clone(), Vec::new(), config);
    // Held so the recorder stops because its channel is empty and closed,
    // not because it was told to.
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    recorder.run(stopped).await;
    let elapsed = started.elapsed();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM activity").fetch_one(db).await?;
    ensure!(stored as usize == records.len(), "the recorder stored {stored} of {} rows", records.len());
    Ok(records.len() as f64 / elapsed.as_secs_f64())
}

/// Rows per second of one text-format COPY of the same rows (encoding
/// included), all rows checked.
async fn through_copy(db: &PgPool, records: &[ActivityRecord]) -> Result<f64> {
    let mut conn = db.acquire().await?;
    let started = Instant::now();
    let mut copy = conn.copy_in_raw(&format!("COPY activity_copy ({COLUMNS}) FROM STDIN")).await?;
    let mut buffer = String::with_capacity(1 << 20);
    for chunk in records.chunks(4096) {
        buffer.clear();
        for record in chunk {
            copy_line(&mut buffer, record);
        }
        copy.send(buffer.as_bytes()).await?;
    }
    let copied = copy.finish().await?;
    let elapsed = started.elapsed();
    ensure!(copied as usize == records.len(), "COPY stored {copied} of {} rows", records.len());
    Ok(records.len() as f64 / elapsed.as_secs_f64())
}

/// One row in COPY's text format.
fn copy_line(out: &mut String, r: &ActivityRecord) {
    let _ = write!(out, "{}\t{}\t", r.id, r.occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    escaped(out, Some(&r.request_id));
    let _ = write!(out, "\t{}\t", r.principal_kind.as_str());
    for id in [r.user_id, r.client_id, r.account_id] {
        match id {
            Some(id) => {
                let _ = write!(out, "{id}\t");
            }
            None => out.push_str("\\N\t"),
        }
    }
    escaped(out, Some(&r.method));
    out.push('\t');
    escaped(out, Some(&r.route));
    let _ = write!(out, "\t{}\t{}\t{}\t{}\t", r.status, r.latency_us, r.request_bytes, r.response_bytes);
    escaped(out, r.client_ip.map(|ip| ip.to_string()).as_deref());
    out.push('\t');
    escaped(out, r.user_agent.as_deref());
    out.push('\n');
}

/// A text value in COPY's text format (`\N` for NULL).
fn escaped(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// `n` records shaped like the `apikey_auth` scenario's: API clients of a
/// few accounts calling one route, each with its own id.
fn synthetic(n: usize) -> Vec<ActivityRecord> {
    let accounts: Vec<Uuid> = (0..16).map(|_| Uuid::now_v7()).collect();
    let clients: Vec<Uuid> = (0..64).map(|_| Uuid::now_v7()).collect();
    (0..n)
        .map(|i| ActivityRecord {
            id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            request_id: Uuid::new_v4().to_string(),
            principal_kind: PrincipalKind::Client,
            user_id: None,
            client_id: Some(clients[i % clients.len()]),
            account_id: Some(accounts[i % accounts.len()]),
            method: "GET".into(),
            route: "/v1/auth/whoami".into(),
            status: 200,
            latency_us: 150 + (i as u64 % 400),
            request_bytes: 0,
            response_bytes: 180,
            client_ip: Some([127, 0, 0, 1].into()),
            user_agent: Some("switchyard-bench/0.1".to_owned()),
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_in_the_url() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url("postgres://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert!(database_url("postgres://h", "x").is_err());
    }

    #[test]
    fn copy_text_escapes_and_nulls() {
        let mut record = synthetic(1).remove(0);
        record.user_agent = Some("a\tb\\c\nd".to_owned());
        record.client_ip = None;
        let mut line = String::new();
        copy_line(&mut line, &record);
        let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert_eq!(fields.len(), 15);
        assert_eq!(fields[4], "\\N");
        assert_eq!(fields[13], "\\N");
        assert_eq!(fields[14], "a\\tb\\\\c\\nd");
    }
}
