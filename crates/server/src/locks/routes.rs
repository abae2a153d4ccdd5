//! `/v1/locks/{resource}`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use switchyard_kit::lock::Lease;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{LockError, LockService};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::validation::FieldError;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<LockService>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(acquire, release)).routes(routes!(extend))
}

impl From<LockError> for ApiError {
    fn from(error: LockError) -> Self {
        match error {
            LockError::Validation(errors) => errors.into(),
            LockError::Held => ApiError::Conflict("the lock is held by someone else".into()),
            LockError::NotHolder => {
                ApiError::Conflict("the token does not hold this lock (released or expired)".into())
            }
            LockError::Redis(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ttl_ms": 30000, "wait_ms": 2000}))]
pub struct AcquireRequest {
    /// How long the lock is held unless extended or released (1 ms - 1 h).
    #[schema(minimum = 1, maximum = 3600000)]
    pub ttl_ms: u64,
    /// How long to wait for a held lock (0 - 30 s); omitted = do not wait.
    #[schema(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseBody {
    /// Proves holding: needed to extend and release.
    pub token: String,
    /// Grows with every acquisition of the resource: pass it to the
    /// protected system so it can refuse writes from a stale holder.
    pub fencing_token: u64,
    pub expires_at: DateTime<Utc>,
}

impl From<Lease> for LeaseBody {
    fn from(lease: Lease) -> Self {
        let expires_at = i64::try_from(lease.expires_at_ms)
            .ok()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or_else(Utc::now);
        Self { token: lease.token, fencing_token: lease.fencing_token, expires_at }
    }
}

/// Acquire a lock.
#[utoipa::path(post, path = "/v1/locks/{resource}", tag = "locks", request_body = AcquireRequest,
    security(("bearer" = []), ("api_key" = [])),
    params(("resource" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,200}$", description = "Lock name, scoped to the caller: 1-200 printable characters")),
    responses(
        (status = 200, body = LeaseBody),
        (status = 409, description = "Held by someone else", body = Problem, content_type = "application/problem+json"),
    ))]
async fn acquire(
    State(locks): State<Arc<LockService>>,
    principal: Principal,
    ApiPath(resource): ApiPath<String>,
    ApiJson(body): ApiJson<AcquireRequest>,
) -> Result<ApiJson<LeaseBody>, ApiError> {
    let lease = locks.acquire(&principal.account().to_string(), &resource, body.ttl_ms, body.wait_ms).await?;
    Ok(ApiJson(lease.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "the token from acquire", "ttl_ms": 30000}))]
pub struct ExtendRequest {
    pub token: String,
    #[schema(minimum = 1, maximum = 3600000)]
    pub ttl_ms: u64,
}

/// Extend a held lock (holder only).
#[utoipa::path(post, path = "/v1/locks/{resource}/extend", tag = "locks", request_body = ExtendRequest,
    security(("bearer" = []), ("api_key" = [])),
    params(("resource" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,200}$", description = "Lock name, scoped to the caller: 1-200 printable characters")),
    responses((status = 200, body = LeaseBody), (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn extend(
    State(locks): State<Arc<LockService>>,
    principal: Principal,
    ApiPath(resource): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendRequest>,
) -> Result<ApiJson<LeaseBody>, ApiError> {
    let lease = locks.extend(&principal.account().to_string(), &resource, &body.token, body.ttl_ms).await?;
    Ok(ApiJson(lease.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "the token from acquire"}))]
pub struct ReleaseRequest {
    pub token: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseQuery {
    /// The holder's token (or send it as the `Lock-Token` header, or in the body).
    pub token: Option<String>,
}

/// Release a lock (holder only). The token goes in the `Lock-Token` header,
/// the `token` query parameter, or a JSON body (many clients send no body
/// with DELETE).
#[utoipa::path(delete, path = "/v1/locks/{resource}", tag = "locks", request_body(content = Option<ReleaseRequest>, description = "Optional: the token may come in the header or query instead"),
    security(("bearer" = []), ("api_key" = [])),
    params(("resource" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,200}$", description = "Lock name, scoped to the caller: 1-200 printable characters"), ReleaseQuery,
        ("Lock-Token" = String, Header, description = "The holder's token. Documented as required so one way is always given; the `token` query parameter or a JSON body `{\"token\"}` may carry it instead.")),
    responses((status = 204), (status = 409, description = "Not the holder's token", body = Problem, content_type = "application/problem+json")))]
async fn release(
    State(locks): State<Arc<LockService>>,
    principal: Principal,
    ApiPath(resource): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReleaseQuery>,
    headers: HeaderMap,
    body: Option<ApiJson<ReleaseRequest>>,
) -> Result<StatusCode, ApiError> {
    let from_header = headers.get("lock-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let token = from_header.or(query.token).or(body.map(|ApiJson(b)| b.token)).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(
            "token",
            "is required (Lock-Token header, token query parameter or body)",
        )])
    })?;
    locks.release(&principal.account().to_string(), &resource, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}
