//! `/v1/ratelimit/check`, `/v1/ratelimit/check:batch`, `/v1/ratelimit/status`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use serde::{Deserialize, Serialize};
use switchyard_kit::Decision;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{CheckError, CheckRequest, CheckService};
use crate::http::{ApiError, ApiJson, ApiQuery, CurrentClient, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<CheckService>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(check_one)).routes(routes!(check_batch)).routes(routes!(status))
}

impl From<CheckError> for ApiError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Validation(errors) => errors.into(),
            CheckError::Redis(e) => e.into(),
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
    State(checks): State<Arc<CheckService>>,
    CurrentClient(client): CurrentClient,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<ApiJson<DecisionBody>, ApiError> {
    Ok(ApiJson(checks.check(client.client_id, &body).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBatchRequest {
    /// 1-100 checks, decided in one Redis round trip.
    pub checks: Vec<CheckRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckBatchResponse {
    /// One decision per check, in order.
    pub results: Vec<DecisionBody>,
}

/// Decide many requests at once.
#[utoipa::path(post, path = "/v1/ratelimit/check:batch", tag = "ratelimit", security(("api_key" = [])), request_body = CheckBatchRequest,
    responses((status = 200, body = CheckBatchResponse), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn check_batch(
    State(checks): State<Arc<CheckService>>,
    CurrentClient(client): CurrentClient,
    ApiJson(body): ApiJson<CheckBatchRequest>,
) -> Result<ApiJson<CheckBatchResponse>, ApiError> {
    let decisions = checks.check_batch(client.client_id, &body.checks).await?;
    Ok(ApiJson(CheckBatchResponse { results: decisions.into_iter().map(Into::into).collect() }))
}

/// The current state of a key without consuming (would a request of `cost`
/// pass now, and what remains).
#[utoipa::path(get, path = "/v1/ratelimit/status", tag = "ratelimit", security(("api_key" = [])), params(CheckRequest),
    responses((status = 200, body = DecisionBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn status(
    State(checks): State<Arc<CheckService>>,
    CurrentClient(client): CurrentClient,
    ApiQuery(query): ApiQuery<CheckRequest>,
) -> Result<ApiJson<DecisionBody>, ApiError> {
    Ok(ApiJson(checks.status(client.client_id, &query).await?.into()))
}
