//! `Chat`: rooms, membership, messages and read positions. PostgreSQL is
//! the record; the room's live channel, presence and the inbox are reached
//! through the [`RoomFeed`] port (the composition root implements it over
//! the real-time gateway and notifications).
//!
//! Invariants:
//! - every room operation answers `NotFound` to a non-member, as if the
//!   room did not exist;
//! - one pair of users has one direct room (a unique index on the ordered
//!   pair decides between concurrent requests);
//! - a message is stored once per (room, sender, `client_msg_id`): a retry
//!   answers the stored one and publishes nothing;
//! - a message is published only after its row is committed; a read
//!   position only moves forward, and only a move is published.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::store::{self, MessageRow, RoomRow, RoomSummary};
use crate::validation::FieldError;

/// The operator stream chat's business events go to.
pub const CHAT_EVENTS: &str = "sys:chat";

/// Members a group room may have, its owner included.
pub const MAX_MEMBERS: usize = 100;
/// Longest message text, in characters.
pub const MAX_TEXT: usize = 4000;
/// Largest history page.
pub const MAX_PAGE: u64 = 100;
/// Rooms `GET /v1/rooms` lists at most (the most recently active).
pub const MAX_ROOMS_LISTED: i64 = 500;
/// Characters of a message shown in an offline member's notification.
const NOTIFICATION_EXCERPT: usize = 140;

/// What chat needs from outside itself; `app::adapters` implements it.
pub trait RoomFeed: Send + Sync + std::fmt::Debug {
    /// Publishes an event on `room:{id}` with history.
    fn publish(&self, room: Uuid, event: &'static str, data: Value) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Whether each user has a live connection now.
    fn online(&self, users: Vec<Uuid>) -> BoxFuture<'_, anyhow::Result<Vec<bool>>>;
    /// Puts a notification in an offline user's inbox (once per
    /// `once_key`), to be delivered on `user:{id}` when they connect.
    fn notify(
        &self,
        user: Uuid,
        once_key: String,
        title: String,
        body: String,
        data: Value,
    ) -> BoxFuture<'_, anyhow::Result<()>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// No such room, or the caller is not a member.
    #[error("no such room")]
    NotFound,
    /// No such member (removing a user who is not one).
    #[error("no such member")]
    NoSuchMember,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> ChatError {
    ChatError::Validation(vec![FieldError::new(field, message)])
}

fn unknown_users(error: sqlx::Error, field: &'static str) -> ChatError {
    match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => invalid(field, "names no existing user"),
        _ => ChatError::Database(error),
    }
}

/// A history page: newest first, and the id to pass as `before` for the
/// next (older) page.
#[derive(Debug, Clone)]
pub struct History {
    pub messages: Vec<MessageRow>,
    pub next_before: Option<Uuid>,
}

/// A member's read position after a receipt.
#[derive(Debug, Clone)]
pub struct ReadState {
    pub last_read_message_id: Option<Uuid>,
    pub unread: i64,
}

/// Who is in which room, for the gateway (subscriptions, presence) and
/// for chat itself. Reads only.
#[derive(Clone, Debug)]
pub struct Membership {
    db: PgPool,
}

impl Membership {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    pub async fn is_member(&self, room: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
        store::is_member(&self.db, room, user).await
    }

    pub async fn rooms_of(&self, user: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
        store::room_ids_of(&self.db, user).await
    }

    pub async fn sharing_a_room(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
        store::sharing_a_room(&self.db, user, others).await
    }
}

/// The chat service. See the module documentation.
#[derive(Debug)]
pub struct Chat {
    db: PgPool,
    feed: Arc<dyn RoomFeed>,
}

pub fn message_json(m: &MessageRow) -> Value {
    json!({"id": m.id, "room_id": m.room_id, "sender_id": m.sender_id, "text": m.text,
           "client_msg_id": m.client_msg_id, "created_at": m.created_at})
}

impl Chat {
    pub fn new(db: PgPool, feed: Arc<dyn RoomFeed>) -> Self {
        Self { db, feed }
    }

    /// The room, or `NotFound` when `user` is not a member.
    async fn member_room(&self, room: Uuid, user: Uuid) -> Result<RoomRow, ChatError> {
        store::room_of_member(&self.db, room, user).await?.ok_or(ChatError::NotFound)
    }

    /// Publishes after a commit: the record stands, a failed publish is
    /// logged (live subscribers miss it; the history route has it).
    async fn publish(&self, room: Uuid, event: &'static str, data: Value) {
        if let Err(error) = self.feed.publish(room, event, data).await {
            tracing::warn!(%error, %room, event, "publishing on a room's channel failed");
        }
    }

    /// A group room owned by `owner`, with `member_ids` (unknown ids are a
    /// validation error naming `member_ids`; duplicates and the owner are
    /// taken once).
    pub async fn create_group(&self, owner: Uuid, name: &str, member_ids: &[Uuid]) -> Result<RoomRow, ChatError> {
        let name = name.trim();
        let mut errors = Vec::new();
        if name.is_empty() || name.chars().count() > 100 || name.contains('\0') {
            errors.push(FieldError::new("name", "must be 1-100 characters, not only spaces, without NUL"));
        }
        let mut members = vec![owner];
        for id in member_ids {
            if !members.contains(id) {
                members.push(*id);
            }
        }
        if members.len() > MAX_MEMBERS {
            errors.push(FieldError::new("member_ids", format!("a room has at most {MAX_MEMBERS} members")));
        }
        if !errors.is_empty() {
            return Err(ChatError::Validation(errors));
        }
        let mut tx = self.db.begin().await?;
        let id =
            store::create_group(&mut tx, owner, name, &members).await.map_err(|e| unknown_users(e, "member_ids"))?;
        tx.commit().await?;
        self.member_room(id, owner).await
    }

    /// The direct room of `me` and `other`, created on first use; true
    /// when this call created it.
    pub async fn direct(&self, me: Uuid, other: Uuid) -> Result<(RoomRow, bool), ChatError> {
        if me == other {
            return Err(invalid("user_id", "must be another user"));
        }
        let (low, high) = if me < other { (me, other) } else { (other, me) };
        let mut tx = self.db.begin().await?;
        let created = store::create_direct(&mut tx, low, high).await.map_err(|e| unknown_users(e, "user_id"))?;
        tx.commit().await?;
        let id = match created {
            Some(id) => id,
            // A concurrent request created it: its commit is what stopped
            // this insert, so it is visible now.
            None => store::find_direct(&self.db, low, high).await?.ok_or(ChatError::NotFound)?,
        };
        Ok((self.member_room(id, me).await?, created.is_some()))
    }

    pub async fn rooms(&self, user: Uuid) -> Result<Vec<RoomSummary>, ChatError> {
        let mut conn = self.db.acquire().await?;
        Ok(store::rooms_of(&mut conn, user, MAX_ROOMS_LISTED).await?)
    }

    /// Adds `user` to a group room (its owner only); true when added,
    /// false when already a member.
    pub async fn add_member(&self, caller: Uuid, room: Uuid, user: Uuid) -> Result<(RoomRow, bool), ChatError> {
        let current = self.member_room(room, caller).await?;
        if current.kind == "direct" {
            return Err(ChatError::Conflict("a direct room's members cannot change"));
        }
        if current.owner_id != Some(caller) {
            return Err(ChatError::Forbidden("only the room's owner adds members"));
        }
        let mut tx = self.db.begin().await?;
        store::lock_room(&mut tx, room).await?;
        if store::member_count(&mut *tx, room).await? >= MAX_MEMBERS as i64 {
            return Err(ChatError::Conflict("the room is full"));
        }
        let added = store::add_member(&mut *tx, room, user).await.map_err(|e| unknown_users(e, "user_id"))?;
        tx.commit().await?;
        if added {
            self.publish(room, "member.joined", json!({"room_id": room, "user_id": user})).await;
        }
        Ok((self.member_room(room, caller).await?, added))
    }

    /// Removes `user` from a group room: the owner removes anyone, a member
    /// themself. An owner who leaves hands the room to the longest-standing
    /// member.
    pub async fn remove_member(&self, caller: Uuid, room: Uuid, user: Uuid) -> Result<(), ChatError> {
        let current = self.member_room(room, caller).await?;
        if current.kind == "direct" {
            return Err(ChatError::Conflict("a direct room's members cannot change"));
        }
        if caller != user && current.owner_id != Some(caller) {
            return Err(ChatError::Forbidden("only the room's owner removes other members"));
        }
        let mut tx = self.db.begin().await?;
        store::lock_room(&mut tx, room).await?;
        if !store::remove_member(&mut tx, room, user).await? {
            return Err(ChatError::NoSuchMember);
        }
        tx.commit().await?;
        self.publish(room, "member.left", json!({"room_id": room, "user_id": user})).await;
        Ok(())
    }

    /// Stores a message and publishes it; true when stored now, false when
    /// `client_msg_id` named one stored before (answered as it was,
    /// nothing published).
    pub async fn send(
        &self,
        sender: Uuid,
        room: Uuid,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> Result<(MessageRow, bool), ChatError> {
        let mut errors = Vec::new();
        let length = text.chars().count();
        // PostgreSQL text cannot hold NUL.
        if length == 0 || length > MAX_TEXT || text.trim().is_empty() || text.contains('\0') {
            errors.push(FieldError::new(
                "text",
                format!("must be 1-{MAX_TEXT} characters, not only spaces, without NUL"),
            ));
        }
        if client_msg_id.is_some_and(|id| id.is_empty() || id.len() > 100 || !id.bytes().all(|b| b.is_ascii_graphic()))
        {
            errors.push(FieldError::new("client_msg_id", "must be 1-100 visible ASCII characters"));
        }
        if !errors.is_empty() {
            return Err(ChatError::Validation(errors));
        }
        let current = self.member_room(room, sender).await?;
        let mut tx = self.db.begin().await?;
        let stored = store::insert_message(&mut tx, room, sender, client_msg_id, text).await?;
        let Some(message) = stored else {
            tx.commit().await?;
            let first = match client_msg_id {
                Some(key) => store::message_by_client_id(&self.db, room, sender, key).await?,
                None => None,
            };
            return first.map(|m| (m, false)).ok_or(ChatError::NotFound);
        };
        // `message.sent` on the operator stream, in the message's own
        // transaction: emitted exactly when the message is stored. The text
        // stays in the room (the event log is not a second copy of chats).
        let event = json!({
            "message_id": message.id,
            "room_id": message.room_id,
            "sender_id": message.sender_id,
            "client_msg_id": message.client_msg_id,
            "length": length,
            "occurred_at": message.created_at,
        });
        crate::outbox::enqueue(&mut tx, CHAT_EVENTS, &room.to_string(), "message.sent", &event).await?;
        tx.commit().await?;
        self.publish(room, "message.created", message_json(&message)).await;
        self.notify_offline(&current, &message).await;
        Ok((message, true))
    }

    /// Inbox notifications for the members (other than the sender) with no
    /// live connection; failures are logged, the message stands.
    async fn notify_offline(&self, room: &RoomRow, message: &MessageRow) {
        let others: Vec<Uuid> = room.member_ids.iter().copied().filter(|u| Some(*u) != message.sender_id).collect();
        if others.is_empty() {
            return;
        }
        let online = match self.feed.online(others.clone()).await {
            Ok(online) => online,
            Err(error) => {
                tracing::warn!(%error, "could not tell which members are online; no notifications");
                return;
            }
        };
        let title = match &room.name {
            Some(name) => format!("New message in {name}"),
            None => "New message".to_owned(),
        };
        let body: String = message.text.chars().take(NOTIFICATION_EXCERPT).collect();
        let data = json!({"room_id": room.id, "message_id": message.id, "sender_id": message.sender_id});
        for (user, online) in others.into_iter().zip(online) {
            if online {
                continue;
            }
            let once_key = format!("chat:{}:{user}", message.id);
            if let Err(error) = self.feed.notify(user, once_key, title.clone(), body.clone(), data.clone()).await {
                tracing::warn!(%error, "could not notify an offline member");
            }
        }
    }

    /// The room's messages, newest first, older than the message `before`.
    pub async fn history(
        &self,
        user: Uuid,
        room: Uuid,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<History, ChatError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        self.member_room(room, user).await?;
        let before_seq = match before {
            Some(id) => Some(
                store::message_seq(&self.db, room, id)
                    .await?
                    .ok_or_else(|| invalid("before", "is not a message of this room"))?,
            ),
            None => None,
        };
        let limit = i64::try_from(limit).unwrap_or(1);
        let mut messages = store::page(&self.db, room, before_seq, limit + 1).await?;
        let next_before = if messages.len() as i64 > limit {
            messages.truncate(messages.len() - 1);
            messages.last().map(|m| m.id)
        } else {
            None
        };
        Ok(History { messages, next_before })
    }

    /// Records that `user` read up to `message` (never moving back), and
    /// publishes the receipt when the position moved.
    pub async fn read(&self, user: Uuid, room: Uuid, message: Uuid) -> Result<ReadState, ChatError> {
        self.member_room(room, user).await?;
        let seq = store::message_seq(&self.db, room, message)
            .await?
            .ok_or_else(|| invalid("message_id", "is not a message of this room"))?;
        if store::advance_read(&self.db, room, user, seq).await? {
            self.publish(room, "read", json!({"room_id": room, "user_id": user, "message_id": message})).await;
        }
        let (last_read_message_id, unread) = store::read_state(&self.db, room, user).await?;
        Ok(ReadState { last_read_message_id, unread })
    }
}
