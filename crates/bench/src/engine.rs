//! The load engine: runs one scenario closed-loop from many workers and
//! collects what happened.
//!
//! `concurrency` tokio tasks (workers) each own one HTTP/1.1 keep-alive
//! [`Connection`] and send the scenario's prebuilt requests on it, the next
//! one as soon as the previous one completes. The run has a warm-up phase
//! (requests sent, nothing recorded) and then a measured phase that ends at
//! a deadline or when a shared atomic counter hands out the last of `N`
//! requests. Every worker owns its own [`Stats`] (HDR histogram of latencies
//! in microseconds plus error counters), so the hot path takes no lock; the
//! per-worker stats are merged once all workers have stopped.
//!
//! The hot path is kept lean because the load generator shares the
//! machine's cores with the server and Redis it measures: whatever CPU it
//! spends per request is taken from them and distorts the figures. So there
//! is no shared client, no pool, no URL parsing, no header parsing and no
//! timer registration per request (see [`crate::connection`] and
//! [`crate::scenarios::PrebuiltRequest`]); only the unmeasured scenario setup
//! uses a general-purpose `reqwest` client.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context as _, Result};
use hdrhistogram::Histogram;
use reqwest::Client;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::connection::{Connection, ConnectionError};
use crate::scenarios::{Context, Outcome, Scenario};

/// Significant figures kept by the latency histograms.
const SIGNIFICANT_FIGURES: u8 = 3;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCondition {
    /// After this much time; requests still in flight at the deadline are
    /// abandoned and not recorded.
    Duration(Duration),
    /// After exactly this many measured requests have completed.
    Requests(u64),
}

/// Everything the engine needs to know about one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Base URL of the service, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Number of concurrent workers (and keep-alive connections).
    pub concurrency: usize,
    /// When the measured phase ends.
    pub stop: StopCondition,
    /// Length of the unrecorded warm-up phase before measuring.
    pub warmup: Duration,
    /// Per-request timeout (connect included).
    pub timeout: Duration,
}

/// A flag that asks the workers to stop after their current request
/// (set on Ctrl-C so a partial run still gets its report).
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Asks every worker to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Interrupt::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Could not connect (refused, unreachable, no connection within
    /// `--timeout`).
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection broke while reading the response body.
    Body,
    /// Any other failure (protocol error, connection closed before the
    /// answer, scenario error).
    Other,
}

impl ErrorKind {
    /// Classifies a failed request.
    pub fn of(error: &anyhow::Error) -> Self {
        match error.chain().find_map(|e| e.downcast_ref::<ConnectionError>()) {
            Some(ConnectionError::Connect { .. } | ConnectionError::ConnectTimeout { .. }) => Self::Connect,
            Some(ConnectionError::Timeout(_)) => Self::Timeout,
            Some(ConnectionError::Body(_)) => Self::Body,
            Some(ConnectionError::Request(_)) | None => Self::Other,
        }
    }

    /// Stable lower-case name, as used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Body => "body",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the measured requests of one worker, or of a whole run, did.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of the successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Requests that got the answer the scenario expects.
    pub successes: u64,
    /// Requests answered with a status the scenario did not expect, by status code.
    pub unexpected_status: BTreeMap<u16, u64>,
    /// Requests that got no answer, by kind of failure.
    pub transport_errors: BTreeMap<ErrorKind, u64>,
    /// The first transport error seen, to tell the user what went wrong.
    pub first_error: Option<String>,
    /// Requests sent during the warm-up (not recorded anywhere else).
    pub warmup_requests: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency_us: Histogram::new(SIGNIFICANT_FIGURES)
                .expect("3 significant figures is a valid histogram precision"),
            successes: 0,
            unexpected_status: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            first_error: None,
            warmup_requests: 0,
        }
    }
}

impl Stats {
    /// Records one measured request that took `latency`.
    pub fn record(&mut self, result: Result<Outcome>, latency: Duration) {
        match result {
            Ok(Outcome::Success) => {
                self.successes += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                // `record` grows the auto-resizing histogram; it only fails
                // for values beyond what any histogram can hold.
                if self.latency_us.record(micros).is_err() {
                    self.latency_us.saturating_record(micros);
                }
            }
            Ok(Outcome::UnexpectedStatus(status)) => {
                *self.unexpected_status.entry(status.as_u16()).or_default() += 1;
            }
            Err(error) => {
                *self.transport_errors.entry(ErrorKind::of(&error)).or_default() += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{error:#}"));
                }
            }
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Self) -> Result<()> {
        self.latency_us.add(&other.latency_us).map_err(|e| anyhow!("merging latency histograms: {e:?}"))?;
        self.successes += other.successes;
        for (status, n) in other.unexpected_status {
            *self.unexpected_status.entry(status).or_default() += n;
        }
        for (kind, n) in other.transport_errors {
            *self.transport_errors.entry(kind).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.warmup_requests += other.warmup_requests;
        Ok(())
    }

    /// Requests answered with an unexpected status.
    pub fn status_errors(&self) -> u64 {
        self.unexpected_status.values().sum()
    }

    /// Requests that got no answer.
    pub fn transport_error_count(&self) -> u64 {
        self.transport_errors.values().sum()
    }

    /// Failed requests of either kind.
    pub fn errors(&self) -> u64 {
        self.status_errors() + self.transport_error_count()
    }

    /// All measured requests, successful or not.
    pub fn requests(&self) -> u64 {
        self.successes + self.errors()
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Name of the scenario that ran.
    pub scenario: &'static str,
    /// The configuration it ran with.
    pub config: RunConfig,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Merged stats of all workers.
    pub stats: Stats,
    /// Whether the run was cut short by an [`Interrupt`].
    pub interrupted: bool,
}

/// State shared by all workers of a run; read-only except for the counter.
#[derive(Debug)]
struct Shared {
    measure_start: Instant,
    deadline: Option<Instant>,
    request_limit: Option<u64>,
    issued: AtomicU64,
    interrupt: Interrupt,
}

/// The general-purpose client of the scenario setup (not measured).
pub fn build_client(config: &RunConfig) -> Result<Client> {
    // reqwest is built without a default TLS provider (see the workspace manifest).
    switchyard::tls::install_tls_provider();
    Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(concat!("switchyard-bench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// Runs scenario `S` as `config` says and returns the merged stats.
///
/// Fails only if the setup fails or the engine itself breaks; request
/// failures are counted in the result.
pub async fn run<S: Scenario>(config: RunConfig, interrupt: Interrupt) -> Result<RunResult> {
    ensure!(config.concurrency > 0, "concurrency must be at least 1");
    let ctx = Context::new(build_client(&config)?, &config.base_url, config.concurrency)?;
    let mut scenario = S::new(&ctx).with_context(|| format!("building scenario `{}`", S::NAME))?;
    scenario.setup(&ctx).await.with_context(|| format!("setup of scenario `{}` failed", S::NAME))?;
    let scenario = Arc::new(scenario);

    let measure_start = Instant::now() + config.warmup;
    let (deadline, request_limit) = match config.stop {
        StopCondition::Duration(d) => (Some(measure_start + d), None),
        StopCondition::Requests(n) => (None, Some(n)),
    };
    let shared = Arc::new(Shared {
        measure_start,
        deadline,
        request_limit,
        issued: AtomicU64::new(0),
        interrupt: interrupt.clone(),
    });

    let mut workers = JoinSet::new();
    for id in 0..config.concurrency {
        let conn = Connection::new(Arc::clone(&ctx.target), config.timeout);
        workers.spawn(worker(id, Arc::clone(&scenario), conn, Arc::clone(&shared)));
    }
    let mut stats = Stats::default();
    while let Some(joined) = workers.join_next().await {
        stats.merge(joined.context("a worker task failed")?)?;
    }
    let elapsed = Instant::now().saturating_duration_since(measure_start);

    Ok(RunResult { scenario: S::NAME, config, elapsed, stats, interrupted: interrupt.is_triggered() })
}

/// One closed-loop worker: warm up, then send measured requests until the
/// deadline, the request budget or an interrupt.
async fn worker<S: Scenario>(id: usize, scenario: Arc<S>, mut conn: Connection, shared: Arc<Shared>) -> Stats {
    let mut stats = Stats::default();
    let mut seq = 0_u64;
    // One timer per worker, registered once, raced against every request.
    let mut deadline = shared.deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));

    loop {
        if shared.interrupt.is_triggered() {
            break;
        }
        let now = Instant::now();
        if now < shared.measure_start {
            let _ = scenario.request(&mut conn, id, seq).await;
            seq += 1;
            stats.warmup_requests += 1;
            continue;
        }
        if shared.deadline.is_some_and(|at| now >= at) {
            break;
        }
        if let Some(limit) = shared.request_limit {
            if shared.issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }

        let started = Instant::now();
        let request = scenario.request(&mut conn, id, seq);
        seq += 1;
        let result = match deadline.as_mut() {
            Some(deadline) => tokio::select! {
                biased;
                result = request => result,
                () = deadline.as_mut() => break,
            },
            None => request.await,
        };
        stats.record(result, started.elapsed());
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::test_server::{self, read_request_head};

    /// What the test server saw.
    #[derive(Debug, Default)]
    struct Seen {
        requests: AtomicU64,
        first_request_line: Mutex<Option<String>>,
    }

    /// [`test_server::serve_connections`] as a base URL.
    async fn serve_connections<F, Fut>(handle: F) -> String
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        format!("http://{}", test_server::serve_connections(handle).await)
    }

    /// A minimal HTTP/1.1 keep-alive server answering every request with
    /// `status_line` and a 2-byte body. Returns its base URL.
    async fn start_server(status_line: &'static str, seen: Arc<Seen>) -> String {
        let response = format!("HTTP/1.1 {status_line}\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok");
        serve_connections(move |mut socket| {
            let seen = Arc::clone(&seen);
            let response = response.clone();
            async move {
                let mut pending = Vec::new();
                while let Some(head) = read_request_head(&mut socket, &mut pending).await {
                    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
                    seen.first_request_line.lock().unwrap().get_or_insert(line);
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await
    }

    /// A server that answers one request per connection with
    /// `connection: close`, then closes it. Counts connections in `seen`.
    async fn start_closing_server(seen: Arc<Seen>) -> String {
        serve_connections(move |mut socket| {
            let seen = Arc::clone(&seen);
            async move {
                if read_request_head(&mut socket, &mut Vec::new()).await.is_none() {
                    return;
                }
                seen.requests.fetch_add(1, Ordering::SeqCst);
                let response = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        })
        .await
    }

    /// A server that accepts connections and reads requests but never
    /// answers (it keeps every connection open until the test ends).
    async fn start_silent_server() -> String {
        serve_connections(|mut socket| async move {
            let mut chunk = [0_u8; 4096];
            while matches!(socket.read(&mut chunk).await, Ok(n) if n > 0) {}
        })
        .await
    }

    fn config(base_url: String, concurrency: usize, stop: StopCondition) -> RunConfig {
        RunConfig { base_url, concurrency, stop, warmup: Duration::ZERO, timeout: Duration::from_secs(5) }
    }

    async fn run_health(config: RunConfig) -> RunResult {
        run::<crate::scenarios::health::Health>(config, Interrupt::default()).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_mode_records_exactly_n() {
        let seen = Arc::new(Seen::default());
        let url = start_server("200 OK", Arc::clone(&seen)).await;
        let result = run_health(config(url, 8, StopCondition::Requests(250))).await;

        let stats = &result.stats;
        assert_eq!(stats.requests(), 250);
        assert_eq!(stats.successes, 250);
        assert_eq!(stats.errors(), 0, "{:?}", stats.first_error);
        assert_eq!(stats.latency_us.len(), 250);
        assert_eq!(stats.warmup_requests, 0);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 250);
        assert_eq!(seen.first_request_line.lock().unwrap().as_deref(), Some("GET /health HTTP/1.1"));
        assert_eq!(result.scenario, "health");
        assert!(!result.interrupted);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warmup_requests_are_not_recorded() {
        let seen = Arc::new(Seen::default());
        let url = start_server("200 OK", Arc::clone(&seen)).await;
        let mut cfg = config(url, 2, StopCondition::Requests(40));
        cfg.warmup = Duration::from_millis(50);
        let result = run_health(cfg).await;

        assert_eq!(result.stats.requests(), 40);
        assert_eq!(result.stats.latency_us.len(), 40);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 40 + result.stats.warmup_requests);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unexpected_status_is_counted_by_code() {
        let seen = Arc::new(Seen::default());
        let url = start_server("503 Service Unavailable", seen).await;
        let result = run_health(config(url, 3, StopCondition::Requests(30))).await;

        let stats = &result.stats;
        assert_eq!(stats.requests(), 30);
        assert_eq!(stats.successes, 0);
        assert_eq!(stats.unexpected_status.get(&503), Some(&30));
        assert_eq!(stats.transport_error_count(), 0);
        assert_eq!(stats.latency_us.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transport_errors_are_counted_not_fatal() {
        // Bind and drop a listener: its port now refuses connections.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let result = run_health(config(format!("http://{addr}"), 2, StopCondition::Requests(10))).await;

        let stats = &result.stats;
        assert_eq!(stats.requests(), 10);
        assert_eq!(stats.successes, 0);
        assert_eq!(stats.transport_errors.get(&ErrorKind::Connect), Some(&10));
        assert!(stats.first_error.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_connections_are_reopened() {
        let seen = Arc::new(Seen::default());
        let url = start_closing_server(Arc::clone(&seen)).await;
        let result = run_health(config(url, 2, StopCondition::Requests(20))).await;

        let stats = &result.stats;
        assert_eq!(stats.successes, 20, "{:?}", stats.first_error);
        assert_eq!(stats.errors(), 0);
        // One connection per request: each was closed by the server.
        assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_server_gives_timeouts() {
        let url = start_silent_server().await;
        let mut cfg = config(url, 2, StopCondition::Requests(4));
        cfg.timeout = Duration::from_millis(200);
        let result = run_health(cfg).await;

        let stats = &result.stats;
        assert_eq!(stats.requests(), 4);
        assert_eq!(stats.successes, 0);
        assert_eq!(stats.transport_errors.get(&ErrorKind::Timeout), Some(&4));
        assert!(stats.first_error.as_deref().is_some_and(|e| e.contains("200ms")), "{:?}", stats.first_error);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn body_cut_short_is_a_body_error() {
        let url = serve_connections(|mut socket| async move {
            let mut chunk = [0_u8; 4096];
            if matches!(socket.read(&mut chunk).await, Ok(n) if n > 0) {
                // Promises 10 bytes, sends 2 and hangs up.
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok").await;
                let _ = socket.shutdown().await;
            }
        })
        .await;
        let result = run_health(config(url, 1, StopCondition::Requests(3))).await;

        let stats = &result.stats;
        assert_eq!(stats.successes, 0);
        assert_eq!(stats.transport_errors.get(&ErrorKind::Body), Some(&3), "{:?}", stats.first_error);
    }

    #[tokio::test]
    async fn connection_error_kinds() {
        use crate::connection::ConnectionError;
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let kind = |e: ConnectionError| ErrorKind::of(&anyhow::Error::from(e).context("scenario"));
        assert_eq!(kind(ConnectionError::Connect { addr: "a:1".into(), source: io() }), ErrorKind::Connect);
        assert_eq!(
            kind(ConnectionError::ConnectTimeout { addr: "a:1".into(), timeout: Duration::from_secs(1) }),
            ErrorKind::Connect
        );
        assert_eq!(kind(ConnectionError::Timeout(Duration::from_secs(1))), ErrorKind::Timeout);
        assert_eq!(ErrorKind::of(&anyhow!("boom")), ErrorKind::Other);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duration_mode_stops_by_itself() {
        let seen = Arc::new(Seen::default());
        let url = start_server("200 OK", seen).await;
        let result = run_health(config(url, 4, StopCondition::Duration(Duration::from_millis(200)))).await;

        let stats = &result.stats;
        assert_eq!(stats.errors(), 0, "{:?}", stats.first_error);
        assert_eq!(stats.latency_us.len(), stats.successes);
    }

    #[tokio::test]
    async fn interrupt_stops_the_run() {
        let seen = Arc::new(Seen::default());
        let url = start_server("200 OK", Arc::clone(&seen)).await;
        let interrupt = Interrupt::default();
        interrupt.trigger();
        let result =
            run::<crate::scenarios::health::Health>(config(url, 2, StopCondition::Requests(1_000_000)), interrupt)
                .await
                .unwrap();
        assert!(result.interrupted);
        assert_eq!(result.stats.requests(), 0);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn stats_merge_adds_everything() {
        let mut a = Stats::default();
        a.record(Ok(Outcome::Success), Duration::from_micros(100));
        a.record(Ok(Outcome::UnexpectedStatus(http::StatusCode::BAD_GATEWAY)), Duration::from_micros(5));
        let mut b = Stats::default();
        b.record(Ok(Outcome::Success), Duration::from_micros(300));
        b.record(Err(anyhow!("boom")), Duration::from_micros(5));
        b.warmup_requests = 7;

        a.merge(b).unwrap();
        assert_eq!(a.successes, 2);
        assert_eq!(a.latency_us.len(), 2);
        assert_eq!(a.unexpected_status.get(&502), Some(&1));
        assert_eq!(a.transport_errors.get(&ErrorKind::Other), Some(&1));
        assert_eq!(a.first_error.as_deref(), Some("boom"));
        assert_eq!(a.requests(), 4);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.warmup_requests, 7);
    }

    #[test]
    fn histogram_grows_for_slow_requests() {
        let mut stats = Stats::default();
        stats.record(Ok(Outcome::Success), Duration::from_secs(60));
        assert_eq!(stats.latency_us.len(), 1);
        assert!(stats.latency_us.max() >= 59_900_000);
    }
}
