//! The OpenAPI document (generated from the handlers' annotations) and the
//! Swagger UI, served from files compiled into the binary.

use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::error::{FieldError, Problem};

pub const DOCS_PATH: &str = "/api-docs";
pub const DOCUMENT_PATH: &str = "/api-docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchyard",
        description = "Backend infrastructure on Redis and PostgreSQL: identity, rate limiting, actions, leaderboards, jobs, events, realtime, locks and caching. Errors are RFC 9457 problem documents (application/problem+json).",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operations", description = "Liveness, readiness and metrics"),
        (name = "identity", description = "Accounts, sessions, tokens, one-time codes and password resets"),
        (name = "clients", description = "API clients and their rotating keys"),
        (name = "actions", description = "The action log: record, list, last (cached), audit stream"),
        (name = "jobs", description = "Background jobs: enqueue, inspect, cancel, retry; queues: counts, dead letters, pause (admins)"),
        (name = "locks", description = "Distributed locks with fencing tokens"),
        (name = "leaderboards", description = "Named boards per tenant: scores, ranks, pages, neighbourhoods"),
        (name = "ratelimit", description = "Rate limiting as a service, namespaced per API client"),
        (name = "notifications", description = "A user's inbox of what the notify job stored for them"),
        (name = "events", description = "Event streams per account: publish, replay, consumer groups with ack, reclaim and dead letters"),
    )
)]
struct BaseDocument;

/// `bearer` (an access token from /v1/auth/login) and `api_key` (the
/// `x-api-key` header).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    }
}

/// The document's fixed part (info, shared schemas, tags); routes add paths.
pub fn base_document() -> Document {
    BaseDocument::openapi()
}

pub fn swagger_ui(document: Document) -> SwaggerUi {
    // validator_url "none": the UI must not call an outside host.
    let config = Config::from(DOCUMENT_PATH).validator_url("none").try_it_out_enabled(true);
    SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, document).config(config)
}
