//! `/v1/jobs`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handlers::Clearance;
use super::service::{BackoffKind, BackoffSpec, Enqueuer, JobError, JobRecord, JobSpec, JobState, Jobs};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiPath, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Jobs>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(enqueue))
        .routes(routes!(enqueue_batch))
        .routes(routes!(get_job))
        .routes(routes!(cancel))
        .routes(routes!(retry))
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::Validation(errors) => errors.into(),
            JobError::NotFound => ApiError::NotFound("no such job".into()),
            JobError::NoSuchQueue => ApiError::NotFound("no such queue".into()),
            JobError::Forbidden(reason) => ApiError::Forbidden(reason),
            JobError::WrongState(state) => {
                ApiError::Conflict(format!("the job is {}, which does not allow this", state.as_str()))
            }
            JobError::Redis(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffRequest {
    /// `exponential` (with jitter) or `fixed`.
    pub kind: BackoffKind,
    pub base_ms: u64,
    pub max_ms: Option<u64>,
}

/// A job to enqueue; its schema is written out in `request_schema`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    pub queue: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub priority: Option<i32>,
    pub delay_ms: Option<u64>,
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<BackoffRequest>,
    pub timeout_ms: Option<u64>,
    pub unique_key: Option<String>,
}

impl utoipa::PartialSchema for EnqueueRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::http::openapi::schema_from_json(super::request_schema::enqueue_request())
    }
}

impl ToSchema for EnqueueRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enqueued {
    pub id: String,
    pub state: JobState,
}

/// Enqueue a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = EnqueueRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Enqueued), (status = 422, description = "Unknown type or invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn enqueue(
    State(jobs): State<Arc<Jobs>>,
    principal: Principal,
    ApiJson(body): ApiJson<EnqueueRequest>,
) -> Result<(StatusCode, ApiJson<Enqueued>), ApiError> {
    let account = principal.account().to_string();
    let (id, job_state) = jobs.enqueue(enqueuer(&principal, &account), &body.into()).await?;
    Ok((StatusCode::CREATED, ApiJson(Enqueued { id, state: job_state })))
}

/// The caller as the job catalog sees it; `account` is its
/// [`Principal::account`] (jobs belong to the account: a user sees the
/// jobs its API clients enqueued), borrowed from the handler.
fn enqueuer<'a>(principal: &Principal, account: &'a str) -> Enqueuer<'a> {
    let clearance = if principal.is_operator() { Clearance::Operator } else { Clearance::Member };
    Enqueuer { owner: account, clearance }
}

impl From<EnqueueRequest> for JobSpec {
    fn from(body: EnqueueRequest) -> Self {
        Self {
            queue: body.queue,
            kind: body.kind,
            payload: body.payload,
            priority: body.priority,
            delay_ms: body.delay_ms,
            run_at: body.run_at,
            max_attempts: body.max_attempts,
            backoff: body.backoff.map(|b| BackoffSpec {
                kind: b.kind,
                base_ms: b.base_ms,
                max_ms: b.max_ms.unwrap_or(b.base_ms),
            }),
            timeout_ms: body.timeout_ms,
            unique_key: body.unique_key,
            dedupe: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"jobs": [{"type": "noop"}, {"type": "sleep", "payload": {"ms": 250}, "priority": 5}]}))]
pub struct EnqueueBatchRequest {
    /// 1-100 jobs, each as for POST /v1/jobs.
    #[schema(min_items = 1, max_items = 100)]
    pub jobs: Vec<EnqueueRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchEnqueued {
    /// In the order given.
    pub ids: Vec<String>,
}

/// Enqueue up to 100 jobs in one round trip; a bad one enqueues none.
#[utoipa::path(post, path = "/v1/jobs:batch", tag = "jobs", request_body = EnqueueBatchRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = BatchEnqueued), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn enqueue_batch(
    State(jobs): State<Arc<Jobs>>,
    principal: Principal,
    ApiJson(body): ApiJson<EnqueueBatchRequest>,
) -> Result<(StatusCode, ApiJson<BatchEnqueued>), ApiError> {
    let specs: Vec<JobSpec> = body.jobs.into_iter().map(Into::into).collect();
    let account = principal.account().to_string();
    let ids = jobs.enqueue_batch(enqueuer(&principal, &account), &specs).await?;
    Ok((StatusCode::CREATED, ApiJson(BatchEnqueued { ids })))
}

/// A job as callers see it. Times are RFC 3339.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub queue: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// scheduled, queued, running, succeeded, retrying (failed, will run
    /// again after its back-off), dead, cancelled
    pub state: JobState,
    pub priority: i32,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    /// Every failed attempt: [{"attempt", "error", "at"}], `at` in RFC 3339.
    #[schema(value_type = Vec<Object>)]
    pub errors: serde_json::Value,
    /// What the handler returned, once succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub created_at: Option<DateTime<Utc>>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A Unix-milliseconds time as the kit stores it.
fn time_of(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

/// The errors list with each attempt's `at` in RFC 3339.
fn errors_with_times(mut errors: serde_json::Value) -> serde_json::Value {
    if let Some(list) = errors.as_array_mut() {
        for entry in list {
            if let Some(at) = entry.get("at").and_then(serde_json::Value::as_u64).and_then(time_of) {
                entry["at"] = serde_json::Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
        }
    }
    errors
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        Self {
            id: r.id,
            queue: r.queue,
            kind: r.kind,
            state: r.state,
            priority: r.priority,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            last_error: r.last_error,
            errors: errors_with_times(r.errors),
            result: r.result,
            created_at: r.created_at.and_then(time_of),
            scheduled_for: r.scheduled_for.and_then(time_of),
            started_at: r.started_at.and_then(time_of),
            finished_at: r.finished_at.and_then(time_of),
        }
    }
}

/// A job's record: state, attempts, errors, result and timestamps.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = []), ("api_key" = [])), params(("id" = String, Path, description = "The job id `POST /v1/jobs` returned")),
    responses((status = 200, body = JobView), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_job(
    State(jobs): State<Arc<Jobs>>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<JobView>, ApiError> {
    Ok(ApiJson(jobs.get(&principal.account().to_string(), &id).await?.into()))
}

/// Cancel a scheduled or queued job (409 otherwise).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = []), ("api_key" = [])), params(("id" = String, Path, description = "The job id `POST /v1/jobs` returned")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn cancel(
    State(jobs): State<Arc<Jobs>>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    jobs.cancel(&principal.account().to_string(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Put a dead or retry-waiting job back in the queue now (409 otherwise).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", security(("bearer" = []), ("api_key" = [])), params(("id" = String, Path, description = "The job id `POST /v1/jobs` returned")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn retry(
    State(jobs): State<Arc<Jobs>>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    jobs.retry(&principal.account().to_string(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
