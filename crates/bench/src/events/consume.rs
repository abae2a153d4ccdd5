//! The `consume` phase: consumer-group read + ack over HTTP. Each stream
//! gets a group at its beginning and is filled with batch publishes (not
//! timed); then every consumer, on its own connection, reads up to 100
//! events (`POST .../groups/bench/read`), acks their ids in one request
//! (`POST .../groups/bench/ack`) and reads again, until its stream has
//! nothing left to deliver. The rate is the events acked over the time
//! until the last consumer finished; every event must have been acked
//! exactly once (the acks' `acknowledged` counts add up to what was
//! published) and the groups must have nothing pending or undelivered.

use std::sync::Arc;

use anyhow::{ensure, Context as _, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::session::{Auth, Session};
use super::{histogram, percentiles_ms, record, run_tag, EventsArgs};
use crate::connection::Connection;
use crate::scenarios::events_batch::{batch_body, BATCH};

/// Events a read asks for (the route's most).
const READ_COUNT: u64 = 100;
const GROUP: &str = "bench";
/// Per-request timeout of the consumers' and fillers' connections.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Deserialize)]
struct ReadPage {
    events: Vec<Delivered>,
}

#[derive(Deserialize)]
struct Delivered {
    id: String,
}

#[derive(Deserialize)]
struct Acked {
    acknowledged: u64,
}

/// What one consumer did.
struct Consumed {
    acked: u64,
    reads: u64,
    read_latency: Histogram<u64>,
    ack_latency: Histogram<u64>,
    finished: Instant,
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Fills `stream` with `events` events, 100 per request.
async fn fill(session: Arc<Session>, stream: String, events: u64) -> Result<()> {
    let request = session.keyed(Method::POST, "/v1/events:batch")?;
    let body = Bytes::from(batch_body(&stream, 0).to_string());
    let mut conn = Connection::new(Arc::clone(&session.ctx.target), TIMEOUT);
    for _ in 0..events / BATCH as u64 {
        let status = conn.send(request.build_with_body(body.clone())).await?;
        ensure!(status == StatusCode::CREATED, "filling {stream}: batch publish answered {status}");
    }
    Ok(())
}

/// Reads and acks on `stream` as `consumer` until nothing is left.
async fn consume(session: Arc<Session>, stream: String, consumer: String) -> Result<Consumed> {
    let read = session.keyed(Method::POST, &format!("/v1/events/{stream}/groups/{GROUP}/read"))?;
    let ack = session.keyed(Method::POST, &format!("/v1/events/{stream}/groups/{GROUP}/ack"))?;
    let read_body = Bytes::from(json!({"consumer": consumer, "count": READ_COUNT}).to_string());
    let mut conn = Connection::new(Arc::clone(&session.ctx.target), TIMEOUT);
    let mut done =
        Consumed { acked: 0, reads: 0, read_latency: histogram(), ack_latency: histogram(), finished: Instant::now() };
    loop {
        let sent = Instant::now();
        let (status, body) = conn.fetch(read.build_with_body(read_body.clone())).await?;
        ensure!(status == StatusCode::OK, "read on {stream} answered {status}");
        record(&mut done.read_latency, micros(sent));
        done.reads += 1;
        let page: ReadPage = serde_json::from_slice(&body).context("parsing a read's answer")?;
        if page.events.is_empty() {
            done.finished = Instant::now();
            return Ok(done);
        }
        let ids: Vec<String> = page.events.into_iter().map(|e| e.id).collect();
        let sent = Instant::now();
        let (status, body) = conn.fetch(ack.build_with_body(Bytes::from(json!({"ids": ids}).to_string()))).await?;
        ensure!(status == StatusCode::OK, "ack on {stream} answered {status}");
        record(&mut done.ack_latency, micros(sent));
        done.acked += serde_json::from_slice::<Acked>(&body).context("parsing an ack's answer")?.acknowledged;
    }
}

pub async fn run(session: &Session, args: &EventsArgs) -> Result<()> {
    ensure!(args.per_stream.is_multiple_of(BATCH as u64), "--per-stream must be a multiple of {BATCH}");
    let tag = run_tag();
    let streams: Vec<String> = (0..args.streams).map(|k| format!("consume-{tag}-{k}")).collect();
    let published = args.streams * args.per_stream;
    println!(
        "## consume: {published} events in {} streams, {} consumers reading {READ_COUNT} at a time and acking each batch",
        args.streams, args.consumers
    );
    for stream in &streams {
        let path = format!("/v1/events/{stream}/groups/{GROUP}");
        let body = json!({"start": "beginning"});
        session.expect(Method::PUT, &path, Auth::Key, Some(&body), StatusCode::CREATED).await?;
    }
    let session = Arc::new(session.clone());
    let filling = Instant::now();
    let mut fillers = JoinSet::new();
    for stream in &streams {
        fillers.spawn(fill(Arc::clone(&session), stream.clone(), args.per_stream));
    }
    while let Some(filled) = fillers.join_next().await {
        filled??;
    }
    let fill_time = filling.elapsed();
    println!(
        "filled in {:.2} s ({:.0} events/s by batch publish on {} connections; not part of the figure below)",
        fill_time.as_secs_f64(),
        published as f64 / fill_time.as_secs_f64(),
        args.streams
    );

    let started = Instant::now();
    let mut consumers = JoinSet::new();
    for c in 0..args.consumers {
        let stream = streams[usize::try_from(c % args.streams)?].clone();
        consumers.spawn(consume(Arc::clone(&session), stream, format!("c{c}")));
    }
    let (mut acked, mut reads, mut read_latency, mut ack_latency) = (0, 0, histogram(), histogram());
    let mut last = started;
    while let Some(consumed) = consumers.join_next().await {
        let consumed = consumed??;
        acked += consumed.acked;
        reads += consumed.reads;
        read_latency.add(&consumed.read_latency).ok();
        ack_latency.add(&consumed.ack_latency).ok();
        last = last.max(consumed.finished);
    }
    let elapsed = (last - started).as_secs_f64();
    println!();
    println!("| events acked | seconds | read + ack events/s | reads | read p50 / p99 / max (ms) | ack p50 / p99 / max (ms) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {acked} | {elapsed:.2} | {:.0} | {reads} | {} | {} |",
        acked as f64 / elapsed,
        percentiles_ms(&read_latency),
        percentiles_ms(&ack_latency)
    );

    let mut left = 0;
    for stream in &streams {
        let stats =
            session.expect(Method::GET, &format!("/v1/events/{stream}/stats"), Auth::Key, None, StatusCode::OK).await?;
        let group = stats["groups"].as_array().and_then(|g| g.iter().find(|g| g["name"] == GROUP)).cloned();
        let group = group.context("the bench group is gone")?;
        left += group["pending"].as_u64().unwrap_or(u64::MAX) + group["lag"].as_u64().unwrap_or(u64::MAX);
    }
    println!();
    println!("published {published}, acknowledged {acked}, left pending or undelivered {left}");
    println!();
    ensure!(acked == published && left == 0, "the groups did not deliver and ack every event exactly once");
    Ok(())
}
