//! `/v1/users`: user management. Parse, call the identity service, shape
//! the answer. Who may do what is the service's (`users::Caller`).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::routes::{UserBody, UserEnvelope};
use super::service::Identity;
use super::users::{Caller, UserPatch};
use crate::domain::{Principal, Role};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Identity>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(list_users)).routes(routes!(get_user, update_user, delete_user))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Part of a username, email or display name (case-insensitive).
    #[param(max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub query: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Newest first; deleted users too (anonymised, with `deleted_at`).
    pub users: Vec<UserBody>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Users, newest first, optionally filtered (admins).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserList),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_users(
    State(identity): State<Arc<Identity>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<ApiJson<UserList>, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::Forbidden("this endpoint is for admins".into()));
    }
    let page = identity.list_users(query.query.as_deref(), query.cursor.as_deref(), query.limit).await?;
    Ok(ApiJson(UserList { users: page.users.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

/// One user (an admin, or the user themself).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserEnvelope),
        (status = 404, description = "No such user, or not yours to see", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_user(
    State(identity): State<Arc<Identity>>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<UserEnvelope>, ApiError> {
    let user = identity.get_user(Caller::from(&principal), id).await?;
    Ok(ApiJson(UserEnvelope { user: user.into() }))
}

/// A field that distinguishes "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Ada Lovelace"}))]
pub struct UpdateUserRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: Option<String>,
    /// 1-100 characters; null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$")]
    pub display_name: Option<Option<String>>,
    /// Admins only: anyone else sending it gets a 403. A role change signs
    /// the user out of every session.
    pub role: Option<Role>,
}

/// Change a user's username or display name (an admin, or the user
/// themself) or role (admins only); a body naming no change answers the user as is.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", request_body = UpdateUserRequest,
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserEnvelope),
        (status = 403, description = "A role change by someone not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user, or not yours to change", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_user(
    State(identity): State<Arc<Identity>>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<ApiJson<UserEnvelope>, ApiError> {
    let patch = UserPatch { username: body.username, display_name: body.display_name, role: body.role };
    let user = identity.update_user(Caller::from(&principal), id, &patch).await?;
    Ok(ApiJson(UserEnvelope { user: user.into() }))
}

/// Delete a user (an admin, or the user themself): every session and API
/// key of the user stops working at once; the row is kept, anonymised.
/// Deleting a deleted user again (admins) is a 204 that repeats the
/// revocations.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204),
        (status = 404, description = "No such user, or not yours to delete", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_user(
    State(identity): State<Arc<Identity>>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    identity.delete_user(Caller::from(&principal), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
