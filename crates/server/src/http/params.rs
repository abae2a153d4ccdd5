//! `ApiQuery` and `ApiPath`: axum's `Query` and `Path` with their
//! rejections turned into problem documents: a query or path value that
//! does not parse is a 422 naming the parameter, in plain words, like a bad
//! body field (axum's own rejections are bare 400s with Rust wording).

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::described::{describe, expected_in_words, Described};
use super::error::{ApiError, FieldError};
use super::json::refusal;

/// Query-string parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(refusal)
    }
}

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let names = parameter_names(parts);
                let (field, words) = match error.into_kind() {
                    ErrorKind::ParseErrorAtKey { key, expected_type, .. } => (key, expected_in_words(expected_type)),
                    ErrorKind::ParseErrorAtIndex { index, expected_type, .. } => {
                        (names.get(index).cloned().unwrap_or_else(|| "path".into()), expected_in_words(expected_type))
                    }
                    ErrorKind::ParseError { expected_type, .. } => {
                        let name = if names.len() == 1 { names[0].clone() } else { "path".into() };
                        (name, expected_in_words(expected_type))
                    }
                    ErrorKind::InvalidUtf8InPathParam { key } => (key, "must be valid UTF-8".into()),
                    // A type's own parse error (a UUID's, say); its message
                    // quotes the value, so only its gist is kept.
                    ErrorKind::DeserializeError { key, message, .. } => (key, invalid_in_words(&message)),
                    ErrorKind::Message(message) => {
                        let name = if names.len() == 1 { names[0].clone() } else { "path".into() };
                        (name, invalid_in_words(&message))
                    }
                    _ => ("path".into(), "has an invalid value".into()),
                };
                Err(ApiError::Validation(vec![FieldError::new(field, words)]))
            }
            Err(other) => Err(ApiError::Internal(anyhow::anyhow!("path parameters could not be read: {other}"))),
        }
    }
}

fn invalid_in_words(message: &str) -> String {
    match describe(message) {
        Described::Invalid(words) => words,
        _ => "has an invalid value".into(),
    }
}

/// The names of the route's path parameters, in order (`/v1/x/{a}/{b}`).
fn parameter_names(parts: &Parts) -> Vec<String> {
    let Some(template) = parts.extensions.get::<MatchedPath>() else {
        return Vec::new();
    };
    template
        .as_str()
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| name.trim_start_matches('*').to_owned())
        .collect()
}
