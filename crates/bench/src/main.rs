//! Command line of `switchyard-bench`, the load generator of switchyard.
//!
//! This file only parses arguments, builds the tokio runtime, hands the run
//! to the engine and prints the report: the load generation lives in
//! `engine`, the output in `report` and the workloads in `scenarios`.

mod connection;
mod engine;
mod events;
mod ingest;
mod queue;
mod realtime;
mod report;
mod scenarios;
#[cfg(test)]
mod test_server;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use crate::engine::{Interrupt, RunConfig, StopCondition};
use crate::report::{Machine, Report};

/// Load generator for the switchyard HTTP service.
///
/// Runs a benchmark scenario closed-loop from many concurrent workers against
/// a running service and reports throughput and latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "switchyard-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the available scenarios with a one-line description each.
    List,
    /// Run one scenario against a running service and print a report.
    ///
    /// Exits with status 1 if no measured request succeeded.
    Run(RunArgs),
    /// Measure the job queue in-process (enqueue rate, end-to-end noop
    /// throughput, pickup latency) against Redis: the peer of
    /// crates/bench/bullmq. Prints one JSON line per concurrency level.
    Queue(queue::QueueArgs),
    /// Measure how fast the activity recorder writes records into
    /// PostgreSQL beside a raw COPY of the same rows (its own database,
    /// created and dropped). Prints markdown tables.
    Ingest(ingest::IngestArgs),
    /// Measure the WebSocket gateway with many connected clients (1,000 by
    /// default): one channel fanned out to all, and many channels of 2–10;
    /// deliveries/s, latency from publish to receipt, server memory per
    /// connection. Prints a markdown table.
    Realtime(realtime::RealtimeArgs),
    /// Measure chat rooms end to end: users in rooms of 2–10 members, each
    /// connected over WebSocket, messages posted over HTTP (stored, then
    /// published); deliveries/s and latency from post to receipt. Prints a
    /// markdown table.
    Chat(realtime::chat::ChatArgs),
    /// Business events end to end against a running server and worker:
    /// seed 004's load test through the real routes (verified in the event
    /// log), consumer-group read + ack over HTTP, and publish -> persisted
    /// latency at a paced rate. Prints markdown tables.
    Events(events::EventsArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenario to run (see `switchyard-bench list`).
    #[arg(value_parser = PossibleValuesParser::new(scenarios::all().iter().map(|e| e.name)))]
    scenario: String,

    /// Base URL of the service (http only).
    #[arg(long, value_name = "URL", env = "SWITCHYARD_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    url: String,

    /// Concurrent workers, each with its own keep-alive connection; each
    /// sends its next request as soon as the previous one completes.
    #[arg(
        short,
        long,
        value_name = "N",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    concurrency: u32,

    /// How long to measure, after the warm-up (e.g. 10s, 500ms, 1m).
    /// Requests still in flight at the end are not recorded.
    /// Defaults to 10s unless --requests is given.
    #[arg(
        short,
        long,
        value_name = "DURATION",
        value_parser = parse_positive_duration,
        conflicts_with = "requests"
    )]
    duration: Option<Duration>,

    /// Measure exactly N requests (shared by all workers) instead of
    /// running for a fixed time.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    requests: Option<u64>,

    /// Warm-up before measuring: requests are sent but not recorded
    /// (connections are opened, caches filled). 0s to skip.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,

    /// Also write the report as JSON to PATH (with machine info and a
    /// timestamp), for docs/PERFORMANCE.md.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Per-request timeout, connecting included; slower requests count as
    /// transport errors.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    timeout: Duration,

    /// Worker threads of the load generator's own runtime (default: one per
    /// CPU). Lower it to leave CPUs to a service on the same machine.
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
}

/// Default measured time when neither --duration nor --requests is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Parses a humantime duration such as `10s`, `500ms`, `1m` or `1m 30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("{e} (expected a duration like 10s, 500ms or 1m)"))
}

/// Like [`parse_duration`], but zero is refused.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be longer than zero".to_owned()),
        d => Ok(d),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(args),
        Command::Queue(args) => in_runtime(None, queue::run(args)),
        Command::Ingest(args) => in_runtime(None, ingest::run(args)),
        Command::Realtime(args) => in_runtime(args.threads, realtime::run(args)),
        Command::Chat(args) => in_runtime(args.threads, realtime::chat::run(args)),
        Command::Events(args) => in_runtime(args.threads, events::run(args)),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// Runs an in-process measurement on a multi-threaded runtime (of
/// `threads` workers, default one per CPU).
fn in_runtime(
    threads: Option<NonZeroUsize>,
    measurement: impl std::future::Future<Output = Result<()>>,
) -> Result<ExitCode> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        runtime.worker_threads(threads.get());
    }
    runtime
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .and_then(|runtime| runtime.block_on(measurement))
        .map(|()| ExitCode::SUCCESS)
}

fn list() {
    let width = scenarios::all().iter().map(|e| e.name.len()).max().unwrap_or(0);
    for entry in scenarios::all() {
        println!("{:<width$}  {}", entry.name, entry.description);
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let url = validate_url(&args.url)?;
    let entry = scenarios::find(&args.scenario).with_context(|| format!("unknown scenario `{}`", args.scenario))?;
    let stop = match (args.requests, args.duration) {
        (Some(n), _) => StopCondition::Requests(n),
        (None, d) => StopCondition::Duration(d.unwrap_or(DEFAULT_DURATION)),
    };
    let config = RunConfig {
        base_url: url,
        concurrency: usize::try_from(args.concurrency).context("concurrency too large")?,
        stop,
        warmup: args.warmup,
        timeout: args.timeout,
    };

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.get());
    }
    let runtime = runtime.build().context("starting the tokio runtime")?;

    let plan = match stop {
        StopCondition::Duration(d) => format!("for {}", humantime::format_duration(d)),
        StopCondition::Requests(n) => format!("for {n} requests"),
    };
    eprintln!(
        "running `{}` against {} with {} workers, {} warm-up, then {plan} (Ctrl-C stops early)",
        entry.name,
        config.base_url,
        config.concurrency,
        humantime::format_duration(config.warmup),
    );

    let result = runtime.block_on(async {
        let interrupt = Interrupt::default();
        tokio::spawn(stop_on_ctrl_c(interrupt.clone()));
        entry.run(config, interrupt).await
    })?;
    // Workers are done; don't wait for idle connections or the Ctrl-C task.
    runtime.shutdown_background();

    let report = Report::new(&result, Machine::detect(), chrono::Utc::now(), command_line());
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    if report.all_failed() {
        eprintln!("error: none of the {} measured requests succeeded", report.requests);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// First Ctrl-C: let workers finish their request and report. Second: quit.
async fn stop_on_ctrl_c(interrupt: Interrupt) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("interrupted: finishing in-flight requests (Ctrl-C again to quit now)");
    interrupt.trigger();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}

/// Checks that `url` is an absolute http URL and returns it without a
/// trailing slash.
fn validate_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid --url `{url}`"))?;
    if parsed.scheme() != "http" {
        bail!("--url must be an http:// URL (this build has no TLS), got `{url}`");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        bail!("--url must be a base URL without query or fragment, got `{url}`");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The command line as typed, with the program path shortened to its name.
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| std::path::Path::new(&p).file_name().map_or(p.clone(), |f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "switchyard-bench".to_owned());
    std::iter::once(program).chain(args.map(|a| shell_quote(&a))).collect::<Vec<_>>().join(" ")
}

/// Quotes `arg` for a POSIX shell if it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_parse_humantime_syntax() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse_run(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["switchyard-bench", "run"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Run(args) => args,
            Command::List
            | Command::Queue(_)
            | Command::Ingest(_)
            | Command::Realtime(_)
            | Command::Chat(_)
            | Command::Events(_) => {
                panic!("expected run")
            }
        }
    }

    #[test]
    fn run_defaults() {
        let args = parse_run(&["health"]);
        assert_eq!(args.scenario, "health");
        assert_eq!(args.concurrency, 32);
        assert_eq!(args.duration, None);
        assert_eq!(args.requests, None);
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert_eq!(args.json, None);
    }

    #[test]
    fn run_flags() {
        let args = parse_run(&[
            "health",
            "--url",
            "http://localhost:9000/",
            "-c",
            "4",
            "--requests",
            "100",
            "--warmup",
            "0s",
            "--timeout",
            "500ms",
            "--json",
            "out.json",
        ]);
        assert_eq!(args.url, "http://localhost:9000/");
        assert_eq!(args.concurrency, 4);
        assert_eq!(args.requests, Some(100));
        assert_eq!(args.warmup, Duration::ZERO);
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
    }

    #[test]
    fn run_refuses_bad_input() {
        let bad: &[&[&str]] = &[
            &["nope"],
            &["health", "--duration", "1s", "--requests", "5"],
            &["health", "--concurrency", "0"],
            &["health", "--requests", "0"],
            &["health", "--duration", "0s"],
            &["health", "--duration", "10"],
        ];
        for args in bad {
            let argv = ["switchyard-bench", "run"].iter().chain(args.iter());
            assert!(Cli::try_parse_from(argv).is_err(), "accepted {args:?}");
        }
    }

    #[test]
    fn urls_are_validated() {
        assert_eq!(validate_url("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(validate_url("http://host/prefix").unwrap(), "http://host/prefix");
        assert!(validate_url("https://host").is_err());
        assert!(validate_url("127.0.0.1:8080").is_err());
        assert!(validate_url("http://host/?a=b").is_err());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("--duration"), "--duration");
        assert_eq!(shell_quote("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(shell_quote("1m 30s"), "'1m 30s'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
