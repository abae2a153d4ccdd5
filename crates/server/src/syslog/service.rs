//! The system-log service: validation and the append. No HTTP.

use chrono::Utc;
use serde_json::json;
use switchyard_kit::{EventStream, Keyspace, KitError, NewEvent, Quota, RedisConnection};

use crate::domain::PrincipalId;
use crate::validation::{FieldError, Violations};

pub const MAX_MESSAGE: usize = 10_000;
/// Largest `context`, as JSON.
pub const MAX_CONTEXT_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// `info` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Error => "error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SystemLogs {
    redis: RedisConnection,
    keys: Keyspace,
    /// The account stream registry, where the worker's `log-processing`
    /// group finds each account's `logs` stream.
    registry: Quota,
}

/// The account's stream logs go to, as the events API names it.
pub fn stream_of(account: PrincipalId) -> String {
    format!("{account}/logs")
}

impl SystemLogs {
    pub fn new(redis: RedisConnection, keys: Keyspace, registry: Quota) -> Self {
        Self { redis, keys, registry }
    }

    /// Publishes `system.<level>` on the account's stream `logs`; returns
    /// the event id.
    pub async fn publish(
        &self,
        account: PrincipalId,
        author: PrincipalId,
        level: Level,
        message: &str,
        context: Option<&serde_json::Value>,
    ) -> Result<String, LogsError> {
        let mut v = Violations::default();
        if message.is_empty() || message.chars().count() > MAX_MESSAGE {
            v.push(FieldError::new("message", format!("must be 1-{MAX_MESSAGE} characters")));
        }
        if context.is_some_and(|c| c.to_string().len() > MAX_CONTEXT_BYTES) {
            v.push(FieldError::new("context", "must be at most 16 KiB of JSON"));
        }
        if !v.is_empty() {
            return Err(LogsError::Validation(v.into_errors()));
        }
        let data = json!({
            "level": level.as_str(),
            "message": message,
            "context": context,
            "logged_by": author.to_string(),
            "occurred_at": Utc::now(),
        });
        let event = NewEvent::new(&format!("system.{}", level.as_str()), &data.to_string());
        // A stream the server writes for the account: listed, never refused.
        self.registry.admit(&account.to_string(), "logs", u64::MAX).await?;
        let stream = EventStream::new(self.redis.clone(), self.keys.clone(), &stream_of(account));
        Ok(stream.publish(&event).await?)
    }
}
