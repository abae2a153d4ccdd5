//! `/v1/realtime/tickets`, `/v1/realtime/ws` (WebSocket) and
//! `/v1/realtime/sse` (server-sent events).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::channel::{Channel, StreamId};
use super::service::{FeedItem, Realtime, RealtimeError, TICKET_TTL};
use crate::domain::Principal;
use crate::http::auth::Authenticated;
use crate::http::{ApiError, ApiJson, ApiQuery, CurrentUser, FieldError, Problem};

/// Largest frame a client may send.
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// A connection's read buffer. tungstenite zero-fills its whole read buffer
/// (128 KiB by default) on the first read, which would be most of an idle
/// connection's memory; larger frames still arrive, over several reads.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Channels one SSE stream may carry.
const MAX_SSE_CHANNELS: usize = 20;
/// Users one presence query may name.
const MAX_PRESENCE_USERS: usize = 100;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Realtime>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(ticket))
        .routes(routes!(websocket))
        .routes(routes!(sse))
        .routes(routes!(presence))
}

impl From<RealtimeError> for ApiError {
    fn from(error: RealtimeError) -> Self {
        match error {
            RealtimeError::BadTicket => ApiError::Unauthorized("the ticket is unknown, expired or already used".into()),
            RealtimeError::Refused { code: "not_found", message } => ApiError::NotFound(message),
            RealtimeError::Refused { message, .. } => ApiError::Forbidden(message),
            RealtimeError::HistoryGone => ApiError::Conflict(error.to_string()),
            RealtimeError::Redis(e) => e.into(),
            RealtimeError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// The caller, when the authentication layer found one (a ticket may
/// stand in for credentials on the streaming routes).
#[derive(Debug)]
struct MaybePrincipal(Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybePrincipal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybePrincipal(parts.extensions.get::<Authenticated>().and_then(|a| a.0.clone())))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketBody {
    /// Pass as `?ticket=` to `/v1/realtime/ws` or `/v1/realtime/sse`; works once.
    #[schema(example = "rtt_3b5c...")]
    pub ticket: String,
    /// Seconds the ticket stays valid.
    #[schema(example = 30)]
    pub expires_in: u64,
}

/// A single-use ticket, valid for 30 s, standing for the caller on
/// `/v1/realtime/ws` and `/v1/realtime/sse` (browsers cannot set headers on
/// WebSocket or EventSource). Stored hashed; spent on first use.
#[utoipa::path(post, path = "/v1/realtime/tickets", tag = "realtime", security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = TicketBody),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json")))]
async fn ticket(
    State(realtime): State<Arc<Realtime>>,
    principal: Principal,
) -> Result<(StatusCode, ApiJson<TicketBody>), ApiError> {
    let ticket = realtime.issue_ticket(&principal).await?;
    Ok((StatusCode::CREATED, ApiJson(TicketBody { ticket, expires_in: TICKET_TTL.as_secs() })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// A ticket from `POST /v1/realtime/tickets`, instead of credentials.
    #[param(pattern = r"^rtt_[0-9a-f]{64}$")]
    pub ticket: Option<String>,
}

/// Checks a ticket when one is given (spending it), else requires credentials.
async fn resolve(realtime: &Realtime, ticket: Option<&str>, found: MaybePrincipal) -> Result<Principal, ApiError> {
    match (ticket, found.0) {
        (Some(ticket), _) => Ok(realtime.redeem_ticket(ticket).await?),
        (None, Some(principal)) => Ok(principal),
        (None, None) => Err(ApiError::Unauthorized("a valid access token, API key or ticket is required".into())),
    }
}

/// The real-time gateway over a WebSocket. Authenticate with the
/// Authorization header (access token or API key) or `?ticket=`; a bad or
/// used ticket is a 401 before the upgrade.
///
/// Frames are JSON text, each with a `type`.
///
/// Client → server:
/// `{"type":"subscribe","channel":C,"since":ID?}` (with `since`, the
/// messages after that id are replayed first, exactly once and in order,
/// then live ones follow with no gap);
/// `{"type":"unsubscribe","channel":C}`;
/// `{"type":"publish","channel":C,"event":E?,"data":ANY}` (`app:*` only);
/// `{"type":"ping"}`.
///
/// Server → client:
/// `{"type":"subscribed","channel":C}`; `{"type":"unsubscribed","channel":C}`;
/// `{"type":"message","channel":C,"id":ID|null,"event":E,"data":ANY}`;
/// `{"type":"pong"}`; `{"type":"error","code":CODE,"message":TEXT,"channel":C?}`.
///
/// Channels: `user:{id}` (the account's own; notifications arrive here as
/// event `notification`), `app:{name}` (free channels of the caller's
/// account, publish and subscribe), `actions` (the account's actions,
/// read-only), `activity` (live API activity, admins, read-only),
/// `room:{id}` (members). `user:*`, `app:*` and `room:*` keep a bounded
/// history; `id` is a message's position in it. A `since` older than the
/// history answers `error` with code `history_gone`: reload.
///
/// A malformed frame answers `error` (code `bad_frame`) and the connection
/// stays open; more than `RT_MAX_BAD_FRAMES` close it (1008). A reader that
/// falls `RT_OUTBOUND_BUFFER` frames behind is closed with 1008 ("reader
/// too slow"); at shutdown connections are closed with 1001.
#[utoipa::path(get, path = "/v1/realtime/ws", tag = "realtime", security((), ("bearer" = []), ("api_key" = [])),
    params(WsQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "No credentials, or a bad or used ticket", body = Problem, content_type = "application/problem+json")))]
async fn websocket(
    State(realtime): State<Arc<Realtime>>,
    found: MaybePrincipal,
    ApiQuery(query): ApiQuery<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let principal = resolve(&realtime, query.ticket.as_deref(), found).await?;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| super::session::run(socket, realtime, principal)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SseQuery {
    /// Comma-separated channels (1-20), as on the WebSocket.
    #[param(example = "app:chat,actions")]
    pub channels: String,
    /// A ticket from `POST /v1/realtime/tickets`, instead of credentials.
    #[param(pattern = r"^rtt_[0-9a-f]{64}$")]
    pub ticket: Option<String>,
}

/// The same feed as the WebSocket, as server-sent events, read-only: each
/// event is `message` with the message frame as its data and, on channels
/// with history, its id as the event id. A reconnect with `Last-Event-ID`
/// resumes after that id (when the stream has one channel with history).
/// Events: `message`, `error` (a refused channel or `history_gone`; the
/// stream goes on with the others) and `lagged` (the reader fell behind;
/// the stream ends). Comments keep the connection alive every 15 s; the
/// stream ends when the server shuts down.
#[utoipa::path(get, path = "/v1/realtime/sse", tag = "realtime", security((), ("bearer" = []), ("api_key" = [])),
    params(SseQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this message id")),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "No credentials, or a bad or used ticket", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn sse(
    State(realtime): State<Arc<Realtime>>,
    found: MaybePrincipal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SseQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let names: Vec<&str> = query.channels.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    let mut channels = Vec::with_capacity(names.len());
    for name in &names {
        channels.push(Channel::parse(name).map_err(|e| vec![FieldError::new("channels", e.to_string())])?);
    }
    if channels.is_empty() || channels.len() > MAX_SSE_CHANNELS {
        return Err(vec![FieldError::new("channels", "between 1 and 20 channels")].into());
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(StreamId::parse);
    let principal = resolve(&realtime, query.ticket.as_deref(), found).await?;
    let resumable = channels.iter().filter(|c| c.has_history()).count() == 1;
    let mut streams: Vec<BoxStream<'static, Event>> = Vec::new();
    for channel in channels {
        let since = if resumable && channel.has_history() { last_event_id } else { None };
        let name = channel.to_string();
        match realtime.open(&principal, &channel, since).await {
            Ok(feed) => streams.push(
                stream::unfold(Some(feed), |feed| async move {
                    let mut feed = feed?;
                    match feed.next().await? {
                        FeedItem::Frame { json, id } => {
                            let mut event = Event::default().event("message").data(&*json);
                            if let Some(id) = id {
                                event = event.id(id.to_string());
                            }
                            Some((event, Some(feed)))
                        }
                        FeedItem::Lagged(missed) => {
                            Some((Event::default().event("lagged").data(missed.to_string()), None))
                        }
                        FeedItem::Revoked(why) => {
                            let data = serde_json::json!({"type": "error", "code": "not_found", "message": why,
                                "channel": feed.channel()});
                            Some((Event::default().event("error").data(data.to_string()), None))
                        }
                    }
                })
                .boxed(),
            ),
            Err(error @ (RealtimeError::Redis(_) | RealtimeError::Internal(_))) => return Err(error.into()),
            Err(error) => {
                let (code, message) = match &error {
                    RealtimeError::Refused { code, message } => (*code, message.clone()),
                    other => ("history_gone", other.to_string()),
                };
                let data = serde_json::json!({"type": "error", "code": code, "message": message, "channel": name});
                streams
                    .push(stream::once(async move { Event::default().event("error").data(data.to_string()) }).boxed());
            }
        }
    }
    // The stream holds the user's presence for as long as it is open.
    let presence = realtime.connected(&principal).await;
    let events = stream::select_all(streams)
        .map(move |event| {
            let _held = &presence;
            Ok::<_, Infallible>(event)
        })
        .take_until(realtime.closing().clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PresenceQuery {
    /// Comma-separated user ids (1-100).
    #[param(
        example = "0190a0b4-7c1e-7d1a-9c3e-1f2a3b4c5d6e",
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,99}$"
    )]
    pub user_ids: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPresence {
    pub user_id: uuid::Uuid,
    /// At least one of the user's connections (WebSocket or SSE, any
    /// instance) is alive.
    pub online: bool,
    /// The user's last heartbeat or disconnection; null when never seen
    /// (or not in the last 30 days).
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceBody {
    /// The asked users who share a room with the caller (others are left
    /// out), in the order asked.
    pub users: Vec<UserPresence>,
}

/// Whether users are online. Only users who share a room with the caller
/// are answered; the others are left out of `users` (so the answer does
/// not tell whether an id exists). Users' sessions only.
#[utoipa::path(get, path = "/v1/presence", tag = "chat", security(("bearer" = [])), params(PresenceQuery),
    responses((status = 200, body = PresenceBody),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL is unavailable", body = Problem, content_type = "application/problem+json")))]
async fn presence(
    State(realtime): State<Arc<Realtime>>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PresenceQuery>,
) -> Result<ApiJson<PresenceBody>, ApiError> {
    let mut ids = Vec::new();
    for part in query.user_ids.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = uuid::Uuid::parse_str(part)
            .map_err(|_| vec![FieldError::new("user_ids", "must be comma-separated user ids")])?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() || ids.len() > MAX_PRESENCE_USERS {
        return Err(vec![FieldError::new("user_ids", "between 1 and 100 user ids")].into());
    }
    let users = realtime
        .presence_of(user.user_id, ids)
        .await?
        .into_iter()
        .map(|(user_id, seen)| UserPresence {
            user_id,
            online: seen.online,
            last_seen: seen.last_seen_ms.and_then(chrono::DateTime::from_timestamp_millis),
        })
        .collect();
    Ok(ApiJson(PresenceBody { users }))
}
