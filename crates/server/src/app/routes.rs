//! The application's routes, the middleware stack around them, and the
//! OpenAPI document they describe.
//!
//! Layer order (outermost first): request id → tracing → request-id
//! propagation → panic catcher → metrics → bare-error-to-problem →
//! compression → activity recording (only when `ACTIVITY_ENABLED`) → CORS
//! → timeout → body limit → authentication (client address and
//! principal, once) → rate limit → route.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;

use super::adapters::Gatekeeper;
use super::AppState;
use crate::http::auth::AuthLayer;
use crate::http::{self, middleware, openapi, REQUEST_ID};
use crate::telemetry::metrics::HttpMetricsLayer;

/// Every capability's routes. A new capability adds its `router()` here.
fn capability_routers() -> [OpenApiRouter<AppState>; 19] {
    [
        crate::ops::routes::router(),
        crate::identity::routes::router(),
        crate::identity::user_routes::router(),
        crate::clients::routes::router(),
        crate::locks::routes::router(),
        crate::actions::routes::router(),
        crate::jobs::routes::router(),
        crate::jobs::queue_routes::router(),
        crate::leaderboards::routes::router(),
        crate::ratelimit::routes::router(),
        crate::events::routes::router(),
        crate::eventlog::routes::router(),
        crate::notifications::routes::router(),
        crate::analytics::report_routes::router(),
        crate::analytics::activity_routes::router(),
        crate::realtime::routes::router(),
        crate::tasks::routes::router(),
        crate::syslog::routes::router(),
        crate::chat::routes::router(),
    ]
}

/// Every documented route, with its OpenAPI description collected as it is
/// mounted.
pub fn api_routes() -> OpenApiRouter<AppState> {
    capability_routers().into_iter().fold(OpenApiRouter::with_openapi(openapi::base_document()), OpenApiRouter::merge)
}

/// The complete OpenAPI document, as served at [`openapi::DOCUMENT_PATH`].
pub fn document() -> Document {
    let mut document = api_routes().split_for_parts().1;
    openapi::add_common_responses(&mut document);
    document
}

/// The complete application: documented routes, Swagger UI, fallbacks and
/// the middleware stack.
pub fn router(state: AppState) -> Router {
    router_with(state, api_routes())
}

/// [`router`] over a given set of routes (tests add routes that exercise
/// the edge, such as a handler that panics, under the real middleware).
pub fn router_with(state: AppState, routes: OpenApiRouter<AppState>) -> Router {
    let (routes, mut document) = routes.split_for_parts();
    openapi::add_common_responses(&mut document);
    let settings = state.settings.clone();
    let gatekeeper = Arc::new(Gatekeeper { identity: state.identity.clone(), clients: state.clients.clone() });
    // Absent, not idle, when recording is off: the benchmark compares both.
    let recording = state.activity.layer();
    // One ServiceBuilder, listed outermost first, is one `Router::layer`
    // call: axum boxes and clones each layer added separately, per route
    // and per request: a third of the CPU of a rate-limit check (66 -> 40 µs).
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| http::request_span(request)))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(middleware::panic_to_problem))
        .layer(HttpMetricsLayer)
        // Compression changes the body type; the layers above want `Response`.
        .map_response(|response: Response<_>| middleware::bare_error_to_problem(response.into_response()))
        .layer(CompressionLayer::new().gzip(true))
        .option_layer(recording)
        .option_layer(http::cors_layer(&settings.cors_allowed_origins))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout))
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(AuthLayer::new(gatekeeper, &settings.rate_limit.trusted_proxies))
        .layer(axum::middleware::from_fn_with_state(state.rate_limits.clone(), crate::ratelimit::middleware::limit));
    routes
        .merge(openapi::swagger_ui(document))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(stack)
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Merging documents keeps one schema per name: two capabilities with a
    /// `BatchRequest` each would silently describe one of them wrongly.
    #[test]
    fn no_two_capabilities_name_different_schemas_alike() {
        let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let mut collisions = Vec::new();
        for (index, router) in capability_routers().into_iter().enumerate() {
            let document = router.split_for_parts().1;
            let schemas = document.components.map(|c| c.schemas).unwrap_or_default();
            for (name, schema) in schemas {
                let json = serde_json::to_string(&schema).expect("schemas serialize");
                match seen.get(&name) {
                    Some((first, other)) if *other != json => {
                        collisions.push(format!("{name} (routers {first} and {index})"))
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(name, (index, json));
                    }
                }
            }
        }
        assert!(collisions.is_empty(), "schema names used for different schemas: {collisions:?}");
        assert!(seen.len() > 50, "the routers' schemas were collected ({})", seen.len());
    }
}
