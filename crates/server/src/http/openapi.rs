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
        (name = "users", description = "User management: list and search (admins), read, change and delete (admins, or a user on themself); changes publish user.* events on sys:users"),
        (name = "clients", description = "API clients and their rotating keys"),
        (name = "actions", description = "The action log: record, list, last (cached), audit stream"),
        (name = "jobs", description = "Background jobs: enqueue, inspect, cancel, retry; queues: counts, dead letters, pause (admins)"),
        (name = "locks", description = "Distributed locks with fencing tokens"),
        (name = "leaderboards", description = "Named boards per tenant: scores, ranks, pages, neighbourhoods"),
        (name = "ratelimit", description = "Rate limiting as a service, namespaced per API client"),
        (name = "notifications", description = "A user's inbox of what the notify job stored for them"),
        (name = "events", description = "Event streams per account: publish, replay, consumer groups with ack, reclaim and dead letters"),
        (name = "tasks", description = "An account's tasks: create, list, read, complete; task.created and task.completed go to the account's stream tasks"),
        (name = "logs", description = "System logs: publish system.info and system.error on the account's stream logs"),
        (name = "chat", description = "Group and direct rooms, messages with history, read receipts and unread counts; presence of the users one shares a room with"),
        (name = "analytics", description = "Usage reports (cached; X-Cache says hit or miss): daily usage per account or client, top clients, routes and users, active users, unique visitors"),
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

/// A schema written as JSON, for the bodies whose rules depend on one of
/// their fields (a job's payload on its type, a check's parameters on its
/// algorithm), which derive macros cannot say. The JSON is the code's own,
/// so a schema that does not parse is a bug the document tests catch.
pub fn schema_from_json(schema: serde_json::Value) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    serde_json::from_value(schema).expect("a hand-written schema is a valid OpenAPI schema")
}

/// The hand-written schema of a field that takes any JSON value, with its
/// description (utoipa reads a schema without a `type` as none at all).
pub fn any_json(description: &str) -> serde_json::Value {
    serde_json::json!({
        "type": ["object", "array", "string", "number", "integer", "boolean", "null"],
        "description": description,
    })
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

/// The answers every operation can give besides its own, added to the
/// assembled document once instead of by hand on each route: 401 and 403
/// where credentials are needed, 400/413/415/422 where there is a body,
/// 422 where there are parameters, and 429 and 503 on every `/v1` route
/// (rate limited; a dependency not answering yet). Each is a problem
/// document, defined once under `components.responses`; a route's own
/// description of the same status is kept.
pub fn add_common_responses(document: &mut Document) {
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};

    let problem = |description: &str| {
        ResponseBuilder::new().description(description).content(
            super::error::PROBLEM_JSON,
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
    };
    let seconds = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some(description))
            .build()
    };
    let text = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(description))
            .build()
    };
    let common = [
        ("BadRequest", problem("The body is not valid JSON (the detail says where)").build()),
        (
            "Unauthorized",
            problem("No valid credentials: none sent, or refused (`WWW-Authenticate` says whether the token expired)")
                .header(
                    "WWW-Authenticate",
                    text("`Bearer`, or `Bearer error=\"invalid_token\", error_description=\"...\"`"),
                )
                .build(),
        ),
        ("Forbidden", problem("The caller may not do this").build()),
        ("PayloadTooLarge", problem("The body is larger than BODY_LIMIT_BYTES").build()),
        ("UnsupportedMediaType", problem("The body is not application/json").build()),
        ("Unprocessable", problem("A field or parameter is invalid, missing or unknown; each is named").build()),
        (
            "TooManyRequests",
            problem("Rate limited")
                .header("Retry-After", seconds("Seconds until the request may pass"))
                .header("RateLimit-Policy", text("Every limit that applies (IETF draft)"))
                .header("RateLimit", text("Each limit's remaining quota and reset seconds (IETF draft)"))
                .header("RateLimit-Limit", seconds("The binding limit"))
                .header("RateLimit-Remaining", seconds("What the binding limit has left"))
                .header("RateLimit-Reset", seconds("Seconds until the request may pass (= Retry-After)"))
                .build(),
        ),
        ("RequestTimeout", problem("The request took longer than REQUEST_TIMEOUT_SECS").build()),
        (
            "Unavailable",
            problem("A dependency (PostgreSQL, Redis) is not answering yet")
                .header("Retry-After", seconds("Seconds after which to try again"))
                .build(),
        ),
    ];
    let components = document.components.get_or_insert_with(Default::default);
    for (name, response) in common {
        components.responses.insert(name.to_owned(), RefOr::T(response));
    }

    for (path, item) in document.paths.paths.iter_mut() {
        let operations =
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten();
        for operation in operations {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = operation.request_body.is_some();
            let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |status: &str, name: &str| {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| Ref::from_response_name(name).into());
            };
            if has_body {
                add("400", "BadRequest");
                add("413", "PayloadTooLarge");
                add("415", "UnsupportedMediaType");
            }
            if has_body || has_parameters {
                add("422", "Unprocessable");
            }
            if secured {
                add("401", "Unauthorized");
                add("403", "Forbidden");
            }
            if path.starts_with("/v1/") {
                add("408", "RequestTimeout");
                add("429", "TooManyRequests");
                add("503", "Unavailable");
            }
        }
    }
}
