//! `notify` {user_id, title, body?, data?}: stores a notification for a
//! user and publishes it on the user's real-time channel
//! (`<prefix>:notify:<user_id>`), where connected clients receive it.
//!
//! Stored under the job's id, so a retried attempt never stores twice; the
//! publish is at-least-once like the job.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::{JobContext, JobFailure};

/// One notification to store and publish.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    /// Stored at most once per key (the job's id).
    pub once_key: &'a str,
    pub user_id: Uuid,
    pub title: &'a str,
    pub body: &'a str,
    pub data: &'a Value,
}

/// Where notifications go: the notifications capability, wired in by the
/// composition root. Answers the job's result, or why the attempt failed.
pub trait NotificationSink: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        notification: Notification<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, JobFailure>> + Send + 'a>>;
}

#[derive(Clone)]
pub struct NotifyHandler {
    sink: Arc<dyn NotificationSink>,
}

impl std::fmt::Debug for NotifyHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyHandler").finish_non_exhaustive()
    }
}

impl NotifyHandler {
    pub fn new(sink: Arc<dyn NotificationSink>) -> Self {
        Self { sink }
    }

    async fn deliver(&self, job: JobContext) -> Result<Value, JobFailure> {
        if let Some((field, message)) = check(&job.payload) {
            return Err(JobFailure::fatal(format!("payload.{field} {message}")));
        }
        let p = &job.payload;
        let notification = Notification {
            once_key: &job.id,
            user_id: p["user_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).unwrap_or_default(),
            title: p["title"].as_str().unwrap_or_default(),
            body: p.get("body").and_then(Value::as_str).unwrap_or_default(),
            data: p.get("data").unwrap_or(&Value::Null),
        };
        self.sink.deliver(notification).await
    }
}

impl super::Handler for NotifyHandler {
    fn run(&self, job: JobContext) -> super::HandlerFuture {
        let this = self.clone();
        Box::pin(async move { this.deliver(job).await })
    }
}

/// What [`check`] accepts, as a JSON Schema.
pub fn payload_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "required": ["user_id", "title"],
        "properties": {
            "user_id": {"type": "string", "format": "uuid", "description": "The user to notify."},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string", "maxLength": 4000},
            "data": crate::http::openapi::any_json("Any JSON, stored with the notification."),
        },
    })
}

pub fn check(payload: &Value) -> Option<(&'static str, String)> {
    if payload.get("user_id").and_then(Value::as_str).is_none_or(|s| Uuid::parse_str(s).is_err()) {
        return Some(("user_id", "must be a user's id (UUID)".into()));
    }
    match payload.get("title").and_then(Value::as_str) {
        Some(t) if !t.is_empty() && t.chars().count() <= 200 => {}
        _ => return Some(("title", "must be 1-200 characters".into())),
    }
    if payload.get("body").is_some_and(|b| b.as_str().is_none_or(|s| s.chars().count() > 4000)) {
        return Some(("body", "must be a string of at most 4000 characters".into()));
    }
    None
}
