//! `/v1/auth/*` and `/v1/me`: parse, call the identity service, shape the
//! answer.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{Identity, IdentityError, TokenPair, User};
use crate::domain::{ClientMeta, Principal, Role};
use crate::http::{ApiError, ApiJson, ApiPath, CurrentUser, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Identity>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(me))
        .routes(routes!(whoami))
        .routes(routes!(otp_request))
        .routes(routes!(otp_verify))
        .routes(routes!(password_forgot))
        .routes(routes!(password_reset))
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Validation(errors) => errors.into(),
            IdentityError::InvalidCredentials => ApiError::Unauthorized("email or password is incorrect".into()),
            IdentityError::InvalidCode => ApiError::Unauthorized("the code is invalid or expired".into()),
            IdentityError::InvalidToken => {
                ApiError::Unauthorized("the token is invalid, expired or already used".into())
            }
            IdentityError::EmailTaken => ApiError::Conflict("an account with this email already exists".into()),
            IdentityError::UsernameTaken => ApiError::Conflict("this username is taken".into()),
            IdentityError::TooManyAttempts { retry_after } => {
                ApiError::TooManyRequests { detail: "too many attempts; try again later".into(), retry_after }
            }
            IdentityError::NotFound => ApiError::NotFound("no such resource".into()),
            IdentityError::Forbidden(detail) => ApiError::Forbidden(detail.into()),
            IdentityError::Redis(e) => e.into(),
            IdentityError::Database(e) => e.into(),
            IdentityError::Internal(e) => ApiError::Internal(e),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// Null until set.
    pub display_name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Set on a deleted user (whose row is kept, anonymised); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            display_name: user.display_name,
            role: user.role,
            created_at: user.created_at,
            deleted_at: user.deleted_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: UserBody,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ada", "email": "ada@example.com", "password": "correct horse battery"}))]
pub struct SignupRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    #[schema(pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", max_length = 254)]
    pub email: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// Create an account.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "identity", request_body = SignupRequest,
    responses(
        (status = 201, body = UserEnvelope),
        (status = 409, description = "Email or username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
async fn signup(
    State(identity): State<Arc<Identity>>,
    ApiJson(body): ApiJson<SignupRequest>,
) -> Result<(StatusCode, ApiJson<UserEnvelope>), ApiError> {
    let user = identity.signup(&body.username, &body.email, &body.password).await?;
    Ok((StatusCode::CREATED, ApiJson(UserEnvelope { user: user.into() })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: Uuid,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
            session_id: pair.session_id,
        }
    }
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "identity", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Wrong email or password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(identity): State<Arc<Identity>>,
    meta: ClientMeta,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    Ok(ApiJson(identity.login(&body.email, &body.password, &meta).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "the refresh token from login"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange a refresh token for new tokens (the old one stops working;
/// reusing it revokes the session).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "identity", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn refresh(
    State(identity): State<Arc<Identity>>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    Ok(ApiJson(identity.refresh(&body.refresh_token).await?.into()))
}

/// Revoke the current session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "identity", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn logout(State(identity): State<Arc<Identity>>, CurrentUser(user): CurrentUser) -> Result<StatusCode, ApiError> {
    identity.logout(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub id: Uuid,
    pub created_at: String,
    pub last_seen: String,
    pub ip: String,
    pub user_agent: String,
    /// True for the session of the calling token.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionBody>,
}

/// The caller's sessions.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn list_sessions(
    State(identity): State<Arc<Identity>>,
    CurrentUser(user): CurrentUser,
) -> Result<ApiJson<SessionList>, ApiError> {
    let sessions = identity.sessions(&user).await?;
    let sessions = sessions
        .into_iter()
        .map(|s| SessionBody {
            current: s.id == user.session_id,
            id: s.id,
            created_at: s.created_at,
            last_seen: s.last_seen,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(ApiJson(SessionList { sessions }))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "identity", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204), (status = 404, description = "No such session of yours", body = Problem, content_type = "application/problem+json")))]
async fn revoke_session(
    State(identity): State<Arc<Identity>>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    identity.revoke_session(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current user.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = UserEnvelope), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn me(
    State(identity): State<Arc<Identity>>,
    CurrentUser(user): CurrentUser,
) -> Result<ApiJson<UserEnvelope>, ApiError> {
    let user = identity.user(user.user_id).await?;
    Ok(ApiJson(UserEnvelope { user: user.into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct EmailRequest {
    #[schema(pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", max_length = 254)]
    pub email: String,
}

/// Send a 6-digit login code (always 202, whether or not the account exists).
#[utoipa::path(post, path = "/v1/auth/otp/request", tag = "identity", request_body = EmailRequest,
    responses((status = 202), (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn otp_request(
    State(identity): State<Arc<Identity>>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    identity.request_otp(&body.email).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "code": "042137"}))]
pub struct OtpVerifyRequest {
    #[schema(pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", max_length = 254)]
    pub email: String,
    #[schema(pattern = r"^[0-9]{6}$")]
    pub code: String,
}

/// Sign in with a login code.
#[utoipa::path(post, path = "/v1/auth/otp/verify", tag = "identity", request_body = OtpVerifyRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn otp_verify(
    State(identity): State<Arc<Identity>>,
    meta: ClientMeta,
    ApiJson(body): ApiJson<OtpVerifyRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    Ok(ApiJson(identity.verify_otp(&body.email, &body.code, &meta).await?.into()))
}

/// Send a password reset token (always 202).
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "identity", request_body = EmailRequest,
    responses((status = 202), (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn password_forgot(
    State(identity): State<Arc<Identity>>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    identity.forgot_password(&body.email).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "the token from the reset mail", "new_password": "a new long passphrase"}))]
pub struct ResetRequest {
    pub token: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Set a new password with a reset token; every session of the user is revoked.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "identity", request_body = ResetRequest,
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn password_reset(
    State(identity): State<Arc<Identity>>,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    identity.reset_password(&body.token, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// `user` or `client`.
    pub kind: &'static str,
    pub id: Uuid,
    /// For clients: the owning user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Uuid>,
    /// For clients: the key used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
}

/// Who the credentials belong to (an access token or an API key); costs
/// authentication only, so it is also the probe for checking a key.
#[utoipa::path(get, path = "/v1/auth/whoami", tag = "identity", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn whoami(principal: Principal) -> ApiJson<WhoAmI> {
    let (owner_id, key_id) = match &principal {
        Principal::Client(client) => (Some(client.owner_id), Some(client.key_id)),
        Principal::User(_) => (None, None),
    };
    ApiJson(WhoAmI { kind: principal.kind(), id: principal.id(), owner_id, key_id })
}
