//! `/v1/events:processed` and `/v1/events:stats`: the event log and the
//! built-in groups' progress.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{DayCount, EventLog, EventLogError, GroupState, Processed, ProcessedQuery, Viewer};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiQuery, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<EventLog>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(processed)).routes(routes!(stats))
}

impl From<EventLogError> for ApiError {
    fn from(error: EventLogError) -> Self {
        match error {
            EventLogError::Validation(errors) => errors.into(),
            EventLogError::NoSuchStream => ApiError::NotFound("no such stream".into()),
            EventLogError::Database(e) => e.into(),
            EventLogError::Redis(e) => e.into(),
            EventLogError::Alert(e) => ApiError::Internal(e),
        }
    }
}

fn viewer(principal: &Principal) -> Viewer {
    Viewer { account: principal.account().uuid(), operator: principal.is_operator() }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProcessedParams {
    /// Only this stream: one of the account's (`orders`), or for operators
    /// an operator stream (`sys:users`).
    #[param(pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$")]
    pub stream: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", min_length = 1, max_length = 128)]
    pub kind: Option<String>,
    /// Events that happened at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events that happened before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}-[0-9]{1,18}\.([1-7][0-9a-f]|0[1-9a-f])*$")]
    pub cursor: Option<String>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// An event as the event log stored it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessedBody {
    /// The stream as the caller names it (`orders`, `sys:users`).
    pub stream: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
    /// The producer's idempotency key, where it gave one.
    pub key: Option<String>,
    /// When it was appended to the stream (from its id).
    pub timestamp: DateTime<Utc>,
}

impl From<Processed> for ProcessedBody {
    fn from(p: Processed) -> Self {
        Self { stream: p.stream, id: p.id, kind: p.kind, data: p.data, key: p.key, timestamp: p.occurred_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessedPage {
    /// Newest first.
    pub events: Vec<ProcessedBody>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Events stored in the event log (the operator streams and the streams
/// marked persistent): the account's, and for operators also `sys:*`.
#[utoipa::path(get, path = "/v1/events:processed", tag = "events",
    security(("bearer" = []), ("api_key" = [])), params(ProcessedParams),
    responses((status = 200, body = ProcessedPage),
        (status = 404, description = "An operator stream named by someone else", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn processed(
    State(log): State<Arc<EventLog>>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ProcessedParams>,
) -> Result<ApiJson<ProcessedPage>, ApiError> {
    let query = ProcessedQuery {
        stream: params.stream,
        kind: params.kind,
        from: params.from,
        to: params.to,
        cursor: params.cursor,
        limit: params.limit,
    };
    let (events, next_cursor) = log.processed(viewer(&principal), query).await?;
    Ok(ApiJson(ProcessedPage { events: events.into_iter().map(Into::into).collect(), next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Count events that happened at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Count events that happened before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayCountBody {
    /// The UTC day.
    pub day: NaiveDate,
    pub stream: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub count: i64,
}

impl From<DayCount> for DayCountBody {
    fn from(c: DayCount) -> Self {
        Self { day: c.day, stream: c.stream, kind: c.kind, count: c.count }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupStateBody {
    /// `event-log`, `task-processing` or `log-processing`.
    pub group: String,
    pub stream: String,
    pub consumers: u64,
    /// Delivered and not yet acknowledged.
    pub pending: u64,
    /// Not yet delivered to the group (null when Redis cannot tell).
    pub lag: Option<u64>,
    /// Events of the stream its groups gave up on.
    pub dead_letters: u64,
}

impl From<GroupState> for GroupStateBody {
    fn from(g: GroupState) -> Self {
        Self {
            group: g.group.to_owned(),
            stream: g.stream,
            consumers: g.consumers,
            pending: g.pending,
            lag: g.lag,
            dead_letters: g.dead_letters,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventStatsBody {
    /// Stored events per UTC day, stream and type.
    pub counts: Vec<DayCountBody>,
    /// Every built-in group on every stream it reads.
    pub groups: Vec<GroupStateBody>,
}

/// Event log counts per day, stream and type, and every built-in group's
/// pending count, lag and dead letters: the account's streams, or every
/// stream for operators.
#[utoipa::path(get, path = "/v1/events:stats", tag = "events",
    security(("bearer" = []), ("api_key" = [])), params(StatsParams),
    responses((status = 200, body = EventStatsBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn stats(
    State(log): State<Arc<EventLog>>,
    principal: Principal,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<ApiJson<EventStatsBody>, ApiError> {
    let stats = log.stats(viewer(&principal), params.from, params.to).await?;
    Ok(ApiJson(EventStatsBody {
        counts: stats.counts.into_iter().map(Into::into).collect(),
        groups: stats.groups.into_iter().map(Into::into).collect(),
    }))
}
