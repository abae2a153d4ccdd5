//! The HTTP toolkit every capability's routes are written with: the one
//! error type and its problem documents (`error`), the JSON extractor
//! (`json`), the query and path extractors (`params`) with serde's errors
//! in plain words (`described`), authentication and the caller extractors (`auth`), the caller
//! for layers outside authentication (`caller`), the client address (`client_ip`), edge fallbacks (`middleware`) and the OpenAPI
//! document's fixed part and Swagger UI (`openapi`).
//!
//! Invariant: this module imports no capability and no application state;
//! the composition root (`crate::app`) assembles routes and layers.

pub mod auth;
pub mod caller;
pub mod client_ip;
pub mod described;
pub mod error;
pub mod json;
pub mod middleware;
pub mod openapi;
pub mod params;

use axum::http::{header, HeaderName, Method, Request};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsOrigins;

pub use auth::{CurrentAdmin, CurrentClient, CurrentUser};
pub use error::{ApiError, FieldError, Problem};
pub use json::ApiJson;
pub use params::{ApiPath, ApiQuery};

/// The request id header: set when missing, echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The tracing span of one request: method, path and request id.
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
}

/// No layer at all when CORS is off, so responses carry no CORS headers.
pub fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("idempotency-key"),
            REQUEST_ID,
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    match origins {
        CorsOrigins::None => None,
        CorsOrigins::Any => Some(layer.allow_origin(AllowOrigin::any())),
        CorsOrigins::List(list) => {
            Some(layer.allow_origin(AllowOrigin::list(list.iter().filter_map(|o| o.parse().ok()))))
        }
    }
}
