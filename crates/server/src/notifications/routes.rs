//! `/v1/notifications`, `/v1/notifications/live` (server-sent events),
//! `/v1/notifications/{id}/read`, `/v1/notifications:read-all`.

use std::convert::Infallible;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::{stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use switchyard_kit::HubMessage;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{Notifications, NotificationsError};
use super::store::NotificationRow;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, CurrentUser, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Notifications>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(inbox))
        .routes(routes!(live))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

impl From<NotificationsError> for ApiError {
    fn from(error: NotificationsError) -> Self {
        match error {
            NotificationsError::Validation(errors) => errors.into(),
            NotificationsError::NotFound => ApiError::NotFound("no such notification".into()),
            NotificationsError::NoSuchUser => ApiError::NotFound("no such user".into()),
            NotificationsError::Database(e) => e.into(),
            NotificationsError::Redis(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Only notifications not yet read.
    #[serde(default)]
    pub unread: bool,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationBody {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Null while unread.
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<NotificationRow> for NotificationBody {
    fn from(n: NotificationRow) -> Self {
        Self { id: n.id, title: n.title, body: n.body, data: n.data, created_at: n.created_at, read_at: n.read_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxBody {
    /// Newest first.
    pub notifications: Vec<NotificationBody>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// Unread notifications in the whole inbox.
    pub unread: i64,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", security(("bearer" = [])), params(InboxQuery),
    responses((status = 200, body = InboxBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn inbox(
    State(notifications): State<Arc<Notifications>>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<InboxQuery>,
) -> Result<ApiJson<InboxBody>, ApiError> {
    let page =
        notifications.inbox(user.user_id, query.unread, query.cursor.as_deref(), query.limit.unwrap_or(20)).await?;
    Ok(ApiJson(InboxBody {
        notifications: page.notifications.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        unread: page.unread,
    }))
}

/// The caller's notifications as they are stored, as server-sent events:
/// `notification` (data: the notification as JSON: id, title, body, data,
/// created_at) and
/// `lagged` (data: how many were dropped because the client read too
/// slowly: fetch the inbox). Comments keep the connection alive every 15 s.
/// Delivery is live only: after a reconnect, fetch the inbox for what came
/// meanwhile. The stream ends when the server shuts down.
#[utoipa::path(get, path = "/v1/notifications/live", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json")))]
async fn live(
    State(notifications): State<Arc<Notifications>>,
    CurrentUser(user): CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    let subscription = notifications.live(user.user_id).await?;
    let events = stream::unfold(subscription, |mut subscription| async move {
        let event = match subscription.next().await? {
            HubMessage::Message(json) => Event::default().event("notification").data(&*json),
            HubMessage::Lagged(missed) => Event::default().event("lagged").data(missed.to_string()),
        };
        Some((Ok::<_, Infallible>(event), subscription))
    })
    .take_until(notifications.closing().clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Mark one notification read (again: no change).
#[utoipa::path(post, path = "/v1/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The id of one of the caller's notifications")),
    responses((status = 204, description = "Read"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn mark_read(
    State(notifications): State<Arc<Notifications>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    notifications.mark_read(user.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedRead {
    /// How many were unread.
    pub marked: u64,
}

/// Mark every notification read.
#[utoipa::path(post, path = "/v1/notifications:read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = MarkedRead)))]
async fn mark_all_read(
    State(notifications): State<Arc<Notifications>>,
    CurrentUser(user): CurrentUser,
) -> Result<ApiJson<MarkedRead>, ApiError> {
    Ok(ApiJson(MarkedRead { marked: notifications.mark_all_read(user.user_id).await? }))
}
