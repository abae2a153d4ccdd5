//! The `latency` phase: publish -> persisted in the event log at a paced
//! rate. `--publishers` connections share `--rate` events/s for
//! `--duration`, one `POST /v1/events` each, to a stream of the run marked
//! persistent (after one event has shown that the group reads the new
//! stream); every event's data carries its send time (`sent_us`, µs
//! since the epoch, taken just before the request is written). The worker's
//! `event-log` group stores them in the `events` table; once the table
//! holds every event published (counted), each event's latency is its
//! `stored_at` (the `now()` of the insert that stored it: that statement's
//! transaction start, so the commit itself, a few ms at most, is not
//! included) minus `sent_us`. Both clocks are this machine's. Also shown:
//! send -> appended to the stream (the entry id's millisecond), which
//! splits the latency into the publish and the group's share.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::session::{Auth, Session};
use super::{histogram, micros_now, percentiles_ms, record, run_tag, EventsArgs};
use crate::connection::Connection;
use crate::scenarios::PrebuiltRequest;

/// What one publisher did.
struct Published {
    ok: u64,
    failed: u64,
    latency: Histogram<u64>,
    finished: Instant,
}

/// Publishes `count` events to `stream`, one every `period` from `start`.
async fn publish(
    session: Arc<Session>,
    request: PrebuiltRequest,
    stream: String,
    publisher: u64,
    count: u64,
    start: Instant,
    period: Duration,
) -> Result<Published> {
    let mut conn = Connection::new(Arc::clone(&session.ctx.target), Duration::from_secs(10));
    let mut ticks = tokio::time::interval_at(start, period);
    // Behind schedule, catch up: the offered rate stays the target.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut done = Published { ok: 0, failed: 0, latency: histogram(), finished: start };
    for seq in 0..count {
        ticks.tick().await;
        let sent = micros_now();
        let body = format!(
            r#"{{"stream":"{stream}","type":"bench.latency","data":{{"sent_us":{sent},"publisher":{publisher},"seq":{seq}}}}}"#
        );
        let began = Instant::now();
        match conn.send(request.build_with_body(Bytes::from(body))).await {
            Ok(StatusCode::CREATED) => {
                record(&mut done.latency, u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX));
                done.ok += 1;
            }
            _ => done.failed += 1,
        }
    }
    done.finished = Instant::now();
    Ok(done)
}

async fn stored(db: &PgPool, stream: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events WHERE stream = $1").bind(stream).fetch_one(db).await?)
}

pub async fn run(session: &Session, args: &EventsArgs) -> Result<()> {
    let url = args.database_url.as_deref().context("the latency phase reads the events table: give --database-url")?;
    let db = PgPoolOptions::new().max_connections(1).connect(url).await.context("connecting to --database-url")?;
    let name = format!("latency-{}", run_tag());
    session.persist(&name).await?;
    let stream = session.log_stream(&name);
    let total = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    println!(
        "## latency: {total} events at {} events/s for {} from {} connections, publish -> persisted in the event log",
        args.rate,
        humantime::format_duration(args.duration),
        args.publishers
    );
    // A stream newly marked persistent is found by the group within its
    // discovery interval; that wait is shown apart from the steady state.
    let marked = Instant::now();
    let first = json!({"stream": name, "type": "bench.warmup", "data": {}});
    session.expect(Method::POST, "/v1/events", Auth::Key, Some(&first), StatusCode::CREATED).await?;
    while stored(&db, &stream).await? < 1 {
        ensure!(marked.elapsed() < args.settle, "the event log did not pick up {name} within --settle");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "a first event reached the event log {:.0} ms after the stream was marked persistent (the group finds new streams every second)",
        marked.elapsed().as_secs_f64() * 1000.0
    );
    let session = Arc::new(session.clone());
    let request = session.keyed(Method::POST, "/v1/events")?;
    let period = Duration::from_secs_f64(args.publishers as f64 / args.rate as f64);
    let start = Instant::now() + Duration::from_millis(100);
    let mut publishers = JoinSet::new();
    for p in 0..args.publishers {
        let count = total / args.publishers + u64::from(p < total % args.publishers);
        // Interleaved, so the events arrive evenly spread.
        let offset = period.mul_f64(p as f64 / args.publishers as f64);
        let task = publish(Arc::clone(&session), request.clone(), name.clone(), p, count, start + offset, period);
        publishers.spawn(task);
    }
    let (mut ok, mut failed, mut http, mut last) = (0, 0, histogram(), start);
    while let Some(done) = publishers.join_next().await {
        let done = done??;
        ok += done.ok;
        failed += done.failed;
        http.add(&done.latency).ok();
        last = last.max(done.finished);
    }
    let sent_for = (last - start).as_secs_f64();
    let waiting = Instant::now();
    let mut in_log = stored(&db, &stream).await?;
    // The warm-up event is in the log too.
    let expected = i64::try_from(ok)? + 1;
    while in_log < expected && waiting.elapsed() < args.settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        in_log = stored(&db, &stream).await?;
    }
    let rows: Vec<(Option<i64>, i64, i64)> = sqlx::query_as(
        "SELECT (data->>'sent_us')::int8, (extract(epoch FROM stored_at) * 1000000)::int8, id_ms
         FROM events WHERE stream = $1",
    )
    .bind(&stream)
    .fetch_all(&db)
    .await?;
    let (mut persisted, mut appended) = (histogram(), histogram());
    for (sent, stored_us, id_ms) in &rows {
        let Some(sent) = sent.and_then(|s| u64::try_from(s).ok()) else { continue };
        record(&mut persisted, u64::try_from(*stored_us).unwrap_or(0).saturating_sub(sent));
        record(&mut appended, u64::try_from(*id_ms).unwrap_or(0).saturating_mul(1000).saturating_sub(sent));
    }
    println!();
    println!("| published | failed | sent in (s) | events/s sent | in the event log | publish request p50 / p99 / max (ms) | send -> appended p50 / p99 / max (ms) | send -> persisted p50 / p99 / max (ms) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {ok} | {failed} | {sent_for:.2} | {:.0} | {} | {} | {} | {} |",
        ok as f64 / sent_for,
        in_log - 1,
        percentiles_ms(&http),
        percentiles_ms(&appended),
        percentiles_ms(&persisted)
    );
    println!();
    ensure!(in_log == expected, "the event log holds {} of the {ok} events published", in_log - 1);
    Ok(())
}
