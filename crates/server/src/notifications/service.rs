//! Listing and marking a user's notifications; cursors are opaque to
//! callers (`<created_at µs>.<id>`) and checked here.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use switchyard_kit::{Keyspace, KitError, PubSubHub, Subscription};
use uuid::Uuid;

use super::store::{self, NotificationRow};
use crate::validation::FieldError;

pub const MAX_PAGE: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
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

#[derive(Clone, Debug)]
pub struct Notifications {
    db: PgPool,
    hub: PubSubHub,
    keys: Keyspace,
}

/// The Redis channel a user's notifications are published on as they are
/// stored.
pub fn channel(keys: &Keyspace, user_id: Uuid) -> String {
    keys.key(&["notify", &user_id.to_string()])
}

fn cursor_of(row: &NotificationRow) -> String {
    format!("{}.{}", row.created_at.timestamp_micros(), row.id.simple())
}

fn parse_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('.')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, Uuid::try_parse(id).ok()?))
}

impl Notifications {
    pub fn new(db: PgPool, hub: PubSubHub, keys: Keyspace) -> Self {
        Self { db, hub, keys }
    }

    /// The user's notifications as they arrive (from when this returns;
    /// earlier ones are in the inbox).
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
        let before = cursor.map(parse_cursor);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let row = NotificationRow {
            id: Uuid::new_v4(),
            title: String::new(),
            body: String::new(),
            data: serde_json::Value::Null,
            created_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            read_at: None,
        };
        assert_eq!(parse_cursor(&cursor_of(&row)), Some((row.created_at, row.id)));
        for foreign in ["", "123", "x.y", "123.not-a-uuid", &row.id.to_string()] {
            assert_eq!(parse_cursor(foreign), None, "{foreign}");
        }
    }
}
