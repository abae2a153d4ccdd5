//! The HTTP edge: problem documents for every bad-input class, request ids,
//! CORS, compression, timeouts, panics, and the OpenAPI document.

use std::time::Duration;

use axum::extract::State;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard::app::AppState;
use switchyard::http::{ApiError, ApiJson, FieldError};
use utoipa_axum::router::OpenApiRouter;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Widget {
    name: String,
    size: u32,
    secret: Option<String>,
}

/// Routes that exist only in these tests, mounted under the real stack.
fn probe_routes() -> OpenApiRouter<AppState> {
    async fn create_widget(
        State(_): State<AppState>,
        ApiJson(widget): ApiJson<Widget>,
    ) -> Result<ApiJson<Value>, ApiError> {
        if widget.name.is_empty() {
            return Err(ApiError::Validation(vec![FieldError::new("name", "must not be empty")]));
        }
        Ok(ApiJson(json!({"name": widget.name, "size": widget.size})))
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    }
    async fn boom() -> &'static str {
        panic!("handler bug")
    }
    OpenApiRouter::new()
        .route("/test/widgets", axum::routing::post(create_widget))
        .route("/test/slow", axum::routing::get(slow))
        .route("/test/panic", axum::routing::get(boom))
}

async fn probe_app() -> crate::helpers::TestApp {
    spawn_app_with(&[("request_timeout_secs", "1"), ("body_limit_bytes", "2048")], probe_routes()).await
}

#[tokio::test]
async fn valid_json_passes_through_the_extractor() {
    let app = probe_app().await;
    let response = app.post_json("/test/widgets", &json!({"name": "a", "size": 3})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"name": "a", "size": 3}));
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = probe_app().await;
    let response = app
        .request(Method::POST, "/test/widgets")
        .await
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
}

#[tokio::test]
async fn a_wrong_or_missing_content_type_is_a_415_problem() {
    let app = probe_app().await;
    for content_type in [Some("text/plain"), None] {
        let mut request = app.request(Method::POST, "/test/widgets").await.body(r#"{"name":"a","size":1}"#);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        assert_problem(request.send().await.unwrap(), 415).await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let app = probe_app().await;
    let big = "x".repeat(4096);
    let response = app.post_json("/test/widgets", &json!({"name": big, "size": 1})).await;
    assert_problem(response, 413).await;
}

#[tokio::test]
async fn wrong_field_types_are_a_422_naming_the_field_without_echoing_the_value() {
    let app = probe_app().await;
    let response = app.post_json("/test/widgets", &json!({"name": "a", "size": "hunter2-secret"})).await;
    let body = assert_problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "size", "{body}");
    assert!(!body.to_string().contains("hunter2"), "the submitted value is never echoed: {body}");

    let response = app.post_json("/test/widgets", &json!({"size": 1})).await;
    let body = assert_problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "name", "{body}");

    let response = app.post_json("/test/widgets", &json!({"name": "", "size": 1})).await;
    let body = assert_problem(response, 422).await;
    assert_eq!(body["errors"], json!([{"field": "name", "message": "must not be empty"}]));
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(app.get("/v1/nothing-here").await, 404).await;
    let response = app.request(Method::DELETE, "/health").await.send().await.unwrap();
    assert!(response.headers().contains_key("allow"));
    assert_problem(response, 405).await;
}

#[tokio::test]
async fn a_slow_handler_times_out_with_a_problem() {
    let app = probe_app().await;
    assert_problem(app.get("/test/slow").await, 408).await;
}

#[tokio::test]
async fn a_panicking_handler_is_an_opaque_500_problem_and_the_server_survives() {
    let app = probe_app().await;
    let body = assert_problem(app.get("/test/panic").await, 500).await;
    assert!(!body.to_string().contains("handler bug"), "{body}");
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn request_ids_are_generated_or_propagated() {
    let app = spawn_app().await;
    let generated = app.get("/health").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let response = app.request(Method::GET, "/health").await.header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    // Also on errors.
    let response = app.request(Method::GET, "/missing").await.header("x-request-id", "err-1").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "err-1");
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_configured_origins() {
    let app = spawn_app().await;
    let response =
        app.request(Method::GET, "/health").await.header("origin", "https://evil.example").send().await.unwrap();
    assert!(!response.headers().contains_key("access-control-allow-origin"));

    let app = spawn_app_with(&[("cors_allowed_origins", "https://app.example.com")], OpenApiRouter::new()).await;
    let preflight = app
        .request(Method::OPTIONS, "/health")
        .await
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example.com");
    let other =
        app.request(Method::GET, "/health").await.header("origin", "https://evil.example").send().await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn responses_are_gzipped_when_the_client_accepts_it() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/api-docs/openapi.json")
        .await
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn the_openapi_document_is_valid_3_1_and_lists_the_routes() {
    let app = spawn_app().await;
    let text = app.get("/api-docs/openapi.json").await.text().await.unwrap();
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    let paths = spec.paths.as_ref().expect("paths");
    for route in ["/health", "/ready", "/metrics"] {
        assert!(paths.contains_key(route), "{route} is documented");
    }
    // Every $ref points at a schema or response that exists.
    let document: Value = serde_json::from_str(&text).unwrap();
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let (section, name) = reference
            .strip_prefix("#/components/")
            .and_then(|rest| rest.split_once('/'))
            .expect("a local component ref");
        assert!(matches!(section, "schemas" | "responses"), "{reference}");
        assert!(document["components"][section].get(name).is_some(), "{reference} resolves");
    }
    // Every /v1 operation documents the answers the edge can give it.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            if path.starts_with("/v1/") {
                for status in ["429", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} documents {status}");
                }
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} documents {status}");
                }
            }
            if operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty()) {
                assert!(responses.contains_key("401"), "{method} {path} documents 401");
            }
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let generated = switchyard::app::document().to_pretty_json().unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo nextest run -p switchyard the_committed_openapi` and commit it"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_without_outside_hosts() {
    let app = spawn_app().await;
    let page = app.get("/api-docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "no CDN: {html}");
    let init = app.get("/api-docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    assert!(init.contains("/api-docs/openapi.json"));
    let bundle = app.get("/api-docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200);
}

#[tokio::test]
async fn bad_query_and_path_values_are_422s_naming_the_parameter_and_stay_decodable_when_compressed() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let response = app
        .authed(Method::GET, "/v1/leaderboards/scores/top?limit=abc", &user.access_token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let gzipped = response.headers().get("content-encoding").is_some_and(|v| v == "gzip");
    let bytes = response.bytes().await.unwrap();
    if gzipped {
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a body labelled gzip is gzip");
    } else {
        let body: Value = serde_json::from_slice(&bytes).expect("a plain body is JSON");
        assert_eq!(body["errors"][0]["field"], "limit");
        assert_eq!(body["errors"][0]["message"], "must be a whole number");
    }
    let plain = app.authed(Method::GET, "/v1/leaderboards/scores/top?limit=abc", &user.access_token).send().await;
    let body = assert_problem(plain.unwrap(), 422).await;
    assert_eq!(
        (body["errors"][0]["field"].as_str(), body["errors"][0]["message"].as_str()),
        (Some("limit"), Some("must be a whole number"))
    );

    let path = app.authed(Method::DELETE, "/v1/auth/sessions/not-a-uuid", &user.access_token).send().await;
    let body = assert_problem(path.unwrap(), 422).await;
    assert_eq!(
        (body["errors"][0]["field"].as_str(), body["errors"][0]["message"].as_str()),
        (Some("id"), Some("must be a UUID"))
    );
}

#[tokio::test]
async fn bodies_refuse_unknown_fields_and_malformed_json_says_where() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let typo =
        app.authed(Method::POST, "/v1/locks/report", &user.access_token).json(&json!({"ttl_ms": 1000, "wait": 5}));
    let body = assert_problem(typo.send().await.unwrap(), 422).await;
    assert_eq!(body["errors"][0], json!({"field": "wait", "message": "is not a known field"}));
    let broken = app
        .authed(Method::POST, "/v1/locks/report", &user.access_token)
        .header("content-type", "application/json")
        .body("{\n  \"ttl_ms\": 1000,\n  oops\n}")
        .send()
        .await
        .unwrap();
    let body = assert_problem(broken, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("line 3, column 3"), "{body}");
}

#[tokio::test]
async fn out_of_range_numbers_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let score = |value: f64| {
        app.authed(Method::POST, "/v1/leaderboards/big/scores", &user.access_token)
            .json(&json!({"member": "m", "score": value, "mode": "increment"}))
            .send()
    };
    let body = assert_problem(score(1e308).await.unwrap(), 422).await;
    assert_eq!(body["errors"][0]["field"], "score");
    assert_eq!(score(9e14).await.unwrap().status(), 200);
    let body = assert_problem(score(9e14).await.unwrap(), 422).await;
    assert_eq!(body["errors"][0]["field"], "score", "an increment past the bound changes nothing");
    let standing = app.authed(Method::GET, "/v1/leaderboards/big/members/m", &user.access_token).send().await.unwrap();
    assert_eq!(standing.json::<Value>().await.unwrap()["score"], 9e14);

    let key = app.create_client(&user, json!({"name": "svc"})).await["api_key"].as_str().unwrap().to_owned();
    let huge = json!({"key": "k", "algorithm": "fixed_window", "limit": i64::MAX, "window_ms": i64::MAX});
    let response = app.keyed(Method::POST, "/v1/ratelimit/check", &key).json(&huge).send().await.unwrap();
    let body = assert_problem(response, 422).await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["limit", "window_ms"]);
}
