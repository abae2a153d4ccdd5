//! The HTTP edge's one error type, rendered as RFC 9457
//! `application/problem+json`.
//!
//! Services return their own errors; handlers convert them into
//! [`ApiError`] with `?`. Internal errors are logged here, once, with their
//! cause chain, and the client gets an opaque body: no `to_string()` of an
//! internal error ever reaches a response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Rejection;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Retry-After` of a 503: dependencies restart or reload in seconds.
const UNAVAILABLE_RETRY_AFTER_SECS: &str = "2";

pub use crate::validation::FieldError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem: `/problems/validation`
    /// (422, see `errors`), `/problems/malformed-request` (400),
    /// `/problems/unauthorized` (401), `/problems/forbidden` (403),
    /// `/problems/not-found` (404), `/problems/method-not-allowed` (405),
    /// `/problems/timeout` (408), `/problems/conflict` (409),
    /// `/problems/payload-too-large` (413), `/problems/unsupported-media-type`
    /// (415), `/problems/too-many-requests` (429), `/problems/internal`
    /// (500, a bug, logged), `/problems/unavailable` (503, retry later),
    /// `/problems/http` (any other status).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: each invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Everything a handler can fail with, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Credentials were presented and refused (RFC 6750 `invalid_token`).
    #[error("invalid token: {0:?}")]
    InvalidToken(Rejection),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too many requests")]
    TooManyRequests { detail: String, retry_after: std::time::Duration },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request timed out")]
    Timeout,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "malformed-request", "Malformed request"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large"),
            Self::Unauthorized(_) | Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "Too many requests"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Self::Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout", "Request timed out"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            Self::BadRequest(detail)
            | Self::Unauthorized(detail)
            | Self::Forbidden(detail)
            | Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::Unavailable(detail)
            | Self::TooManyRequests { detail, .. } => detail.clone(),
            Self::InvalidToken(rejection) => invalid_token_description(*rejection).into(),
            Self::UnsupportedMediaType => "expected a body with Content-Type: application/json".into(),
            Self::PayloadTooLarge => "the request body exceeds the configured limit".into(),
            Self::MethodNotAllowed => "this route does not accept this method".into(),
            Self::Timeout => "the request took longer than the configured timeout".into(),
            Self::Internal(_) => "an unexpected error occurred; it has been logged".into(),
        }
    }

    /// The problem document for a plain status, for responses produced by
    /// layers below our handlers (timeouts, method mismatches, panics).
    pub fn for_status(status: StatusCode) -> Option<Self> {
        Some(match status {
            StatusCode::NOT_FOUND => Self::NotFound("no route matches this path".into()),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Self::Timeout,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable("try again later".into()),
            _ => return None,
        })
    }
}

fn invalid_token_description(rejection: Rejection) -> &'static str {
    match rejection {
        Rejection::Expired => "the access token expired; refresh it",
        Rejection::Invalid => "the access token or API key is not valid (unknown, revoked or malformed)",
    }
}

/// Redis errors that mean "not answering" are a 503; any other is internal.
impl From<switchyard_kit::KitError> for ApiError {
    fn from(error: switchyard_kit::KitError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable("Redis is unavailable".into())
        } else {
            Self::Internal(error.into())
        }
    }
}

/// PostgreSQL not answering (pool exhausted or closed, connection lost) is
/// a 503; any other database error is internal.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("the database is unavailable".into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::Validation(errors)
    }
}

/// Renders a problem document for any status (used for statuses that have
/// no [`ApiError`] variant).
pub fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> Response {
    let body =
        Problem { kind: format!("/problems/{kind}"), title: title.into(), status: status.as_u16(), detail, errors };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "internal error");
        }
        let (status, kind, title) = self.parts();
        let detail = self.detail();
        let mut headers = axum::http::HeaderMap::new();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::InvalidToken(rejection) => {
                let challenge = match rejection {
                    Rejection::Expired => {
                        r#"Bearer error="invalid_token", error_description="the access token expired; refresh it""#
                    }
                    Rejection::Invalid => {
                        r#"Bearer error="invalid_token", error_description="the access token or API key is not valid""#
                    }
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            Self::TooManyRequests { retry_after, .. } => {
                // Whole seconds, rounded up: retrying early would be refused again.
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            Self::Unavailable(_) => {
                // A dependency is not answering yet: worth asking again soon.
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER_SECS));
            }
            _ => {}
        }
        let errors = match self {
            Self::Validation(errors) => errors,
            _ => Vec::new(),
        };
        let mut response = problem_response(status, kind, title, detail, errors);
        response.headers_mut().extend(headers);
        response
    }
}
