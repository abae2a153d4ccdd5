//! `switchyard-bench events`: business events end to end against a running
//! server and worker (what `scripts/bench-events` runs). Three phases, in
//! this order, each selectable with `--phases`:
//!
//! - `loadtest`: seed 004's `loadTest.js N DELAY` through the real routes:
//!   N events one after the other with DELAY between them, cycling through
//!   a signup (`user.created` on `sys:users`), a chat message
//!   (`message.sent` on `sys:chat`), a task (`task.created` on `tasks`) and
//!   a system log whose level cycles info, warn, error (`POST /v1/logs`
//!   for info and error; the API has no warn level, so warn is a custom
//!   event, `system.warn` on the same `logs` stream, through
//!   `POST /v1/events`). Reports what loadTest.js reports (events
//!   generated, failures) plus each route's latency, then counts the
//!   events in the event log (`GET /v1/events:processed`) until every one
//!   is there, and how long after the last request that took;
//! - `consume`: consumer-group read + ack over HTTP: streams filled first
//!   (batch publishes, not timed), then consumers read 100 at a time and
//!   ack what they read, until the streams are drained; events/s, and a
//!   check that every event was acked once and nothing is left pending;
//! - `latency`: events published one per request at a paced rate (5,000/s
//!   by default) to a persistent stream, each carrying its send time; once
//!   the worker's `event-log` group has stored them all (counted in the
//!   `events` table), publish → persisted latency is `stored_at` (the
//!   insert's transaction time) minus the send time, same clock.
//!
//! Batch publishing is measured by `switchyard-bench run events_batch`
//! (the ordinary closed-loop engine); the script runs it beside
//! `redis-benchmark`.
//!
//! The run signs in as an admin (`--admin-email`, `--admin-password`):
//! only operators read the operator streams' events in the event log.

mod consume;
mod latency;
mod loadtest;
mod log_count;
mod session;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;

use self::session::Session;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Base URL of the service (http only).
    #[arg(long, value_name = "URL", env = "SWITCHYARD_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin's email (`switchyard admin create-user --role admin`).
    #[arg(long, env = "SWITCHYARD_BENCH_ADMIN_EMAIL")]
    admin_email: String,
    /// That admin's password.
    #[arg(long, env = "SWITCHYARD_BENCH_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
    /// The server's database, where the `latency` phase reads when each
    /// event was stored (`events.stored_at`).
    #[arg(long, value_name = "URL", env = "SWITCHYARD_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Phases to run, comma-separated, in this order.
    #[arg(long, value_delimiter = ',', default_value = "loadtest,consume,latency")]
    phases: Vec<Phase>,
    /// `loadtest`: events to generate (loadTest.js's first argument).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    events: u64,
    /// `loadtest`: pause after each event (loadTest.js's second argument,
    /// in ms there).
    #[arg(long, default_value = "50ms", value_parser = crate::parse_duration)]
    delay: Duration,
    /// `consume`: streams to fill and drain (one group each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100))]
    streams: u64,
    /// `consume`: events per stream (streams keep about 100,000).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(100..=90_000))]
    per_stream: u64,
    /// `consume`: consumers in all, spread over the streams, each on its
    /// own connection.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    consumers: u64,
    /// `latency`: events per second to publish.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
    /// `latency`: how long to publish.
    #[arg(long, default_value = "10s", value_parser = crate::parse_positive_duration)]
    duration: Duration,
    /// `latency`: publishing connections (the rate is shared among them).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    publishers: u64,
    /// How long to wait for events to reach the event log before failing.
    #[arg(long, default_value = "60s", value_parser = crate::parse_positive_duration)]
    settle: Duration,
    /// Worker threads of the load generator's runtime (default: one per
    /// CPU). Lower it to leave CPUs to the server on the same machine.
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Seed 004's loadTest.js through the real routes, verified in the event log.
    Loadtest,
    /// Consumer-group read + ack over HTTP.
    Consume,
    /// Publish -> persisted in the event log, at a paced rate.
    Latency,
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let url = crate::validate_url(&args.url)?;
    let session = Session::sign_in(&url, &args.admin_email, &args.admin_password).await?;
    for phase in &args.phases {
        match phase {
            Phase::Loadtest => loadtest::run(&session, &args).await?,
            Phase::Consume => consume::run(&session, &args).await?,
            Phase::Latency => latency::run(&session, &args).await?,
        }
    }
    Ok(())
}

/// Now, in microseconds since the Unix epoch.
pub fn micros_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A latency histogram in microseconds (1 µs to 10 minutes, 3 digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("1 µs to 10 min at 3 digits is a valid histogram")
}

/// Records `micros` into `h`, clamped into its range.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.max(1));
}

/// `p50 / p99 / max` of a histogram in µs, as milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "- / - / -".to_owned();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    format!("{:.2} / {:.2} / {:.2}", ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()))
}

/// A name unique to this run, so repeated runs against one server do not
/// share streams or groups.
pub fn run_tag() -> String {
    format!("{:x}", micros_now() % 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_read_in_milliseconds() {
        let mut h = histogram();
        for us in [1_000, 2_000, 3_000] {
            record(&mut h, us);
        }
        assert_eq!(percentiles_ms(&h), "2.00 / 3.00 / 3.00");
        assert_eq!(percentiles_ms(&histogram()), "- / - / -");
    }
}
