//! Listing and marking a user's notifications; cursors are opaque to
//! callers ([`PageCursor`] on (created_at, id)) and checked here.

use sqlx::PgPool;
use switchyard_kit::{Keyspace, KitError, PubSubHub, RedisConnection, Subscription};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store::{self, NotificationRow};
use crate::domain::PageCursor;
use crate::validation::FieldError;

pub const MAX_PAGE: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error("no such user")]
    NoSuchUser,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// One page of the inbox.
#[derive(Debug, Clone)]
pub struct Inbox {
    pub notifications: Vec<NotificationRow>,
    /// For the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
    /// Unread notifications in the whole inbox.
    pub unread: i64,
}

/// A notification stored (once) and published.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    pub id: Uuid,
    /// Live connections (of any instance) that received it.
    pub receivers: u64,
}

#[derive(Clone, Debug)]
pub struct Notifications {
    db: PgPool,
    redis: RedisConnection,
    hub: PubSubHub,
    keys: Keyspace,
    /// Cancelled at shutdown: live streams end then.
    closing: CancellationToken,
}

/// The Redis channel a user's notifications are published on as they are
/// stored.
pub fn channel(keys: &Keyspace, user_id: Uuid) -> String {
    keys.key(&["notify", &user_id.to_string()])
}

fn cursor_of(row: &NotificationRow) -> String {
    PageCursor::new(row.created_at, row.id).encode()
}

impl Notifications {
    pub fn new(db: PgPool, redis: RedisConnection, hub: PubSubHub, keys: Keyspace, closing: CancellationToken) -> Self {
        Self { db, redis, hub, keys, closing }
    }

    /// The user's notifications as they arrive (from when this returns;
    /// earlier ones are in the inbox).
    /// Cancelled when the server starts shutting down.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// Stores a notification for `user_id` under `once_key` (a second call
    /// with the same key stores nothing new and answers the same id), then
    /// publishes it on the user's channel. The publish is at least once.
    pub async fn deliver(
        &self,
        once_key: &str,
        user_id: Uuid,
        title: &str,
        body: &str,
        data: &serde_json::Value,
    ) -> Result<Delivered, NotificationsError> {
        let stored =
            store::insert_once(&self.db, once_key, user_id, title, body, data).await.map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => NotificationsError::NoSuchUser,
                _ => NotificationsError::Database(e),
            })?;
        let (id, created_at) = stored.ok_or(NotificationsError::Database(sqlx::Error::RowNotFound))?;
        let message =
            serde_json::json!({"id": id, "title": title, "body": body, "data": data, "created_at": created_at});
        let mut conn = self.redis.clone();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(channel(&self.keys, user_id))
            .arg(message.to_string())
            .query_async(&mut conn)
            .await
            .map_err(KitError::from)?;
        Ok(Delivered { id, receivers })
    }

    pub async fn live(&self, user_id: Uuid) -> Result<Subscription, NotificationsError> {
        Ok(self.hub.subscribe(&channel(&self.keys, user_id)).await?)
    }

    /// The user's notifications, newest first (only unread ones when
    /// asked), `limit` (1-100) per page, after `cursor`.
    pub async fn inbox(
        &self,
        user_id: Uuid,
        unread_only: bool,
        cursor: Option<&str>,
        limit: u64,
    ) -> Result<Inbox, NotificationsError> {
        let mut errors = Vec::new();
        if !(1..=MAX_PAGE).contains(&limit) {
            errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        let before = cursor.map(|c| PageCursor::parse(c).map(|c| (c.at, c.id)));
        if before == Some(None) {
            errors.push(FieldError::new("cursor", "is not a cursor from this API"));
        }
        if !errors.is_empty() {
            return Err(NotificationsError::Validation(errors));
        }
        let limit = i64::try_from(limit).unwrap_or(1);
        let mut rows = store::page(&self.db, user_id, unread_only, before.flatten(), limit + 1).await?;
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(rows.len() - 1);
            rows.last().map(cursor_of)
        } else {
            None
        };
        let unread = store::unread_count(&self.db, user_id).await?;
        Ok(Inbox { notifications: rows, next_cursor, unread })
    }

    pub async fn mark_read(&self, user_id: Uuid, id: Uuid) -> Result<(), NotificationsError> {
        if store::mark_read(&self.db, user_id, id).await? {
            Ok(())
        } else {
            Err(NotificationsError::NotFound)
        }
    }

    /// Marks the whole inbox read; how many were unread.
    pub async fn mark_all_read(&self, user_id: Uuid) -> Result<u64, NotificationsError> {
        Ok(store::mark_all_read(&self.db, user_id).await?)
    }
}
