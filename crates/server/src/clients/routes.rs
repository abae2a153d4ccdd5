//! `/v1/clients`: API clients and their keys, for the signed-in owner.
//! Another owner's client or key is a 404, never a 403, so ids are not
//! confirmed.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{ClientWithKeys, Clients, ClientsError};
use super::store::{ClientRow, KeyRow};
use crate::http::{ApiError, ApiJson, ApiPath, CurrentUser, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Clients>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(create_client, list_clients))
        .routes(routes!(get_client))
        .routes(routes!(rotate_key))
        .routes(routes!(revoke_key))
}

impl From<ClientsError> for ApiError {
    fn from(error: ClientsError) -> Self {
        match error {
            ClientsError::Validation(errors) => errors.into(),
            ClientsError::NotFound => ApiError::NotFound("no such client or key".into()),
            ClientsError::RotationInProgress => {
                ApiError::Conflict("another rotation of this client is in progress".into())
            }
            ClientsError::Redis(e) => e.into(),
            ClientsError::Database(e) => e.into(),
            ClientsError::Cache(e) => ApiError::Internal(e.into()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientBody {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    /// Requests per minute for this client; null means the default policy.
    pub rate_limit: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<ClientRow> for ClientBody {
    fn from(row: ClientRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            owner_id: row.owner_id,
            rate_limit: row.rate_limit,
            created_at: row.created_at,
        }
    }
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyBody {
    pub id: Uuid,
    /// The first characters of the key.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for KeyBody {
    fn from(row: KeyRow) -> Self {
        Self {
            id: row.id,
            prefix: row.prefix,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientWithKeysBody {
    #[serde(flatten)]
    pub client: ClientBody,
    pub keys: Vec<KeyBody>,
}

impl From<ClientWithKeys> for ClientWithKeysBody {
    fn from(c: ClientWithKeys) -> Self {
        Self { client: c.client.into(), keys: c.keys.into_iter().map(KeyBody::from).collect() }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "billing-service", "rate_limit": 600}))]
pub struct CreateClientRequest {
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 100
    )]
    pub name: String,
    /// Requests per minute; omit for the default policy.
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub client: ClientBody,
    /// The key: shown only here.
    pub api_key: String,
    pub key_id: Uuid,
}

/// Register an API client; its first key is returned once.
#[utoipa::path(post, path = "/v1/clients", tag = "clients", security(("bearer" = [])), request_body = CreateClientRequest,
    responses((status = 201, body = CreatedClient), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_client(
    State(clients): State<Arc<Clients>>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateClientRequest>,
) -> Result<(StatusCode, ApiJson<CreatedClient>), ApiError> {
    let (client, key) = clients.create(user.user_id, &body.name, body.rate_limit).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedClient { client: client.into(), api_key: key.api_key, key_id: key.key.id }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientWithKeysBody>,
}

/// The caller's clients with their keys.
#[utoipa::path(get, path = "/v1/clients", tag = "clients", security(("bearer" = [])),
    responses((status = 200, body = ClientList)))]
async fn list_clients(
    State(clients): State<Arc<Clients>>,
    CurrentUser(user): CurrentUser,
) -> Result<ApiJson<ClientList>, ApiError> {
    let clients = clients.list(user.user_id).await?;
    Ok(ApiJson(ClientList { clients: clients.into_iter().map(Into::into).collect() }))
}

/// One of the caller's clients with its keys.
#[utoipa::path(get, path = "/v1/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The id of one of the caller's API clients")),
    responses((status = 200, body = ClientWithKeysBody), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_client(
    State(clients): State<Arc<Clients>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<ClientWithKeysBody>, ApiError> {
    Ok(ApiJson(clients.get(user.user_id, id).await?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    pub api_key: String,
    pub key_id: Uuid,
    /// When the previous key stops working (end of the grace period).
    pub previous_key_expires_at: Option<DateTime<Utc>>,
}

/// Issue a new key; the previous one works until the grace period ends.
#[utoipa::path(post, path = "/v1/clients/{id}/keys/rotate", tag = "clients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The id of one of the caller's API clients")),
    responses(
        (status = 201, body = RotatedKey),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another rotation holds the lock", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rotate_key(
    State(clients): State<Arc<Clients>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, ApiJson<RotatedKey>), ApiError> {
    let rotation = clients.rotate(user.user_id, id).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(RotatedKey {
            api_key: rotation.api_key,
            key_id: rotation.key_id,
            previous_key_expires_at: rotation.previous_key_expires_at,
        }),
    ))
}

/// Revoke a key at once.
#[utoipa::path(delete, path = "/v1/clients/{id}/keys/{key_id}", tag = "clients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The id of one of the caller's API clients"), ("key_id" = Uuid, Path, description = "The id of one of that client's keys")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn revoke_key(
    State(clients): State<Arc<Clients>>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, key_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    clients.revoke_key(user.user_id, id, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
