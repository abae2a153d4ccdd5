//! Rooms, members and messages in PostgreSQL. Functions take an executor
//! so the service decides where a transaction begins and ends.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A room as its members see it.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct RoomRow {
    pub id: Uuid,
    /// `group` or `direct`.
    pub kind: String,
    pub name: Option<String>,
    pub owner_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub member_ids: Vec<Uuid>,
}

/// A stored message.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct MessageRow {
    /// Its place in the room's order (not shown to callers).
    pub seq: i64,
    pub id: Uuid,
    pub room_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub client_msg_id: Option<String>,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// One of a user's rooms with their unread count and its last message.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room: RoomRow,
    pub unread: i64,
    pub last_message: Option<MessageRow>,
}

/// The columns of a [`RoomRow`], from `rooms r` (a macro, so queries stay
/// literal strings).
macro_rules! room_columns {
    () => {
        "r.id, r.kind, r.name, r.owner_id, r.created_at,
         ARRAY(SELECT m.user_id FROM room_members m WHERE m.room_id = r.id ORDER BY m.joined_at, m.user_id) AS member_ids"
    };
}

/// The columns of a [`MessageRow`].
macro_rules! message_columns {
    () => {
        "seq, id, room_id, sender_id, client_msg_id, text, created_at"
    };
}

/// Creates a group room owned by `owner` with `members` (the owner
/// included). A member id of no user fails with a foreign-key violation.
pub async fn create_group(
    tx: &mut PgConnection,
    owner: Uuid,
    name: &str,
    members: &[Uuid],
) -> Result<Uuid, sqlx::Error> {
    let id: Uuid = sqlx::query_scalar("INSERT INTO rooms (kind, name, owner_id) VALUES ('group', $1, $2) RETURNING id")
        .bind(name)
        .bind(owner)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO room_members (room_id, user_id) SELECT $1, u FROM UNNEST($2::uuid[]) AS u")
        .bind(id)
        .bind(members)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

/// Creates the direct room of a pair (`low` < `high`) with both as
/// members; `None` when the pair has one already.
pub async fn create_direct(tx: &mut PgConnection, low: Uuid, high: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO rooms (kind, direct_low, direct_high) VALUES ('direct', $1, $2)
         ON CONFLICT (direct_low, direct_high) WHERE kind = 'direct' DO NOTHING RETURNING id",
    )
    .bind(low)
    .bind(high)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = id {
        sqlx::query("INSERT INTO room_members (room_id, user_id) VALUES ($1, $2), ($1, $3)")
            .bind(id)
            .bind(low)
            .bind(high)
            .execute(&mut *tx)
            .await?;
    }
    Ok(id)
}

pub async fn find_direct(db: impl PgExecutor<'_>, low: Uuid, high: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM rooms WHERE kind = 'direct' AND direct_low = $1 AND direct_high = $2")
        .bind(low)
        .bind(high)
        .fetch_optional(db)
        .await
}

/// The room, when `user` is a member of it.
pub async fn room_of_member(db: impl PgExecutor<'_>, room: Uuid, user: Uuid) -> Result<Option<RoomRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r
         WHERE r.id = $1 AND EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2)"
    ))
    .bind(room)
    .bind(user)
    .fetch_optional(db)
    .await
}

pub async fn is_member(db: impl PgExecutor<'_>, room: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)")
        .bind(room)
        .bind(user)
        .fetch_one(db)
        .await
}

pub async fn room_ids_of(db: impl PgExecutor<'_>, user: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT room_id FROM room_members WHERE user_id = $1").bind(user).fetch_all(db).await
}

/// Those of `others` who share at least one room with `user`.
pub async fn sharing_a_room(db: impl PgExecutor<'_>, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT b.user_id FROM room_members a JOIN room_members b ON b.room_id = a.room_id
         WHERE a.user_id = $1 AND b.user_id = ANY($2)",
    )
    .bind(user)
    .bind(others)
    .fetch_all(db)
    .await
}

/// The user's rooms, the most recently active first, with their unread
/// counts (messages of others after the user's read position) and last
/// messages.
pub async fn rooms_of(db: &mut PgConnection, user: Uuid, limit: i64) -> Result<Vec<RoomSummary>, sqlx::Error> {
    type Row = (Uuid, i64, Option<i64>);
    let order: Vec<Row> = sqlx::query_as(
        "SELECT me.room_id,
                (SELECT count(*) FROM messages x
                 WHERE x.room_id = me.room_id AND x.seq > me.last_read_seq AND x.sender_id IS DISTINCT FROM $1),
                (SELECT max(x.seq) FROM messages x WHERE x.room_id = me.room_id)
         FROM room_members me WHERE me.user_id = $1",
    )
    .bind(user)
    .fetch_all(&mut *db)
    .await?;
    let ids: Vec<Uuid> = order.iter().map(|r| r.0).collect();
    let last_seqs: Vec<i64> = order.iter().filter_map(|r| r.2).collect();
    let rooms: Vec<RoomRow> = sqlx::query_as(concat!("SELECT ", room_columns!(), " FROM rooms r WHERE r.id = ANY($1)"))
        .bind(&ids)
        .fetch_all(&mut *db)
        .await?;
    let lasts: Vec<MessageRow> =
        sqlx::query_as(concat!("SELECT ", message_columns!(), " FROM messages WHERE seq = ANY($1)"))
            .bind(&last_seqs)
            .fetch_all(&mut *db)
            .await?;
    let mut summaries: Vec<RoomSummary> = rooms
        .into_iter()
        .filter_map(|room| {
            let (_, unread, last) = order.iter().find(|r| r.0 == room.id)?;
            let last_message = last.and_then(|seq| lasts.iter().find(|m| m.seq == seq).cloned());
            Some(RoomSummary { room, unread: *unread, last_message })
        })
        .collect();
    let active = |s: &RoomSummary| s.last_message.as_ref().map_or(s.room.created_at, |m| m.created_at);
    summaries.sort_by(|a, b| active(b).cmp(&active(a)).then(b.room.id.cmp(&a.room.id)));
    summaries.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(summaries)
}

/// Adds a member; false when already one. A user id of no user fails with
/// a foreign-key violation.
pub async fn add_member(db: impl PgExecutor<'_>, room: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
    let added = sqlx::query("INSERT INTO room_members (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(room)
        .bind(user)
        .execute(db)
        .await?;
    Ok(added.rows_affected() == 1)
}

pub async fn member_count(db: impl PgExecutor<'_>, room: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM room_members WHERE room_id = $1").bind(room).fetch_one(db).await
}

/// Removes a member; when it was the owner, the longest-standing member
/// left becomes the owner. False when `user` was not a member.
pub async fn remove_member(tx: &mut PgConnection, room: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
        .bind(room)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE rooms SET owner_id = (SELECT user_id FROM room_members WHERE room_id = $1
                                      ORDER BY joined_at, user_id LIMIT 1)
         WHERE id = $1 AND owner_id = $2",
    )
    .bind(room)
    .bind(user)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Locks the room's row for a membership change, so concurrent changes
/// see each other's member counts.
pub async fn lock_room(tx: &mut PgConnection, room: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE").bind(room).execute(&mut *tx).await?;
    Ok(())
}

/// Stores a message; `None` when the sender already stored one with the
/// same `client_msg_id` in this room (the caller reads that one).
pub async fn insert_message(
    tx: &mut PgConnection,
    room: Uuid,
    sender: Uuid,
    client_msg_id: Option<&str>,
    text: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO messages (room_id, sender_id, client_msg_id, text) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING
         RETURNING ",
        message_columns!()
    ))
    .bind(room)
    .bind(sender)
    .bind(client_msg_id)
    .bind(text)
    .fetch_optional(&mut *tx)
    .await
}

pub async fn message_by_client_id(
    db: impl PgExecutor<'_>,
    room: Uuid,
    sender: Uuid,
    client_msg_id: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3"
    ))
    .bind(room)
    .bind(sender)
    .bind(client_msg_id)
    .fetch_optional(db)
    .await
}

/// The `seq` of a message of the room; `None` for any other id.
pub async fn message_seq(db: impl PgExecutor<'_>, room: Uuid, message: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT seq FROM messages WHERE id = $1 AND room_id = $2")
        .bind(message)
        .bind(room)
        .fetch_optional(db)
        .await
}

/// Messages of the room older than `before_seq` (or the newest), newest first.
pub async fn page(
    db: impl PgExecutor<'_>,
    room: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    ))
    .bind(room)
    .bind(before_seq.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Moves the member's read position forward to `seq` (never back); true
/// when it moved.
pub async fn advance_read(db: impl PgExecutor<'_>, room: Uuid, user: Uuid, seq: i64) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE room_members SET last_read_seq = $3 WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3",
    )
    .bind(room)
    .bind(user)
    .bind(seq)
    .execute(db)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// The member's read position (the last read message's id, if any) and
/// unread count.
pub async fn read_state(db: impl PgExecutor<'_>, room: Uuid, user: Uuid) -> Result<(Option<Uuid>, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT x.id FROM messages x WHERE x.seq = me.last_read_seq),
                (SELECT count(*) FROM messages x
                 WHERE x.room_id = me.room_id AND x.seq > me.last_read_seq AND x.sender_id IS DISTINCT FROM $2)
         FROM room_members me WHERE me.room_id = $1 AND me.user_id = $2",
    )
    .bind(room)
    .bind(user)
    .fetch_one(db)
    .await
}
