//! `noop`, `sleep` {"ms"} and `flaky` {"fail_times"}: handlers for demos,
//! tests and benchmarks.

use std::time::Duration;

use serde_json::{json, Value};

use super::{whole_number, JobContext, JobFailure};

const MAX_SLEEP_MS: u64 = 600_000;

pub async fn noop(_job: JobContext) -> Result<Value, JobFailure> {
    Ok(Value::Null)
}

pub async fn sleep(job: JobContext) -> Result<Value, JobFailure> {
    let ms = job.payload.get("ms").and_then(whole_number).unwrap_or(0).min(MAX_SLEEP_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({"slept_ms": ms}))
}

/// Fails its first `fail_times` attempts, then succeeds.
pub async fn flaky(job: JobContext) -> Result<Value, JobFailure> {
    let fail_times = job.payload.get("fail_times").and_then(whole_number).unwrap_or(0);
    if u64::from(job.attempt) <= fail_times {
        Err(JobFailure::retry(format!("flaky: failing attempt {} of the first {fail_times}", job.attempt)))
    } else {
        Ok(json!({"succeeded_on_attempt": job.attempt}))
    }
}

fn optional_u64(payload: &Value, field: &'static str, max: u64) -> Option<(&'static str, String)> {
    match payload.get(field) {
        None => None,
        Some(v) if whole_number(v).is_some_and(|n| n <= max) => None,
        Some(_) => Some((field, format!("must be an integer from 0 to {max}"))),
    }
}

/// The schema of an optional whole-number payload field (what
/// `optional_u64` checks).
fn optional_u64_schema(field: &str, max: u64, description: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": "integer", "minimum": 0, "maximum": max, "description": description}}})
}

pub fn sleep_schema() -> Value {
    optional_u64_schema("ms", MAX_SLEEP_MS, "How long to sleep (default 0).")
}

pub fn flaky_schema() -> Value {
    optional_u64_schema("fail_times", 100, "How many first attempts fail (default 0).")
}

pub fn noop_schema() -> Value {
    crate::http::openapi::any_json("Ignored.")
}

pub fn check_sleep(payload: &Value) -> Option<(&'static str, String)> {
    optional_u64(payload, "ms", MAX_SLEEP_MS)
}

pub fn check_flaky(payload: &Value) -> Option<(&'static str, String)> {
    optional_u64(payload, "fail_times", 100)
}
