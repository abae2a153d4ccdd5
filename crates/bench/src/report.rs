//! Turns a run's result into what people and files keep: a table on stdout
//! and, on request, a JSON document with the same numbers plus the machine
//! and time they were taken on, ready to be copied into docs/PERFORMANCE.md.
//!
//! Latencies are kept in microseconds by the engine and shown here in
//! milliseconds with three decimals.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::{RunResult, StopCondition};

/// Latency percentiles of the successful requests, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Fastest request.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// Slowest request.
    pub max: f64,
}

impl LatencySummary {
    /// Reads the percentiles out of a histogram of microseconds; `None` if
    /// it recorded nothing.
    pub fn from_histogram(hist: &Histogram<u64>) -> Option<Self> {
        if hist.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Self {
            min: ms(hist.min()),
            mean: hist.mean() / 1000.0,
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p99: ms(hist.value_at_quantile(0.99)),
            p99_9: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
        })
    }
}

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// Host name, or `unknown`.
    pub hostname: String,
    /// CPUs available to this process (`std::thread::available_parallelism`).
    pub nproc: usize,
    /// Operating system (`linux`, `macos`, ...).
    pub os: String,
    /// Kernel release, where the OS tells it.
    pub os_release: Option<String>,
    /// CPU architecture (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// CPU model name, where the OS tells it.
    pub cpu_model: Option<String>,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn detect() -> Self {
        Self {
            hostname: hostname(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_owned(),
            os_release: read_trimmed("/proc/sys/kernel/osrelease"),
            arch: std::env::consts::ARCH.to_owned(),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| cpu_model(&info)),
        }
    }

    /// One line for tables: `host (2 CPUs, linux 6.1.0 x86_64, AMD EPYC 7B13)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} ({} CPUs, {}", self.hostname, self.nproc, self.os);
        if let Some(release) = &self.os_release {
            let _ = write!(s, " {release}");
        }
        let _ = write!(s, " {}", self.arch);
        if let Some(cpu) = &self.cpu_model {
            let _ = write!(s, ", {cpu}");
        }
        s.push(')');
        s
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The first `model name` of a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned()).filter(|v| !v.is_empty())
    })
}

/// Everything known about one run, as shown in the table and written as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tool name and version.
    pub tool: String,
    /// When the report was made (RFC 3339, UTC).
    pub timestamp: String,
    /// The command line that produced it.
    pub command: String,
    /// Scenario name.
    pub scenario: String,
    /// Base URL of the service.
    pub url: String,
    /// Concurrent workers (and connections).
    pub concurrency: usize,
    /// Measured wall time in seconds (warm-up excluded).
    pub duration_s: f64,
    /// `--duration` asked for, in seconds (absent in `--requests` mode).
    pub planned_duration_s: Option<f64>,
    /// `--requests` asked for (absent in `--duration` mode).
    pub planned_requests: Option<u64>,
    /// Warm-up length in seconds.
    pub warmup_s: f64,
    /// Requests sent during the warm-up (not in any other number).
    pub warmup_requests: u64,
    /// Per-request timeout in seconds.
    pub timeout_s: f64,
    /// Measured requests, successful or not.
    pub requests: u64,
    /// Requests with the expected answer.
    pub successes: u64,
    /// Requests without it: unexpected status or transport error.
    pub errors: u64,
    /// Unexpected statuses by code.
    pub errors_by_status: BTreeMap<u16, u64>,
    /// Transport errors by kind (`connect`, `timeout`, `body`, `other`).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first transport error, verbatim.
    pub first_error: Option<String>,
    /// Measured requests per second, failures included.
    pub throughput_rps: f64,
    /// Successful requests per second.
    pub success_rps: f64,
    /// Latency of the successful requests (absent if there were none).
    pub latency_ms: Option<LatencySummary>,
    /// Whether the run was cut short (Ctrl-C).
    pub interrupted: bool,
    /// Where it ran.
    pub machine: Machine,
}

impl Report {
    /// Builds the report of `result`.
    pub fn new(result: &RunResult, machine: Machine, timestamp: DateTime<Utc>, command: String) -> Self {
        let stats = &result.stats;
        let secs = result.elapsed.as_secs_f64();
        let per_second = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let (planned_duration_s, planned_requests) = match result.config.stop {
            StopCondition::Duration(d) => (Some(d.as_secs_f64()), None),
            StopCondition::Requests(n) => (None, Some(n)),
        };
        Self {
            tool: concat!("switchyard-bench ", env!("CARGO_PKG_VERSION")).to_owned(),
            timestamp: timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            command,
            scenario: result.scenario.to_owned(),
            url: result.config.base_url.clone(),
            concurrency: result.config.concurrency,
            duration_s: secs,
            planned_duration_s,
            planned_requests,
            warmup_s: result.config.warmup.as_secs_f64(),
            warmup_requests: stats.warmup_requests,
            timeout_s: result.config.timeout.as_secs_f64(),
            requests: stats.requests(),
            successes: stats.successes,
            errors: stats.errors(),
            errors_by_status: stats.unexpected_status.clone(),
            errors_by_kind: stats.transport_errors.iter().map(|(kind, n)| (kind.as_str().to_owned(), *n)).collect(),
            first_error: stats.first_error.clone(),
            throughput_rps: per_second(stats.requests()),
            success_rps: per_second(stats.successes),
            latency_ms: LatencySummary::from_histogram(&stats.latency_us),
            interrupted: result.interrupted,
            machine,
        }
    }

    /// Whether no measured request succeeded (the run is then a failure).
    pub fn all_failed(&self) -> bool {
        self.successes == 0
    }

    /// The human-readable table printed on stdout.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |key: &str, value: &str| {
            let _ = writeln!(out, "{key:<14}{value}");
        };
        row("scenario", &self.scenario);
        row("url", &self.url);
        row("concurrency", &self.concurrency.to_string());
        let plan = match (self.planned_duration_s, self.planned_requests) {
            (Some(d), _) => format!("planned {}", human(d)),
            (None, Some(n)) => format!("{n} requests"),
            (None, None) => String::new(),
        };
        let mut duration = format!("{:.2} s ({plan}, warm-up {}", self.duration_s, human(self.warmup_s));
        if self.warmup_requests > 0 {
            let _ = write!(duration, " / {} requests", self.warmup_requests);
        }
        duration.push(')');
        if self.interrupted {
            duration.push_str(" INTERRUPTED");
        }
        row("duration", &duration);
        row("requests", &self.requests.to_string());
        let errors = if self.requests > 0 {
            format!("{} ({:.2}%)", self.errors, self.errors as f64 * 100.0 / self.requests as f64)
        } else {
            self.errors.to_string()
        };
        row("errors", &errors);
        let mut throughput = format!("{:.2} req/s", self.throughput_rps);
        if self.errors > 0 {
            let _ = write!(throughput, " ({:.2} successful/s)", self.success_rps);
        }
        row("throughput", &throughput);
        row("machine", &self.machine.summary());

        let headers = ["min", "mean", "p50", "p90", "p99", "p99.9", "max"];
        let _ = writeln!(out);
        let _ = write!(out, "{:<14}", "latency (ms)");
        for h in headers {
            let _ = write!(out, "{h:>10}");
        }
        let _ = writeln!(out);
        let _ = write!(out, "{:<14}", "");
        match &self.latency_ms {
            Some(l) => {
                for v in [l.min, l.mean, l.p50, l.p90, l.p99, l.p99_9, l.max] {
                    let _ = write!(out, "{:>10}", format!("{v:.3}"));
                }
            }
            None => {
                for _ in headers {
                    let _ = write!(out, "{:>10}", "-");
                }
            }
        }
        let _ = writeln!(out);

        if self.errors > 0 {
            let _ = writeln!(out);
            let _ = writeln!(out, "errors by cause");
            for (status, n) in &self.errors_by_status {
                let _ = writeln!(out, "  {:<12}{n}", format!("status {status}"));
            }
            for (kind, n) in &self.errors_by_kind {
                let _ = writeln!(out, "  {kind:<12}{n}");
            }
            if let Some(first) = &self.first_error {
                let _ = writeln!(out, "  first error: {first}");
            }
        }
        out
    }

    /// The JSON document written by `--json`.
    pub fn to_json(&self) -> Result<String> {
        let mut json = serde_json::to_string_pretty(self).context("serialising the report")?;
        json.push('\n');
        Ok(json)
    }

    /// Writes [`Report::to_json`] to `path`, creating its folder if needed.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, self.to_json()?).with_context(|| format!("writing {}", path.display()))
    }
}

/// Seconds as humantime text (`10s`, `500ms`, `1m 30s`).
fn human(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs_f64(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RunConfig, Stats};
    use crate::scenarios::Outcome;
    use chrono::TimeZone;

    fn histogram_1_to_1000_us() -> Histogram<u64> {
        let mut hist = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000 {
            hist.record(us).unwrap();
        }
        hist
    }

    #[test]
    fn percentiles_are_extracted_in_ms() {
        let summary = LatencySummary::from_histogram(&histogram_1_to_1000_us()).unwrap();
        assert_eq!(summary.min, 0.001);
        assert_eq!(summary.p50, 0.5);
        assert_eq!(summary.p90, 0.9);
        assert_eq!(summary.p99, 0.99);
        assert_eq!(summary.p99_9, 0.999);
        assert_eq!(summary.max, 1.0);
        assert!((summary.mean - 0.5005).abs() < 1e-9);
    }

    #[test]
    fn empty_histogram_has_no_summary() {
        let hist = Histogram::<u64>::new(3).unwrap();
        assert_eq!(LatencySummary::from_histogram(&hist), None);
    }

    fn machine() -> Machine {
        Machine {
            hostname: "bench-host".into(),
            nproc: 2,
            os: "linux".into(),
            os_release: Some("6.1.0".into()),
            arch: "x86_64".into(),
            cpu_model: Some("Test CPU".into()),
        }
    }

    fn result(stats: Stats, stop: StopCondition, elapsed: Duration) -> RunResult {
        RunResult {
            scenario: "health",
            config: RunConfig {
                base_url: "http://127.0.0.1:8080".into(),
                concurrency: 32,
                stop,
                warmup: Duration::from_secs(2),
                timeout: Duration::from_secs(5),
            },
            elapsed,
            stats,
            interrupted: false,
        }
    }

    fn report(result: &RunResult) -> Report {
        let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        Report::new(result, machine(), at, "switchyard-bench run health".into())
    }

    fn stats_1_to_1000_us_ok() -> Stats {
        Stats { latency_us: histogram_1_to_1000_us(), successes: 1000, ..Stats::default() }
    }

    #[test]
    fn table_shows_every_field() {
        let run = result(
            stats_1_to_1000_us_ok(),
            StopCondition::Duration(Duration::from_secs(10)),
            Duration::from_millis(2500),
        );
        let table = report(&run).table();
        let expected = "\
scenario      health
url           http://127.0.0.1:8080
concurrency   32
duration      2.50 s (planned 10s, warm-up 2s)
requests      1000
errors        0 (0.00%)
throughput    400.00 req/s
machine       bench-host (2 CPUs, linux 6.1.0 x86_64, Test CPU)

latency (ms)         min      mean       p50       p90       p99     p99.9       max
                   0.001     0.500     0.500     0.900     0.990     0.999     1.000
";
        assert_eq!(table, expected);
    }

    #[test]
    fn table_breaks_errors_down() {
        let mut stats = stats_1_to_1000_us_ok();
        for _ in 0..3 {
            stats.record(Ok(Outcome::UnexpectedStatus(http::StatusCode::TOO_MANY_REQUESTS)), Duration::from_micros(10));
        }
        stats.record(Err(anyhow::anyhow!("connection reset")), Duration::ZERO);
        let run = result(stats, StopCondition::Requests(1004), Duration::from_secs(1));
        let report = report(&run);
        let table = report.table();
        assert!(table.contains("duration      1.00 s (1004 requests, warm-up 2s)\n"), "{table}");
        assert!(table.contains("errors        4 (0.40%)\n"), "{table}");
        assert!(table.contains("throughput    1004.00 req/s (1000.00 successful/s)\n"), "{table}");
        assert!(table.contains("  status 429  3\n"), "{table}");
        assert!(table.contains("  other       1\n"), "{table}");
        assert!(table.contains("  first error: connection reset\n"), "{table}");
        assert!(!report.all_failed());
    }

    #[test]
    fn table_without_successes_shows_dashes() {
        let mut stats = Stats::default();
        stats.record(Err(anyhow::anyhow!("refused")), Duration::ZERO);
        let run = result(stats, StopCondition::Requests(1), Duration::from_millis(1));
        let report = report(&run);
        assert!(report.all_failed());
        assert!(report.table().contains("         -         -"));
        assert_eq!(report.latency_ms, None);
    }

    #[test]
    fn json_has_the_table_fields_and_machine() {
        let run =
            result(stats_1_to_1000_us_ok(), StopCondition::Duration(Duration::from_secs(10)), Duration::from_secs(2));
        let json: serde_json::Value = serde_json::from_str(&report(&run).to_json().unwrap()).unwrap();
        assert_eq!(json["scenario"], "health");
        assert_eq!(json["url"], "http://127.0.0.1:8080");
        assert_eq!(json["concurrency"], 32);
        assert_eq!(json["duration_s"], 2.0);
        assert_eq!(json["planned_duration_s"], 10.0);
        assert_eq!(json["planned_requests"], serde_json::Value::Null);
        assert_eq!(json["requests"], 1000);
        assert_eq!(json["errors"], 0);
        assert_eq!(json["throughput_rps"], 500.0);
        assert_eq!(json["latency_ms"]["p50"], 0.5);
        assert_eq!(json["latency_ms"]["p99.9"], 0.999);
        assert_eq!(json["timestamp"], "2025-01-02T03:04:05Z");
        assert_eq!(json["command"], "switchyard-bench run health");
        assert_eq!(json["machine"]["hostname"], "bench-host");
        assert_eq!(json["machine"]["nproc"], 2);
        assert_eq!(json["machine"]["os"], "linux");
    }

    #[test]
    fn write_json_creates_the_folder() {
        let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
        let path = dir.join("nested").join("run.json");
        let run = result(stats_1_to_1000_us_ok(), StopCondition::Requests(1000), Duration::from_secs(1));
        report(&run).write_json(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"planned_requests\": 1000"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cpu_model_is_read_from_cpuinfo() {
        let info = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Fancy CPU @ 3GHz\n";
        assert_eq!(cpu_model(info).as_deref(), Some("Fancy CPU @ 3GHz"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn machine_detect_fills_the_basics() {
        let m = Machine::detect();
        assert!(m.nproc >= 1);
        assert!(!m.hostname.is_empty());
        assert_eq!(m.os, std::env::consts::OS);
    }
}
