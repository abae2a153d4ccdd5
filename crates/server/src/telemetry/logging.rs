//! Tracing set-up: JSON lines for machines, pretty output in a terminal.
//!
//! Invariant: nothing in switchyard logs a secret. Request logging records
//! method, route, status and latency, never headers or bodies.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls
/// are ignored), which tests rely on.
pub fn init(filter: &str, format: LogFormat) {
    init_writing_to(filter, format, false);
}

/// [`init`], logging to standard error when `stderr` (commands whose
/// standard output is their result, such as `consume`).
pub fn init_writing_to(filter: &str, format: LogFormat, stderr: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto if stderr => !std::io::stderr().is_terminal(),
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    if stderr {
        install(filter, json, std::io::stderr);
    } else {
        install(filter, json, std::io::stdout);
    }
}

fn install<W>(filter: EnvFilter, json: bool, writer: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        let layer = fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false);
        registry.with(layer.with_writer(writer)).try_init()
    } else {
        registry.with(fmt::layer().compact().with_writer(writer)).try_init()
    };
    drop(result);
}
