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
    tags((name = "operations", description = "Liveness, readiness and metrics"))
)]
struct BaseDocument;

/// The document's fixed part (info, shared schemas, tags); routes add paths.
pub fn base_document() -> Document {
    BaseDocument::openapi()
}

/// The complete document, as served at [`DOCUMENT_PATH`].
pub fn document() -> Document {
    super::api_routes().split_for_parts().1
}

pub fn swagger_ui(document: Document) -> SwaggerUi {
    // validator_url "none": the UI must not call an outside host.
    let config = Config::from(DOCUMENT_PATH).validator_url("none").try_it_out_enabled(true);
    SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, document).config(config)
}
