//! `ApiJson`: axum's `Json` with rejections turned into problem documents.
//!
//! Malformed JSON is a 400, a missing or wrong content type a 415, a body
//! over the limit a 413, and a body of the wrong shape a 422 naming the
//! field. serde's messages are not forwarded, since they can quote the
//! submitted value.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{ApiError, FieldError};

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("the body could not be read ({})", rejection.status()))
            }
        })?;
        // The common case, a good body, in one pass; only a bad one pays for
        // finding out what is wrong with it.
        if let Ok(value) = serde_json::from_slice::<T>(&body) {
            return Ok(ApiJson(value));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("the body is not valid JSON".into()))?;
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|error| {
            let path = match error.path().to_string() {
                path if path == "." => None,
                path => Some(path),
            };
            let message = describe_serde_error(error.inner());
            // A missing field is reported at its parent's path; name the field itself.
            let field = match (message.strip_prefix("is required ("), path) {
                (Some(rest), parent) => {
                    let name = rest.trim_end_matches(')');
                    parent.map_or_else(|| name.to_owned(), |p| format!("{p}.{name}"))
                }
                (None, Some(path)) => path,
                (None, None) => "body".to_owned(),
            };
            let message = if message.starts_with("is required") { "is required".to_owned() } else { message };
            ApiError::Validation(vec![FieldError::new(field, message)])
        })
    }
}

/// An optional body: a request without a `Content-Type` has none.
impl<S, T> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// `application/json` or any `+json` type, as axum's `Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// serde's message without the offending value: serde writes
/// `invalid type: string "hunter2", expected u32`; we keep what was expected.
fn describe_serde_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message);
    if let Some(missing) = message.strip_prefix("missing field ") {
        return format!("is required ({})", missing.trim_matches('`'));
    }
    if message.starts_with("unknown field") {
        return "is not a known field".into();
    }
    match message.rsplit_once(", expected ") {
        Some((_, expected)) => format!("expected {expected}"),
        None => "has an invalid value".into(),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_never_carry_the_submitted_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            n: u32,
        }
        let err = serde_json::from_str::<Body>(r#"{"n": "hunter2"}"#).unwrap_err();
        let described = describe_serde_error(&err);
        assert!(!described.contains("hunter2"), "{described}");
        assert_eq!(described, "expected u32");
        let err = serde_json::from_str::<Body>("{}").unwrap_err();
        assert_eq!(describe_serde_error(&err), "is required (n)");
    }
}
