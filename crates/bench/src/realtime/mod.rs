//! `switchyard-bench realtime`: the WebSocket gateway under many connected
//! clients (issue 16's benchmark).
//!
//! N subscribers (1,000 by default) connect to `/v1/realtime/ws` with one
//! API key, and separate publisher connections send `publish` frames at a
//! paced rate. Two shapes, each run at every target rate (a step):
//!
//! - `fanout`: one `app:` channel every subscriber is on;
//! - `rooms`: many channels of 2–10 subscribers each. They are `app:`
//!   channels ([`group_channel`]), which go through the gateway the same
//!   way as `room:` channels.
//!
//! Per step: deliveries per second received in the measured window,
//! latency from publish to receipt (p50/p99/max; the send time is in the
//! message), and whether every delivery arrived. With `--server-pid`, the
//! server's resident memory (`VmRSS`) before and after the clients connect,
//! per connection.

pub mod chat;
mod clients;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio_util::sync::CancellationToken;

use self::clients::{await_acks, histogram, micros_now, Credential, Plan, Publisher, Shared, Subscriber};
use crate::scenarios::account::Account;
use crate::scenarios::Context;

#[derive(Debug, Args)]
pub struct RealtimeArgs {
    /// Base URL of the service (http only).
    #[arg(long, value_name = "URL", env = "SWITCHYARD_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Subscribing WebSocket clients.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    clients: u64,
    /// Publishing WebSocket connections (besides the subscribers).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    publishers: u64,
    /// Target deliveries per second, comma-separated: one step each, per shape.
    #[arg(long, value_delimiter = ',', default_value = "50000,100000")]
    rates: Vec<u64>,
    /// Shapes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "fanout,rooms")]
    shapes: Vec<Shape>,
    #[command(flatten)]
    timing: Timing,
    /// An API key to connect with (default: sign up a user and create
    /// one). Given one made beforehand, the measured server never hashes a
    /// password: that buffer, freed but kept by the allocator for a while,
    /// would blur the memory per connection.
    #[arg(long, env = "SWITCHYARD_BENCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The server's process id, to report its memory per connection.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Worker threads of the load generator's runtime (default: one per
    /// CPU). Lower it to leave CPUs to a server on the same machine.
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
}

/// How long each step runs.
#[derive(Debug, Clone, Copy, Args)]
pub struct Timing {
    /// Measured time of each step, after its warm-up.
    #[arg(long, default_value = "10s", value_parser = crate::parse_positive_duration)]
    duration: Duration,
    /// Publishing before the measured window of each step.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    warmup: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// One channel fanned out to every subscriber.
    Fanout,
    /// Channels of 2–10 subscribers each.
    Rooms,
    /// Chat rooms of 2–10 members, messages posted over HTTP
    /// (`switchyard-bench chat`).
    #[value(skip)]
    Chat,
}

/// The channel of group `index`. Rooms are `app:` channels (the same
/// fan-out through the gateway as `room:{id}`, which also needs the rooms
/// created with their members, and messages posted over HTTP).
fn group_channel(index: usize) -> String {
    format!("app:bench-{index}")
}

/// Group sizes for `clients` subscribers: all in one, or rooms cycling
/// through 2..=10 members (mean 6), the remainder folded into the first.
fn groups(shape: Shape, clients: usize) -> Vec<usize> {
    if shape == Shape::Fanout {
        return vec![clients];
    }
    let mut sizes = Vec::new();
    let mut left = clients;
    for size in (2..=10).cycle() {
        if left < 2 {
            break;
        }
        let size = size.min(left);
        sizes.push(size);
        left -= size;
    }
    if left > 0 {
        match sizes.first_mut() {
            Some(first) => *first += left,
            None => sizes.push(left),
        }
    }
    sizes
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the server's status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in the server's status")
}

/// Resident memory of a process once it has settled (two readings 500 ms
/// apart within 256 KiB, or 20 s): the allocator returns freed memory (the
/// password hash of the set-up, closed connections) to the system with a
/// delay, and a reading taken before that would hide new allocations.
async fn settled_rss_kib(pid: Option<u32>) -> Result<Option<u64>> {
    let Some(pid) = pid else { return Ok(None) };
    let mut last = rss_kib(pid)?;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) < 256 {
            return Ok(Some(now));
        }
        last = now;
    }
    Ok(Some(last))
}

/// One measured step.
#[derive(Debug)]
struct Step {
    shape: Shape,
    channels: usize,
    target: u64,
    publishes_per_sec: f64,
    deliveries_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    delivered: u64,
    expected: u64,
}

pub async fn run(args: RealtimeArgs) -> Result<()> {
    switchyard::tls::install_tls_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let ctx = Context::new(client, &crate::validate_url(&args.url)?, 1)?;
    let api_key = Credential::ApiKey(match args.api_key.clone() {
        Some(key) => key,
        None => {
            let account = Account::create(&ctx).await.context("signing up the bench user")?;
            account.api_key(&ctx).await.context("creating the bench API key")?
        }
    });
    let clients = usize::try_from(args.clients)?;
    let steps = args.shapes.len() * args.rates.len();
    let shared = Arc::new(Shared::new(steps));

    let before = settled_rss_kib(args.server_pid).await?;
    eprintln!("connecting {clients} subscribers and {} publishers", args.publishers);
    let mut subscribers: Vec<Subscriber> = futures::stream::iter(0..clients)
        .map(|_| Subscriber::connect(&ctx.base_url, &api_key, &shared))
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let mut publishers = Vec::new();
    for _ in 0..args.publishers {
        publishers.push(Publisher::connect(&ctx.base_url, &api_key, &shared).await?);
    }
    let connected = settled_rss_kib(args.server_pid).await?;
    let mut subscribed = None;

    let mut results = Vec::new();
    let mut acks = 0;
    for (shape_index, &shape) in args.shapes.iter().enumerate() {
        let sizes = groups(shape, clients);
        let mut channels = Vec::new();
        let mut members = subscribers.iter_mut();
        for (index, &size) in sizes.iter().enumerate() {
            let channel = group_channel(index);
            for subscriber in members.by_ref().take(size) {
                acks += subscriber.subscribe(&channel).await?;
            }
            channels.push((channel, size as u64));
        }
        await_acks(&shared, acks, Duration::from_secs(60)).await?;
        if subscribed.is_none() {
            subscribed = settled_rss_kib(args.server_pid).await?;
        }
        let channels = Arc::new(channels);
        for (rate_index, &target) in args.rates.iter().enumerate() {
            let step = shape_index * args.rates.len() + rate_index;
            let (result, back) =
                measure(&args, step, shape, target, clients, channels.clone(), publishers, &subscribers, &shared)
                    .await?;
            publishers = back;
            eprintln!("{}", row(&result));
            results.push(result);
        }
    }

    println!("{}", table(&results));
    let closed = shared.closed.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    println!("connections closed by the server: {closed}; error frames: {errors}");
    if let Some(problem) = shared.first_problem.lock().ok().and_then(|p| p.clone()) {
        println!("first problem: {problem}");
    }
    if let (Some(before), Some(connected), Some(subscribed)) = (before, connected, subscribed) {
        let per = |after: u64| after.saturating_sub(before) as f64 / clients as f64;
        println!(
            "server memory (VmRSS): {before} KiB before, {connected} KiB with {clients} idle connections \
             ({:.1} KiB each), {subscribed} KiB once each subscribed to a channel ({:.1} KiB each; goal < 64 KiB)",
            per(connected),
            per(subscribed)
        );
    }
    let best = results.iter().filter(|s| s.p99_ms < 50.0 && s.delivered == s.expected).map(|s| s.deliveries_per_sec);
    let best = best.fold(0.0, f64::max);
    println!("highest deliveries/s with p99 < 50 ms and nothing lost: {best:.0} (goal >= 100000)");
    Ok(())
}

/// Runs one step: publishers at the rate that makes `target` deliveries per
/// second, the window measured, then the stragglers awaited.
#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &RealtimeArgs,
    step: usize,
    shape: Shape,
    target: u64,
    clients: usize,
    channels: Arc<Vec<(String, u64)>>,
    publishers: Vec<Publisher>,
    subscribers: &[Subscriber],
    shared: &Arc<Shared>,
) -> Result<(Step, Vec<Publisher>)> {
    // Every channel is published on equally often: a publish reaches
    // clients / channels subscribers on average.
    let publish_rate = target as f64 * channels.len() as f64 / clients as f64;
    open_window(args.timing, shared, subscribers);
    let stop = CancellationToken::new();
    let count = publishers.len();
    let tasks: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(index, mut publisher)| {
            let plan = Plan {
                step,
                rate: publish_rate / count as f64,
                channels: channels.clone(),
                offset: index,
                stride: count,
            };
            let (shared, stop) = (shared.clone(), stop.clone());
            tokio::spawn(async move { publisher.run(plan, shared, stop).await.map(|()| publisher) })
        })
        .collect();
    tokio::time::sleep(args.timing.warmup + args.timing.duration).await;
    stop.cancel();
    let mut back = Vec::new();
    for task in tasks {
        back.push(task.await.context("a publisher")?.context("publishing")?);
    }
    let result = conclude(args.timing, step, shape, target, channels.len(), subscribers, shared).await?;
    Ok((result, back))
}

/// Starts a step's measured window after its warm-up, with fresh latencies.
fn open_window(timing: Timing, shared: &Shared, subscribers: &[Subscriber]) {
    for subscriber in subscribers {
        if let Ok(mut latencies) = subscriber.latencies.lock() {
            latencies.reset();
        }
    }
    let warmup = u64::try_from(timing.warmup.as_micros()).unwrap_or(u64::MAX);
    let duration = u64::try_from(timing.duration.as_micros()).unwrap_or(u64::MAX);
    let start = micros_now().saturating_add(warmup);
    shared.in_window.store(0, Ordering::Relaxed);
    shared.window_start.store(start, Ordering::Relaxed);
    shared.window_end.store(start.saturating_add(duration), Ordering::Relaxed);
}

/// A step's figures, once its publishing stopped and the stragglers
/// arrived (or nothing more came for 1 s).
async fn conclude(
    timing: Timing,
    step: usize,
    shape: Shape,
    target: u64,
    channels: usize,
    subscribers: &[Subscriber],
    shared: &Shared,
) -> Result<Step> {
    let elapsed = (timing.warmup + timing.duration).as_secs_f64();
    let expected = shared.expected[step].load(Ordering::Relaxed);
    let mut last = u64::MAX;
    for _ in 0..30 {
        let delivered = shared.delivered[step].load(Ordering::Relaxed);
        if delivered >= expected || delivered == last {
            break;
        }
        last = delivered;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut latencies = histogram();
    for subscriber in subscribers {
        if let Ok(histogram) = subscriber.latencies.lock() {
            latencies.add(&*histogram).context("merging latencies")?;
        }
    }
    if latencies.is_empty() {
        bail!("no message was delivered in step {step} (first problem: {:?})", shared.first_problem.lock().ok());
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Ok(Step {
        shape,
        channels,
        target,
        publishes_per_sec: shared.published[step].load(Ordering::Relaxed) as f64 / elapsed,
        deliveries_per_sec: shared.in_window.load(Ordering::Relaxed) as f64 / timing.duration.as_secs_f64(),
        p50_ms: ms(latencies.value_at_quantile(0.50)),
        p99_ms: ms(latencies.value_at_quantile(0.99)),
        max_ms: ms(latencies.max()),
        delivered: shared.delivered[step].load(Ordering::Relaxed),
        expected,
    })
}

fn row(s: &Step) -> String {
    format!(
        "| {:?} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} / {} |",
        s.shape,
        s.channels,
        s.target,
        s.publishes_per_sec,
        s.deliveries_per_sec,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.delivered,
        s.expected
    )
    .to_lowercase()
}

fn table(steps: &[Step]) -> String {
    let mut out = String::from(
        "| shape | channels | target deliveries/s | publishes/s | deliveries/s | p50 ms | p99 ms | max ms | delivered / expected |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for step in steps {
        out.push_str(&row(step));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_hold_two_to_ten_and_everyone_is_placed() {
        for clients in [2, 3, 7, 100, 1000] {
            let sizes = groups(Shape::Rooms, clients);
            assert_eq!(sizes.iter().sum::<usize>(), clients);
            assert!(sizes.iter().all(|&s| s >= 2), "{sizes:?}");
            assert!(sizes.iter().skip(1).all(|&s| s <= 10), "{sizes:?}");
        }
        assert_eq!(groups(Shape::Fanout, 1000), vec![1000]);
        assert!(groups(Shape::Rooms, 1000).first().is_some_and(|&s| s <= 10));
    }
}
