//! Built-in job handlers. A handler gets the payload and returns a result
//! (JSON) or an error message; the runner acks or fails the job with it.

use std::time::Duration;

use serde_json::Value;

/// Job types the worker can run; enqueueing any other type is refused.
pub const KNOWN_TYPES: &[&str] = &["noop", "sleep", "flaky"];

/// Runs one attempt of a job.
pub async fn run(kind: &str, payload: &Value, attempt: u32) -> Result<Value, String> {
    match kind {
        "noop" => Ok(Value::Null),
        "sleep" => {
            let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(0).min(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(serde_json::json!({"slept_ms": ms}))
        }
        "flaky" => {
            let fail_times = payload.get("fail_times").and_then(Value::as_u64).unwrap_or(0);
            if u64::from(attempt) <= fail_times {
                Err(format!("flaky: failing attempt {attempt} of the first {fail_times}"))
            } else {
                Ok(serde_json::json!({"succeeded_on_attempt": attempt}))
            }
        }
        other => Err(format!("no handler for job type {other}")),
    }
}
