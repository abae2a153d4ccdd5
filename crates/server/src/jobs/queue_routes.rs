//! `/v1/queues`: operating queues (counts, dead letters, pause). Queues are
//! shared by every tenant (a tenant's jobs carry its id, the queue does
//! not), so these views are for admins; tenants see their own jobs through
//! `/v1/jobs/{id}`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use serde::{Deserialize, Serialize};
use switchyard_kit::QueueOverview;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::routes::JobView;
use super::service::Jobs;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, CurrentAdmin, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Jobs>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_queues))
        .routes(routes!(list_dead, purge_dead))
        .routes(routes!(retry_dead))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// One queue at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    pub name: String,
    pub queued: u64,
    /// Delayed jobs not yet due.
    pub scheduled: u64,
    /// Failed attempts waiting for their back-off.
    pub retrying: u64,
    pub running: u64,
    pub dead: u64,
    pub paused: bool,
    /// Age of the job waiting longest (the queue's lag); null when empty.
    pub oldest_queued_age_ms: Option<u64>,
    pub processed_last_minute: u64,
    pub failed_last_minute: u64,
}

impl QueueView {
    fn new(name: String, o: QueueOverview) -> Self {
        Self {
            name,
            queued: o.queued,
            scheduled: o.scheduled,
            retrying: o.retrying,
            running: o.running,
            dead: o.dead,
            paused: o.paused,
            oldest_queued_age_ms: o.oldest_queued_age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            processed_last_minute: o.processed_last_minute,
            failed_last_minute: o.failed_last_minute,
        }
    }
}

/// Every queue: counts by state, lag, and throughput over the last minute.
#[utoipa::path(get, path = "/v1/queues", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = QueueList), (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json")))]
async fn list_queues(State(jobs): State<Arc<Jobs>>, _admin: CurrentAdmin) -> Result<ApiJson<QueueList>, ApiError> {
    let queues = jobs.queues().await?;
    Ok(ApiJson(QueueList { queues: queues.into_iter().map(|(name, o)| QueueView::new(name, o)).collect() }))
}

/// Every registered queue, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,19}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadPageView {
    /// Oldest death first.
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<String>,
}

/// The queue's dead jobs, with their errors, a page at a time.
#[utoipa::path(get, path = "/v1/queues/{queue}/dead", tag = "jobs", security(("bearer" = [])), params(("queue" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$", description = "A registered queue: 1-64 of [a-z0-9_-]"), DeadQuery),
    responses((status = 200, body = DeadPageView), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn list_dead(
    State(jobs): State<Arc<Jobs>>,
    _admin: CurrentAdmin,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeadQuery>,
) -> Result<ApiJson<DeadPageView>, ApiError> {
    let page = jobs.dead(&queue, query.limit.unwrap_or(50), query.cursor.as_deref()).await?;
    Ok(ApiJson(DeadPageView { jobs: page.jobs.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": ["01934f6e-7d2a-7c1e-9a4b-2f6d8e0c1a3b"]}))]
pub struct RetryDeadRequest {
    /// The dead jobs to requeue (at most 1000); omit to requeue all.
    pub ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Affected {
    pub count: u64,
}

/// Requeue dead jobs (the listed ones, or all) with fresh attempts.
#[utoipa::path(post, path = "/v1/queues/{queue}/dead/retry", tag = "jobs", security(("bearer" = [])), params(("queue" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$", description = "A registered queue: 1-64 of [a-z0-9_-]")),
    request_body(content = Option<RetryDeadRequest>),
    responses((status = 200, body = Affected), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn retry_dead(
    State(jobs): State<Arc<Jobs>>,
    _admin: CurrentAdmin,
    ApiPath(queue): ApiPath<String>,
    body: Option<ApiJson<RetryDeadRequest>>,
) -> Result<ApiJson<Affected>, ApiError> {
    let request = body.map(|ApiJson(b)| b).unwrap_or_default();
    let count = jobs.retry_dead(&queue, request.ids.as_deref()).await?;
    Ok(ApiJson(Affected { count }))
}

/// Delete every dead job of the queue.
#[utoipa::path(delete, path = "/v1/queues/{queue}/dead", tag = "jobs", security(("bearer" = [])), params(("queue" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$", description = "A registered queue: 1-64 of [a-z0-9_-]")),
    responses((status = 200, body = Affected), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn purge_dead(
    State(jobs): State<Arc<Jobs>>,
    _admin: CurrentAdmin,
    ApiPath(queue): ApiPath<String>,
) -> Result<ApiJson<Affected>, ApiError> {
    Ok(ApiJson(Affected { count: jobs.purge_dead(&queue).await? }))
}

/// Stop workers leasing the queue's jobs (enqueueing goes on).
#[utoipa::path(post, path = "/v1/queues/{queue}/pause", tag = "jobs", security(("bearer" = [])), params(("queue" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$", description = "A registered queue: 1-64 of [a-z0-9_-]")),
    responses((status = 200, body = QueueView), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn pause(
    State(jobs): State<Arc<Jobs>>,
    _admin: CurrentAdmin,
    ApiPath(queue): ApiPath<String>,
) -> Result<ApiJson<QueueView>, ApiError> {
    set_paused(&jobs, queue, true).await
}

/// Let workers lease the queue's jobs again.
#[utoipa::path(post, path = "/v1/queues/{queue}/resume", tag = "jobs", security(("bearer" = [])), params(("queue" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$", description = "A registered queue: 1-64 of [a-z0-9_-]")),
    responses((status = 200, body = QueueView), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn resume(
    State(jobs): State<Arc<Jobs>>,
    _admin: CurrentAdmin,
    ApiPath(queue): ApiPath<String>,
) -> Result<ApiJson<QueueView>, ApiError> {
    set_paused(&jobs, queue, false).await
}

async fn set_paused(jobs: &Jobs, queue: String, paused: bool) -> Result<ApiJson<QueueView>, ApiError> {
    let overview = jobs.set_paused(&queue, paused).await?;
    Ok(ApiJson(QueueView::new(queue, overview)))
}
