//! `/v1/ratelimit/check`, `/v1/ratelimit/check:batch`, `/v1/ratelimit/status`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_kit::Decision;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{CheckError, CheckRequest, CheckService, MAX_COST, MAX_COUNT, MAX_RATE, MAX_WINDOW_MS, MIN_RATE};
use crate::http::openapi::schema_from_json;
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

/// A check's shapes, one per algorithm family, each requiring the
/// parameters [`CheckRequest::limit`] requires for it.
fn check_shapes() -> serde_json::Value {
    let count = json!({"type": "integer", "minimum": 1, "maximum": MAX_COUNT});
    let rate = json!({"type": "number", "minimum": MIN_RATE, "maximum": MAX_RATE, "description": "Per second."});
    let shape = |algorithms: &[&str], params: &[(&str, serde_json::Value)], required: &[&str]| {
        let mut properties: serde_json::Map<String, serde_json::Value> =
            params.iter().map(|(name, schema)| ((*name).to_owned(), schema.clone())).collect();
        properties.insert(
            "key".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 256,
                "description": "What is limited, in the caller's own namespace (e.g. `user:42:upload`)."}),
        );
        properties.insert("algorithm".into(), json!({"type": "string", "enum": algorithms}));
        properties.insert(
            "cost".into(),
            json!({"type": "integer", "minimum": 1, "maximum": MAX_COST,
                "description": "How much this request costs (default 1)."}),
        );
        let mut all_required = vec!["key", "algorithm"];
        all_required.extend_from_slice(required);
        json!({"type": "object", "title": algorithms.join(" | "), "required": all_required,
            "properties": properties, "additionalProperties": false})
    };
    json!({
        "description": "One decision. Parameters by algorithm: `fixed_window`, `sliding_window` (exact) and \
            `sliding_window_approx` take `limit` and `window_ms`; `token_bucket` takes `capacity` and \
            `refill_per_sec`; `gcra` takes `rate` (per second) and `burst` (default 0).",
        "oneOf": [
            shape(
                &["fixed_window", "sliding_window", "sliding_window_approx"],
                &[("limit", count.clone()), ("window_ms", json!({"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_MS}))],
                &["limit", "window_ms"],
            ),
            shape(&["token_bucket"], &[("capacity", count), ("refill_per_sec", rate.clone())], &["capacity", "refill_per_sec"]),
            shape(&["gcra"], &[("rate", rate), ("burst", json!({"type": "integer", "minimum": 0, "maximum": MAX_COUNT}))], &["rate"]),
        ],
        "example": {"key": "user:42:upload", "algorithm": "token_bucket", "capacity": 10, "refill_per_sec": 0.5},
    })
}

impl utoipa::PartialSchema for CheckRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        schema_from_json(check_shapes())
    }
}

impl ToSchema for CheckRequest {}

/// `/v1/ratelimit/status` takes a check as its query string: one object
/// parameter, each field its own `name=value` pair (form style, exploded).
struct CheckQuery;

impl utoipa::IntoParams for CheckQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn, ParameterStyle};
        use utoipa::openapi::Required;
        vec![ParameterBuilder::new()
            .name("check")
            .parameter_in(ParameterIn::Query)
            .required(Required::True)
            .description(Some("The check, as for `POST /v1/ratelimit/check`: `key`, `algorithm` and its parameters."))
            .style(Some(ParameterStyle::Form))
            .explode(Some(true))
            .schema(Some(schema_from_json(check_shapes())))
            .build()]
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
    Ok(ApiJson(checks.check(client.account(), &body).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"checks": [{"key": "user:42:upload", "algorithm": "fixed_window", "limit": 10, "window_ms": 60000}, {"key": "user:42:export", "algorithm": "gcra", "rate": 2, "burst": 5}]}))]
pub struct CheckBatchRequest {
    /// 1-100 checks, decided in one Redis round trip.
    #[schema(min_items = 1, max_items = 100)]
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
    let decisions = checks.check_batch(client.account(), &body.checks).await?;
    Ok(ApiJson(CheckBatchResponse { results: decisions.into_iter().map(Into::into).collect() }))
}

/// The current state of a key without consuming (would a request of `cost`
/// pass now, and what remains).
#[utoipa::path(get, path = "/v1/ratelimit/status", tag = "ratelimit", security(("api_key" = [])), params(CheckQuery),
    responses((status = 200, body = DecisionBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn status(
    State(checks): State<Arc<CheckService>>,
    CurrentClient(client): CurrentClient,
    ApiQuery(query): ApiQuery<CheckRequest>,
) -> Result<ApiJson<DecisionBody>, ApiError> {
    Ok(ApiJson(checks.status(client.account(), &query).await?.into()))
}
