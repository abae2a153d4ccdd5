//! `POST /v1/logs`: parse, call the system-log service, shape the answer.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{Level, LogsError, SystemLogs};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<SystemLogs>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(publish_log))
}

impl From<LogsError> for ApiError {
    fn from(error: LogsError) -> Self {
        match error {
            LogsError::Validation(errors) => errors.into(),
            LogsError::Redis(e) => e.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Error,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"level": "error", "message": "payment provider timed out", "context": {"order_id": 1042}}))]
pub struct LogRequest {
    pub level: LogLevel,
    /// 1-10,000 characters.
    #[schema(min_length = 1, max_length = 10000)]
    pub message: String,
    /// Any JSON, at most 16 KiB.
    pub context: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogPublished {
    /// The event's id in the account's stream `logs`.
    pub id: String,
}

/// Publish a log line: `system.info` or `system.error` on the caller's
/// account's stream `logs` (201 once Redis has appended it).
#[utoipa::path(post, path = "/v1/logs", tag = "logs", request_body = LogRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = LogPublished), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn publish_log(
    State(logs): State<Arc<SystemLogs>>,
    principal: Principal,
    ApiJson(body): ApiJson<LogRequest>,
) -> Result<(StatusCode, ApiJson<LogPublished>), ApiError> {
    let level = match body.level {
        LogLevel::Info => Level::Info,
        LogLevel::Error => Level::Error,
    };
    let id = logs
        .publish(principal.account(), principal.principal_id(), level, &body.message, body.context.as_ref())
        .await?;
    Ok((StatusCode::CREATED, ApiJson(LogPublished { id })))
}
