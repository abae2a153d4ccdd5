//! `notify` {user_id, title, body?, data?}: stores a notification for a
//! user and publishes it on the user's real-time channel
//! (`<prefix>:notify:<user_id>`), where connected clients receive it.
//!
//! Stored under the job's id, so a retried attempt never stores twice; the
//! publish is at-least-once like the job.

use serde_json::{json, Value};
use sqlx::PgPool;
use switchyard_kit::{Keyspace, RedisConnection};
use uuid::Uuid;

use super::{JobContext, JobFailure};
use crate::notifications;

#[derive(Clone, Debug)]
pub struct NotifyHandler {
    db: PgPool,
    redis: RedisConnection,
    keys: Keyspace,
}

impl NotifyHandler {
    pub fn new(db: PgPool, redis: RedisConnection, keys: Keyspace) -> Self {
        Self { db, redis, keys }
    }

    async fn deliver(&self, job: JobContext) -> Result<Value, JobFailure> {
        if let Some((field, message)) = check(&job.payload) {
            return Err(JobFailure::fatal(format!("payload.{field} {message}")));
        }
        let p = &job.payload;
        let user_id = p["user_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).unwrap_or_default();
        let title = p["title"].as_str().unwrap_or_default();
        let body = p.get("body").and_then(Value::as_str).unwrap_or_default();
        let data = p.get("data").cloned().unwrap_or(Value::Null);
        let stored =
            notifications::store::insert_once(&self.db, &job.id, user_id, title, body, &data).await.map_err(|e| {
                match &e {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => JobFailure::fatal("no such user"),
                    _ => JobFailure::retry(format!("storing the notification failed: {e}")),
                }
            })?;
        let (id, created_at) = stored.ok_or_else(|| JobFailure::retry("the notification was not stored"))?;
        let message = json!({"id": id, "title": title, "body": body, "data": data, "created_at": created_at});
        let mut conn = self.redis.clone();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(notifications::service::channel(&self.keys, user_id))
            .arg(message.to_string())
            .query_async(&mut conn)
            .await
            .map_err(|e| JobFailure::retry(format!("publishing failed: {e}")))?;
        Ok(json!({"notification_id": id, "receivers": receivers}))
    }
}

impl super::Handler for NotifyHandler {
    fn run(&self, job: JobContext) -> super::HandlerFuture {
        let this = self.clone();
        Box::pin(async move { this.deliver(job).await })
    }
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
