//! Who is calling: extractors that let a handler's signature state what it
//! accepts. `CurrentUser` needs a valid access token whose session still
//! exists; `CurrentClient` an API key; `Principal` either.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use uuid::Uuid;

use super::domain::{PrincipalId, Role};
use super::service::{AuthenticatedUser, ClientMeta};
use crate::clients::service::AuthenticatedClient;
use crate::http::ApiError;
use crate::ratelimit::middleware::ClientIp;
use crate::state::AppState;

/// A signed-in user (Bearer access token).
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser(pub AuthenticatedUser);

/// An API client (x-api-key, or a Bearer token carrying the key prefix).
#[derive(Debug, Clone)]
pub struct CurrentClient(pub AuthenticatedClient);

/// Either kind of caller.
#[derive(Debug, Clone)]
pub enum Principal {
    User(AuthenticatedUser),
    Client(AuthenticatedClient),
}

impl Principal {
    /// The namespace this caller's resources live in; two principals never
    /// share one.
    pub fn tenant(&self) -> String {
        self.principal_id().to_string()
    }

    pub fn principal_id(&self) -> PrincipalId {
        match self {
            Principal::User(user) => PrincipalId::User(user.user_id),
            Principal::Client(client) => PrincipalId::Client(client.client_id),
        }
    }

    /// The account the caller acts for: a user's own, or the one of the
    /// user owning the API client. Resources an account's clients share
    /// with it (boards, streams) live under this.
    pub fn account(&self) -> PrincipalId {
        match self {
            Principal::User(user) => PrincipalId::User(user.user_id),
            Principal::Client(client) => PrincipalId::User(client.owner_id),
        }
    }

    /// Whether this caller acts for the operator of the deployment: an
    /// admin, or an API client an admin owns. Such callers may act on other
    /// users (e.g. notify them).
    pub fn is_operator(&self) -> bool {
        match self {
            Principal::User(user) => user.role == Role::Admin,
            Principal::Client(client) => client.owner_role == Role::Admin,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::Client(_) => "client",
        }
    }

    pub fn id(&self) -> Uuid {
        match self {
            Principal::User(user) => user.user_id,
            Principal::Client(client) => client.client_id,
        }
    }
}

/// The outcome of authenticating this request earlier (by the rate
/// limiter): the principal, or `None` for missing or invalid credentials.
/// Extractors reuse it instead of checking the credentials twice.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Option<Principal>);

enum Credential<'a> {
    AccessToken(&'a str),
    ApiKey(&'a str),
    None,
}

fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Credential::ApiKey(key.trim());
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match bearer {
        Some(token) if token.starts_with(crate::clients::keys::KEY_PREFIX) => Credential::ApiKey(token),
        Some(token) => Credential::AccessToken(token),
        None => Credential::None,
    }
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("a valid access token or API key is required".into())
}

/// The principal behind the request's credentials: `None` when there are
/// none or they are not valid; `Err` only when checking them failed.
pub async fn authenticate_headers(headers: &HeaderMap, state: &AppState) -> Result<Option<Principal>, ApiError> {
    Ok(match credential(headers) {
        Credential::AccessToken(token) => state.identity.authenticate(token).await?.map(Principal::User),
        Credential::ApiKey(key) => state.clients.authenticate(key).await?.map(Principal::Client),
        Credential::None => None,
    })
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if let Some(Authenticated(outcome)) = parts.extensions.get::<Authenticated>() {
        return outcome.clone().ok_or_else(unauthorized);
    }
    authenticate_headers(&parts.headers, state).await?.ok_or_else(unauthorized)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await? {
            Principal::User(user) => Ok(CurrentUser(user)),
            Principal::Client(_) => Err(ApiError::Forbidden("this endpoint needs a user's access token".into())),
        }
    }
}

impl FromRequestParts<AppState> for CurrentClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await? {
            Principal::Client(client) => Ok(CurrentClient(client)),
            Principal::User(_) => Err(ApiError::Forbidden("this endpoint needs an API key".into())),
        }
    }
}

/// A signed-in admin.
#[derive(Debug, Clone, Copy)]
pub struct CurrentAdmin(pub AuthenticatedUser);

impl FromRequestParts<AppState> for CurrentAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role == Role::Admin {
            Ok(CurrentAdmin(user))
        } else {
            Err(ApiError::Forbidden("this endpoint is for admins".into()))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The rate limiter resolved the address (honouring trusted proxies).
        let ip = match parts.extensions.get::<ClientIp>() {
            Some(ClientIp(ip)) => ip.to_string(),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        };
        let user_agent =
            parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().chars().take(256).collect();
        Ok(ClientMeta { ip, user_agent })
    }
}
