//! `/v1/actions`, `/v1/actions/last`, `/v1/audit`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_kit::CacheStatus;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{self, ActionError, Actions};
use super::store::ActionRow;
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiQuery, CurrentAdmin, Problem};
use crate::validation::FieldError;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Actions>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(last)).routes(routes!(audit))
}

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        match error {
            ActionError::Validation(errors) => errors.into(),
            ActionError::IdempotencyMismatch => ApiError::Validation(vec![FieldError::new(
                "Idempotency-Key",
                "was already used with other parameters; use a new key for a different request",
            )]),
            ActionError::IdempotencyInProgress => {
                ApiError::Conflict("a request with this Idempotency-Key is still in progress".into())
            }
            // The batch writer logged the failure once for the whole batch.
            ActionError::Store(_) => ApiError::Unavailable("the database is unavailable; nothing was recorded".into()),
            ActionError::Database(e) => {
                tracing::error!(error = %e, "action store failed");
                ApiError::Unavailable("the database is unavailable; nothing was recorded".into())
            }
            ActionError::Redis(e) => e.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorBody {
    /// `user` or `client`.
    pub kind: String,
    pub id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionBody {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: serde_json::Value,
    pub actor: ActorBody,
    pub created_at: DateTime<Utc>,
}

impl From<ActionRow> for ActionBody {
    fn from(row: ActionRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            metadata: row.metadata,
            actor: ActorBody { kind: row.actor_kind, id: row.actor_id },
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "UPLOAD", "metadata": {"file": "report.pdf", "bytes": 52311}}))]
pub struct CreateAction {
    /// 1-64 of [A-Za-z0-9_.-], e.g. `UPLOAD`.
    #[serde(rename = "type")]
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub kind: String,
    /// Any JSON object up to 16 KiB (absent or null: `{}`).
    #[serde(default = "empty_object", deserialize_with = "object_or_empty")]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// `null` is no metadata, as an absent field is.
fn object_or_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<serde_json::Value, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(if value.is_null() { empty_object() } else { value })
}

/// Record an action (rate-limited by the `actions` policies). With an
/// `Idempotency-Key` header, a retry returns the first response.
#[utoipa::path(post, path = "/v1/actions", tag = "actions", request_body = CreateAction,
    security(("bearer" = []), ("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes retries safe for 24 h: 1-255 printable ASCII characters")),
    responses(
        (status = 201, body = ActionBody),
        (status = 409, description = "Same Idempotency-Key still in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Nothing was recorded", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create(
    State(actions): State<Arc<Actions>>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateAction>,
) -> Result<(StatusCode, HeaderMap, ApiJson<ActionBody>), ApiError> {
    // HTTP header values are ASCII; anything else is refused here.
    let key = match headers.get("idempotency-key") {
        Some(value) => Some(value.to_str().map_err(|_| ApiError::from(vec![service::invalid_idempotency_key()]))?),
        None => None,
    };
    let (row, replayed) = actions.record_once(&principal, key, &body.kind, body.metadata).await?;
    let mut out = HeaderMap::new();
    if replayed {
        out.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((StatusCode::CREATED, out, ApiJson(row.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionPage {
    pub actions: Vec<ActionBody>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The action log of the caller's account (the user's and its API clients' actions), newest first.
#[utoipa::path(get, path = "/v1/actions", tag = "actions", security(("bearer" = []), ("api_key" = [])), params(ListQuery),
    responses((status = 200, body = ActionPage)))]
async fn list(
    State(actions): State<Arc<Actions>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<ApiJson<ActionPage>, ApiError> {
    let (rows, next_cursor) = actions.list(&principal, query.cursor.as_deref(), query.limit.unwrap_or(20)).await?;
    Ok(ApiJson(ActionPage { actions: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// The caller's last action, from the cache when it has it (`X-Cache: hit`)
/// or from the database (`X-Cache: miss`, refilling the cache).
#[utoipa::path(get, path = "/v1/actions/last", tag = "actions", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ActionBody), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn last(
    State(actions): State<Arc<Actions>>,
    principal: Principal,
) -> Result<(HeaderMap, ApiJson<ActionBody>), ApiError> {
    let (row, status) = actions.last(&principal).await?;
    let row = row.ok_or_else(|| ApiError::NotFound("no action recorded yet".into()))?;
    let mut headers = HeaderMap::new();
    let value = match status {
        CacheStatus::Hit => "hit",
        CacheStatus::Miss => "miss",
    };
    headers.insert("x-cache", HeaderValue::from_static(value));
    Ok((headers, ApiJson(row.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Stream entry id to start from (inclusive); default `-`, the start.
    /// `cursor` (the previous page's `next_cursor`) is the same parameter.
    #[serde(alias = "cursor")]
    #[param(pattern = r"^(-|\(?[0-9]{1,19}(-[0-9]{1,19})?)$")]
    pub from: Option<String>,
    /// 1-1000, default 100 (`count` is accepted as an older name).
    #[serde(alias = "count")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// A page of the audit stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; null when this page is the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// The stream entry id (use the last one + 1 ms... or exclusive `(id` to continue).
    pub id: String,
    pub action: serde_json::Value,
}

/// The audit stream, for replay (admins only).
#[utoipa::path(get, path = "/v1/audit", tag = "actions", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn audit(
    State(actions): State<Arc<Actions>>,
    _admin: CurrentAdmin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    let from = query.from.unwrap_or_else(|| "-".into());
    let count = query.limit.unwrap_or(100);
    let mut errors = Vec::new();
    if !service::valid_stream_id(from.trim_start_matches('(')) {
        errors.push(crate::validation::FieldError::new("from", "must be a stream entry id such as 1700000000000-0"));
    }
    if !(1..=1000).contains(&count) {
        errors.push(crate::validation::FieldError::new("limit", "must be between 1 and 1000"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let entries = actions.audit(&from, count).await?;
    // A full page may have more after it: continue after (exclusive) its last id.
    let next_cursor = (entries.len() as u64 == count).then(|| entries.last().map(|(id, _)| format!("({id}"))).flatten();
    Ok(ApiJson(AuditPage {
        entries: entries.into_iter().map(|(id, action)| AuditEntry { id, action }).collect(),
        next_cursor,
    }))
}
