//! The schema of an enqueue request, written out because derive macros
//! cannot say what the service enforces: the payload's shape depends on
//! the job's type, and `delay_ms` and `run_at` exclude each other. It is
//! one shape per (type, timing) pair, any of which a request matches.
//!
//! Invariant: every shape accepts only what `Jobs::enqueue` accepts (where
//! a rule cannot be written, such as `max_ms >= base_ms`, the shape is
//! narrower and its description states the full rule).

use serde_json::{json, Value};

use super::handlers::api_payload_schemas;
use super::service::{MAX_BACKOFF_MS, MAX_DELAY_MS, MAX_TIMEOUT_MS};

/// The fields every shape shares.
fn common_fields() -> serde_json::Map<String, Value> {
    let exponential = "Exponential back-off between `base_ms` and `max_ms` (default `base_ms`), with jitter";
    let backoff = json!({
        "description": format!("Between attempts (default exponential from 1 s to 1 h). The service takes any \
            `base_ms` from 1 and `max_ms` from `base_ms`, up to {MAX_BACKOFF_MS} ms (a week)."),
        "anyOf": [
            {"type": "object", "title": "fixed", "required": ["kind", "base_ms"], "additionalProperties": false,
                "properties": {"kind": {"type": "string", "enum": ["fixed"]},
                    "base_ms": {"type": "integer", "minimum": 1, "maximum": MAX_BACKOFF_MS}}},
            {"type": "object", "title": "exponential", "required": ["kind", "base_ms"], "additionalProperties": false,
                "description": exponential,
                "properties": {"kind": {"type": "string", "enum": ["exponential"]},
                    "base_ms": {"type": "integer", "minimum": 1, "maximum": 60_000},
                    "max_ms": {"type": "integer", "minimum": 60_000, "maximum": MAX_BACKOFF_MS}}},
        ],
    });
    let fields = json!({
        "queue": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$", "description": "Default `default`."},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000,
            "description": "Higher first (FIFO within a priority); default 0."},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Default 3."},
        "backoff": backoff,
        "timeout_ms": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT_MS,
            "description": "Hard limit on one attempt's run time (0 or absent: JOB_DEFAULT_TIMEOUT_MS); an attempt \
                running longer fails and is retried."},
        "unique_key": {"type": "string", "minLength": 1, "maxLength": 200,
            "description": "While a job with this key is pending, enqueueing returns its id."},
    });
    match fields {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The two ways to say when a job runs (or neither: now).
fn timings() -> [(&'static str, &'static str, Value); 2] {
    [
        (
            "delay_ms",
            "after a delay",
            json!({"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS,
            "description": "Run this many milliseconds from now (at most a year)."}),
        ),
        (
            "run_at",
            "at a time",
            json!({"type": "string", "format": "date-time",
            "description": "Run at this time (RFC 3339); a past time means now."}),
        ),
    ]
}

/// `POST /v1/jobs`'s body (and each item of `POST /v1/jobs:batch`).
pub fn enqueue_request() -> Value {
    let mut shapes = Vec::new();
    for (kind, payload) in api_payload_schemas() {
        let payload_required = payload.get("required").is_some();
        for (timing, when, timing_schema) in timings() {
            let mut properties = common_fields();
            properties.insert("type".into(), json!({"type": "string", "enum": [kind]}));
            properties.insert("payload".into(), payload.clone());
            properties.insert(timing.into(), timing_schema);
            let required: &[&str] = if payload_required { &["type", "payload"] } else { &["type"] };
            shapes.push(json!({
                "type": "object",
                "title": format!("{kind}, {when}"),
                "required": required,
                "properties": properties,
                "additionalProperties": false,
            }));
        }
    }
    json!({
        "description": "A job: its `type` and the payload that type takes (`noop`; `sleep` {\"ms\"}; `flaky` \
            {\"fail_times\"}; `webhook` {\"url\", \"body\", \"headers\"?, \"timeout_ms\"?}; and, for admins and \
            their API clients, `notify` {\"user_id\", \"title\", \"body\"?, \"data\"?}), and at most one of \
            `delay_ms` and `run_at`.",
        "anyOf": shapes,
        "example": {"type": "webhook", "payload": {"url": "https://example.com/hooks/report", "body": {"report": 42}},
            "delay_ms": 60000, "max_attempts": 5},
    })
}
