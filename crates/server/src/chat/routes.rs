//! `/v1/rooms...`: rooms, members, messages and read receipts. Users'
//! sessions only (an API client is a 403); a room the caller is not a
//! member of is a 404 on every route.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{Chat, ChatError, History};
use super::store::{MessageRow, RoomRow, RoomSummary};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, CurrentUser, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Chat>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(direct_room))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(send_message, history))
        .routes(routes!(read))
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::Validation(errors) => errors.into(),
            ChatError::NotFound => ApiError::NotFound("no such room".into()),
            ChatError::NoSuchMember => ApiError::NotFound("no such member of this room".into()),
            ChatError::Forbidden(message) => ApiError::Forbidden(message.into()),
            ChatError::Conflict(message) => ApiError::Conflict(message.into()),
            ChatError::Database(e) => e.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomBody {
    pub id: Uuid,
    /// `group` or `direct`.
    #[schema(example = "group")]
    pub kind: String,
    /// Group rooms' name; null for direct rooms.
    pub name: Option<String>,
    /// Who may add and remove members; null for direct rooms.
    pub owner_id: Option<Uuid>,
    /// Every member, the longest-standing first.
    pub member_ids: Vec<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<RoomRow> for RoomBody {
    fn from(r: RoomRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            name: r.name,
            owner_id: r.owner_id,
            member_ids: r.member_ids,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub id: Uuid,
    pub room_id: Uuid,
    /// Null once the sender's account is deleted.
    pub sender_id: Option<Uuid>,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<MessageRow> for MessageBody {
    fn from(m: MessageRow) -> Self {
        Self {
            id: m.id,
            room_id: m.room_id,
            sender_id: m.sender_id,
            text: m.text,
            client_msg_id: m.client_msg_id,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// 1-100 characters, not only spaces, without NUL.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00]*[^\x00\s][^\x00]*$", example = "Project Falcon")]
    pub name: String,
    /// Existing users to add besides the creator (at most 99 others; an id
    /// of no user is a 422 naming `member_ids`).
    #[schema(max_items = 100)]
    pub member_ids: Vec<Uuid>,
}

/// Create a group room; the caller owns it and is its first member.
#[utoipa::path(post, path = "/v1/rooms", tag = "chat", security(("bearer" = [])), request_body = CreateRoom,
    responses((status = 201, body = RoomBody),
        (status = 403, description = "Not a user's session", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_room(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<(StatusCode, ApiJson<RoomBody>), ApiError> {
    let room = chat.create_group(user.user_id, &body.name, &body.member_ids).await?;
    Ok((StatusCode::CREATED, ApiJson(room.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectRoom {
    /// The other user (an id of no user is a 422).
    pub user_id: Uuid,
}

/// The caller's one-to-one room with another user: created on first use
/// (201); the same pair always gets the same room (200), whoever asks.
#[utoipa::path(post, path = "/v1/rooms/direct", tag = "chat", security(("bearer" = [])), request_body = DirectRoom,
    responses((status = 201, description = "Created now", body = RoomBody),
        (status = 200, description = "The pair's existing room", body = RoomBody),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn direct_room(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<DirectRoom>,
) -> Result<(StatusCode, ApiJson<RoomBody>), ApiError> {
    let (room, created) = chat.direct(user.user_id, body.user_id).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, ApiJson(room.into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomSummaryBody {
    #[serde(flatten)]
    pub room: RoomBody,
    /// Messages of others after the caller's read position.
    pub unread: i64,
    /// Null in a room without messages.
    pub last_message: Option<MessageBody>,
}

impl From<RoomSummary> for RoomSummaryBody {
    fn from(s: RoomSummary) -> Self {
        Self { room: s.room.into(), unread: s.unread, last_message: s.last_message.map(Into::into) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomsBody {
    /// The caller's rooms, the most recently active first (at most 500).
    pub rooms: Vec<RoomSummaryBody>,
}

/// The caller's rooms with their unread counts and last messages.
#[utoipa::path(get, path = "/v1/rooms", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = RoomsBody)))]
async fn list_rooms(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
) -> Result<ApiJson<RoomsBody>, ApiError> {
    let rooms = chat.rooms(user.user_id).await?;
    Ok(ApiJson(RoomsBody { rooms: rooms.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: Uuid,
}

/// Add a member to a group room (its owner only): 201 when added, 200
/// when already a member. Direct rooms' members never change (409); a
/// room has at most 100 members (409 when full).
#[utoipa::path(post, path = "/v1/rooms/{id}/members", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A room of the caller")), request_body = AddMember,
    responses((status = 201, description = "Added", body = RoomBody),
        (status = 200, description = "Already a member", body = RoomBody),
        (status = 403, description = "Not the room's owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A direct room, or a full one", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn add_member(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(StatusCode, ApiJson<RoomBody>), ApiError> {
    let (room, added) = chat.add_member(user.user_id, id, body.user_id).await?;
    Ok((if added { StatusCode::CREATED } else { StatusCode::OK }, ApiJson(room.into())))
}

/// Remove a member from a group room: the owner removes anyone, a member
/// themself (an owner who leaves hands the room to the longest-standing
/// member).
#[utoipa::path(delete, path = "/v1/rooms/{id}/members/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A room of the caller"), ("user_id" = Uuid, Path, description = "A member")),
    responses((status = 204),
        (status = 403, description = "Not the owner, removing another member", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A direct room", body = Problem, content_type = "application/problem+json")))]
async fn remove_member(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, member)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    chat.remove_member(user.user_id, id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// 1-4000 characters, not only spaces, without NUL.
    #[schema(min_length = 1, max_length = 4000, pattern = r"^[^\x00]*[^\x00\s][^\x00]*$", example = "hello")]
    pub text: String,
    /// The sender's retry key (1-100 visible ASCII characters): a retry
    /// with the same one answers the first message.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]{1,100}$")]
    pub client_msg_id: Option<String>,
}

/// Post a message: stored, then published on `room:{id}` as
/// `message.created`; members with no live connection get a notification.
/// A retry with the same `client_msg_id` answers the first message with
/// 200 and publishes nothing.
#[utoipa::path(post, path = "/v1/rooms/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A room of the caller")), request_body = SendMessage,
    responses((status = 201, description = "Stored now", body = MessageBody),
        (status = 200, description = "A retry: the message first stored with this client_msg_id", body = MessageBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn send_message(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<(StatusCode, ApiJson<MessageBody>), ApiError> {
    let (message, created) = chat.send(user.user_id, id, &body.text, body.client_msg_id.as_deref()).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, ApiJson(message.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Messages older than this one (`next_before` of the previous page).
    pub before: Option<Uuid>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryBody {
    /// Newest first.
    pub messages: Vec<MessageBody>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<Uuid>,
}

impl From<History> for HistoryBody {
    fn from(h: History) -> Self {
        Self { messages: h.messages.into_iter().map(Into::into).collect(), next_before: h.next_before }
    }
}

/// The room's messages, newest first, keyset paged.
#[utoipa::path(get, path = "/v1/rooms/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A room of the caller"), HistoryQuery),
    responses((status = 200, body = HistoryBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn history(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<ApiJson<HistoryBody>, ApiError> {
    let page = chat.history(user.user_id, id, query.before, query.limit.unwrap_or(50)).await?;
    Ok(ApiJson(page.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadReceipt {
    /// A message of the room: everything up to it is read.
    pub message_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadBody {
    /// The caller's read position (it never moves back: an older
    /// message_id leaves it where it was).
    pub last_read_message_id: Option<Uuid>,
    /// Messages of others after it.
    pub unread: i64,
}

/// Record a read receipt: published on `room:{id}` as `read` when the
/// position moved; drives the room's unread count.
#[utoipa::path(post, path = "/v1/rooms/{id}/read", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A room of the caller")), request_body = ReadReceipt,
    responses((status = 200, body = ReadBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn read(
    State(chat): State<Arc<Chat>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReadReceipt>,
) -> Result<ApiJson<ReadBody>, ApiError> {
    let state = chat.read(user.user_id, id, body.message_id).await?;
    Ok(ApiJson(ReadBody { last_read_message_id: state.last_read_message_id, unread: state.unread }))
}
