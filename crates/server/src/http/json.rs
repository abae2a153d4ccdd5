//! `ApiJson`: axum's `Json` with rejections turned into problem documents.
//!
//! Malformed JSON is a 400 saying where (line and column), a missing or
//! wrong content type a 415, a body over the limit a 413, and a body of the
//! wrong shape a 422 naming the field (an unknown field too, where the type
//! refuses them) in plain words. serde's messages are not forwarded, since
//! they can quote the submitted value.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::described::{describe, Described};
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
        decode(&read_body(req, state).await?).map(ApiJson)
    }
}

/// The body of a JSON request, refused unless its content type says JSON.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(format!("the body could not be read ({})", rejection.status()))
        }
    })
}

/// The body as `T`. The common case, a good body, takes one pass; only a
/// bad one pays for finding out what is wrong with it. A whole number
/// written with a fraction (`25162.0`, as JSON Schema allows for an
/// integer) is taken as that whole number.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        return Ok(value);
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!("the body is not valid JSON (line {}, column {})", error.line(), error.column()))
    })?;
    if integralize(&mut value) {
        if let Ok(value) = T::deserialize(&value) {
            return Ok(value);
        }
    }
    serde_path_to_error::deserialize(value).map_err(refusal)
}

/// Whether `f` is a whole number an f64 holds exactly (|f| <= 2^53), such
/// as `238.0`, which JSON Schema counts as an integer.
pub fn is_exact_whole(f: f64) -> bool {
    f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0
}

/// Rewrites every number with a zero fraction, within the range an integer
/// field can hold exactly, as an integer; true when it changed something.
fn integralize(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && is_exact_whole(f) => {
                *n = if f < 0.0 { (f as i64).into() } else { (f as u64).into() };
                true
            }
            _ => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| integralize(item) | changed),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, field| integralize(field) | changed),
        _ => false,
    }
}

/// The 422 for a value that did not deserialize, naming the field where
/// serde stopped (a body's or a query string's).
pub(super) fn refusal<E: std::fmt::Display>(error: serde_path_to_error::Error<E>) -> ApiError {
    let path = error.path().to_string();
    let parent = (path != ".").then_some(path);
    ApiError::Validation(vec![field_error(parent, &error.inner().to_string())])
}

/// The field error for a serde failure at `parent` (`None`: the top).
/// Missing and unknown fields are reported at their parent's path by serde;
/// the error names the field itself.
fn field_error(parent: Option<String>, message: &str) -> FieldError {
    let child = |name: &str| parent.as_ref().map_or_else(|| name.to_owned(), |p| format!("{p}.{name}"));
    match describe(message) {
        Described::Missing(name) => FieldError::new(child(&name), "is required"),
        // serde_path_to_error already ends the path with the unknown key.
        Described::Unknown(name)
            if parent.as_deref().is_some_and(|p| p == name || p.ends_with(&format!(".{name}"))) =>
        {
            FieldError::new(parent.unwrap_or(name), "is not a known field")
        }
        Described::Unknown(name) => FieldError::new(child(&name), "is not a known field"),
        Described::Invalid(words) => FieldError::new(parent.unwrap_or_else(|| "body".to_owned()), words),
    }
}

/// An optional body: a request without a `Content-Type` has none, and an
/// empty body or a JSON `null` is none too.
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
        let body = read_body(req, state).await?;
        if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
            return Ok(None);
        }
        decode(&body).map(|value| Some(ApiJson(value)))
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

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        ttl_ms: u64,
        delta: Option<i32>,
        ratio: Option<f64>,
    }

    #[test]
    fn whole_numbers_with_a_zero_fraction_are_integers_and_other_fractions_are_named() {
        let body: Body = decode(br#"{"ttl_ms": 25162.0, "delta": -3.0, "ratio": 2.0}"#).unwrap();
        assert_eq!(body, Body { ttl_ms: 25162, delta: Some(-3), ratio: Some(2.0) });
        let body: Body = decode(br#"{"ttl_ms": 1, "ratio": 0.5}"#).unwrap();
        assert_eq!(body.ratio, Some(0.5), "a fraction stays where a fraction is wanted");
        let ApiError::Validation(errors) = decode::<Body>(br#"{"ttl_ms": 1.5}"#).unwrap_err() else { panic!("a 422") };
        assert_eq!(errors[0].field, "ttl_ms");
        let ApiError::Validation(errors) = decode::<Body>(br#"{"ttl_ms": 1e300}"#).unwrap_err() else {
            panic!("a 422")
        };
        assert_eq!(errors[0].field, "ttl_ms", "past 2^53 a float is not taken for an integer");
    }

    #[test]
    fn malformed_json_says_where() {
        let ApiError::BadRequest(detail) = decode::<Body>(b"{\n  \"ttl_ms\": }").unwrap_err() else { panic!("a 400") };
        assert!(detail.contains("line 2"), "{detail}");
    }
}
