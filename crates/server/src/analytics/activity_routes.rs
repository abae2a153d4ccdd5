//! `/v1/activity` (the caller's account's recorded requests, paged) and
//! `/v1/activity/live` (server-sent events as they are recorded).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::{stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::activity::{Activity, ActivityError, ActivityQuery};
use super::live::LiveItem;
use super::ActivityRecord;
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiQuery, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Activity>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(live))
}

impl From<ActivityError> for ApiError {
    fn from(error: ActivityError) -> Self {
        match error {
            ActivityError::Validation(errors) => errors.into(),
            ActivityError::NotFound => ApiError::NotFound("no such API client".into()),
            ActivityError::Database(e) => e.into(),
            ActivityError::Redis(e) => e.into(),
            ActivityError::Clients(e) => ApiError::Internal(e),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// Only requests of this API client (one of the caller's account).
    pub client_id: Option<Uuid>,
    /// Only requests to this route template, e.g. `/v1/leaderboards/{board}`
    /// (`unmatched` for paths no route matched).
    #[param(min_length = 1, max_length = 256)]
    pub route: Option<String>,
    /// Only requests answered with this status.
    #[param(minimum = 100, maximum = 599)]
    pub status: Option<u16>,
    /// From this time on (inclusive): `YYYY-MM-DD` for the start of that
    /// day (UTC), or an RFC 3339 time.
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub from: Option<String>,
    /// Before this time (exclusive): `YYYY-MM-DD` to include that whole day
    /// (UTC), or an RFC 3339 time.
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityList {
    /// Newest first.
    pub activity: Vec<ActivityRecord>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The requests of the caller's account (an admin's: every account's),
/// newest first. Requests are written in batches: the newest few seconds
/// may not be listed yet (see `/v1/activity/live`).
#[utoipa::path(get, path = "/v1/activity", tag = "activity", security(("bearer" = []), ("api_key" = [])),
    params(ActivityParams),
    responses((status = 200, body = ActivityList),
        (status = 404, description = "The API client does not exist or is not one of the caller's account", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list(
    State(activity): State<Arc<Activity>>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ActivityParams>,
) -> Result<ApiJson<ActivityList>, ApiError> {
    let query = ActivityQuery {
        client_id: params.client_id,
        route: params.route,
        status: params.status,
        from: params.from,
        to: params.to,
        cursor: params.cursor,
        limit: params.limit,
    };
    let page = activity.list(&principal, query).await?;
    Ok(ApiJson(ActivityList { activity: page.records, next_cursor: page.next_cursor }))
}

fn entry_event(record: &ActivityRecord) -> Event {
    let json = serde_json::to_string(&record).unwrap_or_default();
    Event::default().event("activity").data(json)
}

/// The caller's account's requests (an admin's: everyone's) as they are
/// recorded, as server-sent events: `activity` (data: the entry as JSON,
/// as in `/v1/activity`), within about a second of each request, and
/// `lagged` (data: how many batches were missed because the client read too
/// slowly). Comments keep the connection alive every 15 s. Delivery is
/// live only: after a reconnect, list `/v1/activity` for what came
/// meanwhile. The stream ends when the server shuts down.
#[utoipa::path(get, path = "/v1/activity/live", tag = "activity", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json")))]
async fn live(State(activity): State<Arc<Activity>>, principal: Principal) -> Result<impl IntoResponse, ApiError> {
    let feed = activity.live(&principal).await?;
    let events = stream::unfold(feed, |mut feed| async move {
        let events: Vec<Event> = match feed.next().await? {
            LiveItem::Records(records) => records.iter().map(entry_event).collect(),
            LiveItem::Lagged(missed) => vec![Event::default().event("lagged").data(missed.to_string())],
        };
        Some((stream::iter(events.into_iter().map(Ok::<_, Infallible>)), feed))
    })
    .flatten()
    .take_until(activity.closing().clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
