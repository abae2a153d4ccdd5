//! `/v1/tasks`: parse, call the tasks service, shape the answer.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{NewTask, Tasks, TasksError};
use super::store::{TaskFilter, TaskRow};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Tasks>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(create_task, list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(complete_task))
}

impl From<TasksError> for ApiError {
    fn from(error: TasksError) -> Self {
        match error {
            TasksError::Validation(errors) => errors.into(),
            TasksError::NotFound => ApiError::NotFound("no such task".into()),
            TasksError::AlreadyComplete => ApiError::Conflict("the task is already complete".into()),
            TasksError::Database(e) => e.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Completed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Completed => "completed",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Ship the release", "priority": "high"}))]
pub struct CreateTaskRequest {
    /// 1-200 characters (trimmed), no control characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// At most 10,000 characters.
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub priority: Priority,
    /// Any existing (not deleted) user's id; it need not be of the account.
    pub assigned_to: Option<Uuid>,
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskBody {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub priority: String,
    /// `open` or `completed`.
    pub status: String,
    pub assigned_to: Option<Uuid>,
    /// The principal that created it: `user:<id>` or `client:<id>`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
}

impl From<TaskRow> for TaskBody {
    fn from(t: TaskRow) -> Self {
        Self {
            id: t.id,
            title: t.title,
            description: t.description,
            priority: t.priority,
            status: t.status,
            assigned_to: t.assigned_to,
            created_by: t.created_by,
            created_at: t.created_at,
            completed_at: t.completed_at,
            completed_by: t.completed_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskEnvelope {
    pub task: TaskBody,
}

/// Create a task in the caller's account (`task.created` on its stream `tasks`).
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = CreateTaskRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = TaskEnvelope),
        (status = 422, description = "Invalid fields, or assigned_to is not a user", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_task(
    State(tasks): State<Arc<Tasks>>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateTaskRequest>,
) -> Result<(StatusCode, ApiJson<TaskEnvelope>), ApiError> {
    let task = NewTask {
        title: body.title,
        description: body.description,
        priority: body.priority.as_str(),
        assigned_to: body.assigned_to,
    };
    let created = tasks.create(principal.account(), principal.principal_id(), &task).await?;
    Ok((StatusCode::CREATED, ApiJson(TaskEnvelope { task: created.into() })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// `open` or `completed`.
    #[param(inline)]
    pub status: Option<Status>,
    pub assigned_to: Option<Uuid>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<TaskBody>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's account's tasks, newest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(TaskQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = TaskList), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_tasks(
    State(tasks): State<Arc<Tasks>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<ApiJson<TaskList>, ApiError> {
    let filter = TaskFilter { status: query.status.map(Status::as_str), assigned_to: query.assigned_to };
    let page = tasks.list(principal.account(), filter, query.cursor.as_deref(), query.limit).await?;
    Ok(ApiJson(TaskList { tasks: page.tasks.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

/// One task of the caller's account.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = TaskEnvelope), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_task(
    State(tasks): State<Arc<Tasks>>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<TaskEnvelope>, ApiError> {
    Ok(ApiJson(TaskEnvelope { task: tasks.get(principal.account(), id).await?.into() }))
}

/// Complete a task (`task.completed` on the account's stream `tasks`); of
/// concurrent completions exactly one succeeds.
#[utoipa::path(post, path = "/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TaskEnvelope),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already complete", body = Problem, content_type = "application/problem+json"),
    ))]
async fn complete_task(
    State(tasks): State<Arc<Tasks>>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<TaskEnvelope>, ApiError> {
    let done = tasks.complete(principal.account(), principal.principal_id(), id).await?;
    Ok(ApiJson(TaskEnvelope { task: done.into() }))
}
