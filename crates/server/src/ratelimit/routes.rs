//! `/v1/ratelimit/check`, `/v1/ratelimit/check:batch`, `/v1/ratelimit/status`.

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use switchyard_kit::{Decision, RateLimiter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::check::{self, CheckError, CheckSpec};
use crate::http::{ApiError, ApiJson, Problem};
use crate::identity::CurrentClient;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check_one)).routes(routes!(check_batch)).routes(routes!(status))
}

impl From<CheckError> for ApiError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Validation(errors) => ApiError::Validation(errors),
            CheckError::Redis(e) if e.is_unavailable() => ApiError::Unavailable("Redis is unavailable".into()),
            CheckError::Redis(e) => ApiError::Internal(e.into()),
        }
    }
}

fn limiter(state: &AppState) -> &RateLimiter {
    state.rate_limits.limiter()
}

/// One decision. Parameters by algorithm: `fixed_window`,
/// `sliding_window` (exact) and `sliding_window_approx` take `limit` and
/// `window_ms`; `token_bucket` takes `capacity` and `refill_per_sec`;
/// `gcra` takes `rate` (per second) and `burst`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckRequest {
    /// What is limited, in the caller's own namespace (e.g. `user:42:upload`).
    pub key: String,
    pub algorithm: String,
    pub limit: Option<u64>,
    pub window_ms: Option<u64>,
    pub capacity: Option<u64>,
    pub refill_per_sec: Option<f64>,
    pub rate: Option<f64>,
    pub burst: Option<u64>,
    /// How much this request costs (default 1).
    pub cost: Option<u64>,
}

impl From<CheckRequest> for CheckSpec {
    fn from(r: CheckRequest) -> Self {
        Self {
            key: r.key,
            algorithm: r.algorithm,
            limit: r.limit,
            window_ms: r.window_ms,
            capacity: r.capacity,
            refill_per_sec: r.refill_per_sec,
            rate: r.rate,
            burst: r.burst,
            cost: r.cost,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionBody {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is fully available again.
    pub reset_ms: u64,
    /// When denied: how long until the same request could pass; null when
    /// allowed or when the cost can never fit.
    pub retry_after_ms: Option<u64>,
}

impl From<Decision> for DecisionBody {
    fn from(d: Decision) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            reset_ms: ms(d.reset_after),
            retry_after_ms: d.retry_after.map(ms),
        }
    }
}

/// Decide (and consume, when allowed) one request.
#[utoipa::path(post, path = "/v1/ratelimit/check", tag = "ratelimit", security(("api_key" = [])), request_body = CheckRequest,
    responses((status = 200, body = DecisionBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn check_one(
    State(state): State<AppState>,
    CurrentClient(client): CurrentClient,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<ApiJson<DecisionBody>, ApiError> {
    Ok(ApiJson(check::check(limiter(&state), client.client_id, &body.into()).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// 1-100 checks, decided in one Redis round trip.
    pub checks: Vec<CheckRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One decision per check, in order.
    pub results: Vec<DecisionBody>,
}

/// Decide many requests at once.
#[utoipa::path(post, path = "/v1/ratelimit/check:batch", tag = "ratelimit", security(("api_key" = [])), request_body = BatchRequest,
    responses((status = 200, body = BatchResponse), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn check_batch(
    State(state): State<AppState>,
    CurrentClient(client): CurrentClient,
    ApiJson(body): ApiJson<BatchRequest>,
) -> Result<ApiJson<BatchResponse>, ApiError> {
    let specs: Vec<CheckSpec> = body.checks.into_iter().map(Into::into).collect();
    let decisions = check::check_batch(limiter(&state), client.client_id, &specs).await?;
    Ok(ApiJson(BatchResponse { results: decisions.into_iter().map(Into::into).collect() }))
}

/// The current state of a key without consuming (would a request of `cost`
/// pass now, and what remains).
#[utoipa::path(get, path = "/v1/ratelimit/status", tag = "ratelimit", security(("api_key" = [])), params(CheckRequest),
    responses((status = 200, body = DecisionBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn status(
    State(state): State<AppState>,
    CurrentClient(client): CurrentClient,
    Query(query): Query<CheckRequest>,
) -> Result<ApiJson<DecisionBody>, ApiError> {
    Ok(ApiJson(check::status(limiter(&state), client.client_id, &query.into()).await?.into()))
}
