//! `switchyard-bench queue`: the job queue measured in-process, the way
//! BullMQ (crates/bench/bullmq) measures itself, so the two compare at
//! equal concurrency on the same Redis in the same run:
//!
//! - enqueue rate: N noop jobs in batches of 1000, no worker running;
//! - end-to-end: one runner with `concurrency` slots starts and works all N
//!   (done when every job is acked);
//! - pickup latency with an idle runner: one job at a time, from the
//!   enqueue call to the handler starting.
//!
//! Every run uses a key prefix of its own and deletes it afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::{json, Value};
use switchyard::jobs::handlers::{Handlers, JobContext, JobFailure};
use switchyard::jobs::runner::{Runner, RunnerOptions};
use switchyard::jobs::service::Retention;
use switchyard_kit::{Keyspace, NewJob, Queue, RedisConfig, RedisConnection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Redis to run against.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Concurrency levels to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Jobs per end-to-end run.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Sequential single jobs measured for pickup latency.
    #[arg(long, default_value_t = 200)]
    pickup_samples: usize,
    /// Jobs leased ahead per slot (the worker's `JOB_PREFETCH_PER_SLOT`).
    #[arg(long, default_value_t = 4)]
    prefetch_per_slot: usize,
}

fn micros_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
}

fn options(prefetch_per_slot: usize) -> RunnerOptions {
    RunnerOptions {
        lease: Duration::from_secs(30),
        default_timeout: Duration::from_secs(60),
        // Finished jobs expire quickly, as BullMQ's removeOnComplete.
        retention: Retention { succeeded: Duration::from_secs(60), dead: Duration::from_secs(60) },
        shutdown_grace: Duration::from_secs(5),
        prefetch_per_slot,
    }
}

pub async fn run(args: QueueArgs) -> Result<()> {
    let config = RedisConfig::new(&args.redis).context("the Redis URL")?;
    for &concurrency in &args.concurrency {
        let line =
            measure(&config, concurrency.max(1), args.jobs.max(1), args.pickup_samples.max(1), args.prefetch_per_slot)
                .await?;
        println!("{line}");
    }
    Ok(())
}

async fn measure(
    config: &RedisConfig,
    concurrency: usize,
    total: usize,
    samples: usize,
    prefetch_per_slot: usize,
) -> Result<Value> {
    let conn = RedisConnection::connect(config).await.context("connecting to Redis")?;
    let prefix = format!("bench-{:016x}", rand_suffix());
    let keys = Keyspace::new(&prefix)?;
    let queue = Queue::new(conn.clone(), keys.clone(), "bench");

    let started = Instant::now();
    let batch: Vec<NewJob> = (0..1000).map(|_| NewJob::new("noop", "{}")).collect();
    let mut enqueued = 0;
    while enqueued < total {
        let n = (total - enqueued).min(1000);
        queue.enqueue_many(&batch[..n]).await?;
        enqueued += n;
    }
    let enqueue_per_sec = total as f64 / started.elapsed().as_secs_f64();

    let done = Arc::new(AtomicU64::new(0));
    let (pickups_tx, mut pickups) = mpsc::unbounded_channel::<u64>();
    let handlers = {
        let done = done.clone();
        Handlers::default().with("noop", move |_job: JobContext| {
            let done = done.clone();
            async move {
                done.fetch_add(1, Ordering::Relaxed);
                Ok::<_, JobFailure>(Value::Null)
            }
        })
    }
    .with("timed", move |job: JobContext| {
        let pickups_tx = pickups_tx.clone();
        async move {
            let sent = job.payload.get("t").and_then(Value::as_u64).unwrap_or(0);
            let _ = pickups_tx.send(micros_now().saturating_sub(sent));
            Ok::<_, JobFailure>(Value::Null)
        }
    });
    let shutdown = CancellationToken::new();
    let waiter = RedisConnection::connect(config).await?;
    let runner = Runner::new(queue.clone(), Arc::new(handlers), options(prefetch_per_slot));
    let started = Instant::now();
    let task = tokio::spawn(runner.run(waiter, concurrency, shutdown.clone()));
    loop {
        if done.load(Ordering::Relaxed) as usize >= total {
            let o = queue.overview().await?;
            if o.running == 0 && o.queued == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let e2e_per_sec = total as f64 / started.elapsed().as_secs_f64();

    tokio::time::sleep(Duration::from_millis(200)).await; // the runner is idle, blocked waiting
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut job = NewJob::new("timed", "{}");
        job.payload = json!({"t": micros_now()}).to_string();
        queue.enqueue(&job).await?;
        let micros = pickups.recv().await.context("the runner stopped")?;
        latencies.push(micros as f64 / 1000.0);
        while queue.overview().await?.running > 0 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    shutdown.cancel();
    task.await?;
    delete_prefix(&conn, &keys).await?;

    latencies.sort_by(f64::total_cmp);
    let rank = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(json!({
        "system": "switchyard",
        "version": env!("CARGO_PKG_VERSION"),
        "concurrency": concurrency,
        "prefetch_per_slot": prefetch_per_slot,
        "jobs": total,
        "enqueue_per_sec": round(enqueue_per_sec),
        "e2e_per_sec": round(e2e_per_sec),
        "pickup_p50_ms": round(rank(0.50)),
        "pickup_p99_ms": round(rank(0.99)),
        "pickup_max_ms": round(latencies[latencies.len() - 1]),
    }))
}

pub(crate) fn rand_suffix() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
}

async fn delete_prefix(conn: &RedisConnection, keys: &Keyspace) -> Result<()> {
    let mut c = conn.clone();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(keys.pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await?;
        if !found.is_empty() {
            let _: () = redis::cmd("DEL").arg(&found).query_async(&mut c).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
