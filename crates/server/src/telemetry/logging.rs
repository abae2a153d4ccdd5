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
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false)).try_init()
    } else {
        registry.with(fmt::layer().compact()).try_init()
    };
    drop(result);
}
