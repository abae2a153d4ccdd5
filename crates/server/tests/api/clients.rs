//! API clients and keys: creation, authentication, rotation with grace and
//! retention (also under concurrency), revocation, and ownership.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;

use crate::helpers::{assert_problem, json_of, spawn_app, spawn_app_with, TestApp, TestUser};

/// Whether `key` authenticates (a keyed request to an endpoint that takes
/// any principal).
async fn key_works(app: &TestApp, key: &str) -> bool {
    let resource = format!("/v1/locks/probe-{}", uuid::Uuid::new_v4().simple());
    let response = app.keyed(Method::POST, &resource, key).json(&json!({"ttl_ms": 1000})).send().await.unwrap();
    match response.status().as_u16() {
        200 => true,
        401 => false,
        other => panic!("unexpected status {other}"),
    }
}

async fn rotate(app: &TestApp, user: &TestUser, client_id: &str) -> reqwest::Response {
    let path = format!("/v1/clients/{client_id}/keys/rotate");
    app.authed(Method::POST, &path, &user.access_token).send().await.unwrap()
}

#[tokio::test]
async fn a_client_gets_a_key_shown_once_that_authenticates() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let created = app.create_client(&user, json!({"name": "billing", "rate_limit": 600})).await;
    assert_eq!(created["client"]["name"], "billing");
    assert_eq!(created["client"]["rate_limit"], 600);
    assert_eq!(created["client"]["owner_id"], user.id.as_str());
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("sy_live_") && key.len() >= 8 + 64);
    assert!(key_works(&app, key).await);
    // Also as a Bearer token.
    let resource = "/v1/locks/bearer-probe";
    let bearer = app.authed(Method::POST, resource, key).json(&json!({"ttl_ms": 1000})).send().await.unwrap();
    assert_eq!(bearer.status(), 200);

    let list = json_of(app.authed(Method::GET, "/v1/clients", &user.access_token)).await;
    let text = list.to_string();
    assert!(!text.contains(key), "the key is never listed");
    let keys = list["clients"][0]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));
    assert!(keys[0]["last_used_at"].is_string(), "use is recorded");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys").fetch_one(&app.db).await.unwrap();
    assert_ne!(stored, key.as_bytes(), "only a hash is stored");

    assert!(!key_works(&app, "sy_live_0000000000000000000000000000000000000000000000000000000000000000").await);
    let invalid = assert_problem(app.post_json("/v1/clients", &json!({"name": ""})).await, 401).await;
    assert!(invalid["detail"].is_string());
    let bad = app
        .authed(Method::POST, "/v1/clients", &user.access_token)
        .json(&json!({"name": "", "rate_limit": 0}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(bad, 422).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    // A control character (PostgreSQL refuses NUL in text) is a 422, not a 500.
    let nul = app.authed(Method::POST, "/v1/clients", &user.access_token).json(&json!({"name": "a\u{0}b"}));
    assert_eq!(assert_problem(nul.send().await.unwrap(), 422).await["errors"][0]["field"], "name");
}

#[tokio::test]
async fn another_users_clients_and_keys_are_not_found() {
    let app = spawn_app().await;
    let (alice, mallory) = (app.new_user().await, app.new_user().await);
    let created = app.create_client(&alice, json!({"name": "alice-app"})).await;
    let id = created["client"]["id"].as_str().unwrap();
    let key_id = created["key_id"].as_str().unwrap();
    let get = app.authed(Method::GET, &format!("/v1/clients/{id}"), &mallory.access_token).send().await.unwrap();
    assert_problem(get, 404).await;
    assert_problem(rotate(&app, &mallory, id).await, 404).await;
    let delete = app
        .authed(Method::DELETE, &format!("/v1/clients/{id}/keys/{key_id}"), &mallory.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(delete, 404).await;
    let list = json_of(app.authed(Method::GET, "/v1/clients", &mallory.access_token)).await;
    assert_eq!(list["clients"], json!([]));
    assert!(key_works(&app, created["api_key"].as_str().unwrap()).await, "alice's key untouched");
}

#[tokio::test]
async fn rotation_keeps_the_previous_key_for_the_grace_period_and_only_the_newest_keys() {
    let app =
        spawn_app_with(&[("api_key_grace_period_seconds", "0.5"), ("api_key_retention", "2")], OpenApiRouter::new())
            .await;
    let user = app.new_user().await;
    let created = app.create_client(&user, json!({"name": "svc"})).await;
    let id = created["client"]["id"].as_str().unwrap().to_owned();
    let first = created["api_key"].as_str().unwrap().to_owned();
    assert!(key_works(&app, &first).await, "cached as valid");

    let rotated = rotate(&app, &user, &id).await;
    assert_eq!(rotated.status(), 201);
    let rotated: Value = rotated.json().await.unwrap();
    let second = rotated["api_key"].as_str().unwrap().to_owned();
    assert!(rotated["previous_key_expires_at"].is_string());
    assert!(key_works(&app, &second).await, "the new key works at once");
    assert!(key_works(&app, &first).await, "the old key works during the grace period");

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!key_works(&app, &first).await, "the grace period ended");
    assert!(key_works(&app, &second).await);

    // Retention 2: after two more rotations only the newest two are valid.
    let third: Value = rotate(&app, &user, &id).await.json().await.unwrap();
    let fourth: Value = rotate(&app, &user, &id).await.json().await.unwrap();
    assert!(!key_works(&app, &second).await, "beyond retention");
    assert!(key_works(&app, third["api_key"].as_str().unwrap()).await);
    assert!(key_works(&app, fourth["api_key"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once_even_when_cached() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let created = app.create_client(&user, json!({"name": "svc"})).await;
    let key = created["api_key"].as_str().unwrap();
    assert!(key_works(&app, key).await);
    let path = format!(
        "/v1/clients/{}/keys/{}",
        created["client"]["id"].as_str().unwrap(),
        created["key_id"].as_str().unwrap()
    );
    assert_eq!(app.authed(Method::DELETE, &path, &user.access_token).send().await.unwrap().status(), 204);
    assert!(!key_works(&app, key).await);
}

#[tokio::test]
async fn twenty_concurrent_rotations_never_interleave_and_leave_exactly_the_newest_keys() {
    let app =
        spawn_app_with(&[("api_key_grace_period_seconds", "3600"), ("api_key_retention", "2")], OpenApiRouter::new())
            .await;
    let user = app.new_user().await;
    let created = app.create_client(&user, json!({"name": "svc"})).await;
    let id = created["client"]["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url, token) =
            (app.client.clone(), app.url(&format!("/v1/clients/{id}/keys/rotate")), user.access_token.clone());
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["api_key"].as_str().map(String::from), body["key_id"].as_str().map(String::from))
        }));
    }
    let mut issued = Vec::new();
    for task in tasks {
        let (status, key, key_id) = task.await.unwrap();
        assert!(status == 201 || status == 409, "{status}");
        if status == 201 {
            issued.push((key_id.unwrap(), key.unwrap()));
        }
    }
    assert!(!issued.is_empty());
    // Keys in creation order (ids are time-ordered UUIDv7; the database
    // orders by creation time).
    let order: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM api_keys ORDER BY created_at, id").fetch_all(&app.db).await.unwrap();
    let mut all =
        vec![(created["key_id"].as_str().unwrap().to_owned(), created["api_key"].as_str().unwrap().to_owned())];
    all.extend(issued);
    all.sort_by_key(|(id, _)| order.iter().position(|o| o == id).unwrap());
    let working: Vec<bool> = futures::future::join_all(all.iter().map(|(_, key)| key_works(&app, key))).await;
    let expected: Vec<bool> = (0..all.len()).map(|i| i + 2 >= all.len()).collect();
    assert_eq!(working, expected, "exactly the newest two keys work");
}

#[tokio::test]
async fn whoami_names_the_principal_behind_a_key_or_a_token() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let created = app.create_client(&user, json!({"name": "svc"})).await;
    let by_key = json_of(app.keyed(Method::GET, "/v1/auth/whoami", created["api_key"].as_str().unwrap())).await;
    assert_eq!(by_key["kind"], "client");
    assert_eq!(by_key["id"], created["client"]["id"]);
    assert_eq!(by_key["owner_id"], user.id.as_str());
    assert_eq!(by_key["key_id"], created["key_id"]);
    let by_token = json_of(app.authed(Method::GET, "/v1/auth/whoami", &user.access_token)).await;
    assert_eq!(by_token, json!({"kind": "user", "id": user.id}));
}

#[tokio::test]
async fn another_instances_revocation_reaches_the_local_key_cache_within_its_ttl() {
    let app = spawn_app_with(&[("api_key_local_cache_ms", "300")], OpenApiRouter::new()).await;
    let user = app.new_user().await;
    let created = app.create_client(&user, json!({"name": "svc"})).await;
    let key = created["api_key"].as_str().unwrap();
    assert!(key_works(&app, key).await, "resolved from PostgreSQL into the shared cache");
    assert!(key_works(&app, key).await, "read from the shared cache into this process's memory");
    // Another instance revokes it: the row and the shared Redis cache
    // change, this process's memory does not.
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1::uuid")
        .bind(created["key_id"].as_str().unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    for key in app.redis_keys().await.into_iter().filter(|k| k.contains("apikey")) {
        let mut conn = app.redis.clone();
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut conn).await.unwrap();
    }
    assert!(key_works(&app, key).await, "still served from memory inside the window");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(!key_works(&app, key).await, "refused once the local entry expired");
}
