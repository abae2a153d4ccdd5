//! Edge handlers that keep every error response a problem document, even
//! when it comes from below our handlers (router fallbacks, timeouts,
//! panics).

use std::any::Any;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{problem_response, ApiError, PROBLEM_JSON};

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no route matches this path".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Replaces the body of any 4xx/5xx response that is not already JSON with a
/// problem document, keeping its status and headers (`Allow`,
/// `Retry-After`, ...). Synchronous, for `ServiceBuilder::map_response`,
/// which (unlike axum's `map_response`) boxes nothing per request.
pub fn bare_error_to_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON) || ct.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let problem = match ApiError::for_status(status) {
        Some(error) => error.into_response(),
        None => problem_response(
            status,
            "http",
            status.canonical_reason().unwrap_or("Error"),
            "the request could not be served".into(),
            Vec::new(),
        ),
    };
    let (problem_parts, body) = problem.into_parts();
    // The new body is plain: a Content-Encoding set for the old one (the
    // compression layer runs below this) would make it undecodable.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

/// A handler panicked: answer 500 with an opaque problem and log it.
pub fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal server error",
        "an unexpected error occurred; it has been logged".into(),
        Vec::new(),
    )
}
