//! Locks over HTTP: exclusive, holder-only release and extend, fencing
//! tokens, and per-tenant namespaces.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of, spawn_app};

#[tokio::test]
async fn a_lock_is_exclusive_released_only_by_its_holder_and_fenced() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let lock = |body: Value| app.authed(Method::POST, "/v1/locks/report-42", &user.access_token).json(&body).send();

    let first = lock(json!({"ttl_ms": 5000})).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let token = first["token"].as_str().unwrap().to_owned();
    assert!(first["expires_at"].is_string());
    assert_problem(lock(json!({"ttl_ms": 5000})).await.unwrap(), 409).await;

    let extend = app
        .authed(Method::POST, "/v1/locks/report-42/extend", &user.access_token)
        .json(&json!({"token": token, "ttl_ms": 10000}))
        .send()
        .await
        .unwrap();
    assert_eq!(extend.status(), 200);
    assert_eq!(extend.json::<Value>().await.unwrap()["fencing_token"], first["fencing_token"]);

    let release = |token: String| {
        app.authed(Method::DELETE, "/v1/locks/report-42", &user.access_token).json(&json!({"token": token})).send()
    };
    assert_problem(release("not-the-token".into()).await.unwrap(), 409).await;
    assert_eq!(release(token.clone()).await.unwrap().status(), 204);
    assert_problem(release(token).await.unwrap(), 409).await;

    let second: Value = lock(json!({"ttl_ms": 5000})).await.unwrap().json().await.unwrap();
    assert!(second["fencing_token"].as_u64().unwrap() > first["fencing_token"].as_u64().unwrap());
    // DELETE without a body: the token in the Lock-Token header or the query.
    let second_token = second["token"].as_str().unwrap();
    let no_token = app.authed(Method::DELETE, "/v1/locks/report-42", &user.access_token).send().await.unwrap();
    assert_eq!(assert_problem(no_token, 422).await["errors"][0]["field"], "token");
    let by_header = app
        .authed(Method::DELETE, "/v1/locks/report-42", &user.access_token)
        .header("lock-token", second_token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 204);
    let third: Value = lock(json!({"ttl_ms": 5000})).await.unwrap().json().await.unwrap();
    let path = format!("/v1/locks/report-42?token={}", third["token"].as_str().unwrap());
    assert_eq!(app.authed(Method::DELETE, &path, &user.access_token).send().await.unwrap().status(), 204);
}

#[tokio::test]
async fn tenants_do_not_share_lock_names_and_bad_input_is_named() {
    let app = spawn_app().await;
    let (a, b) = (app.new_user().await, app.new_user().await);
    for user in [&a, &b] {
        let r = app
            .authed(Method::POST, "/v1/locks/shared-name", &user.access_token)
            .json(&json!({"ttl_ms": 5000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "each tenant has its own namespace");
    }
    let r = app.authed(Method::POST, "/v1/locks/x", &a.access_token).json(&json!({"ttl_ms": 0})).send().await.unwrap();
    assert_eq!(assert_problem(r, 422).await["errors"][0]["field"], "ttl_ms");
    let r = app.post_json("/v1/locks/x", &json!({"ttl_ms": 10})).await;
    assert_problem(r, 401).await;
}

#[tokio::test]
async fn a_waiting_acquire_gets_the_lock_when_the_holder_releases() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let held =
        json_of(app.authed(Method::POST, "/v1/locks/queue", &user.access_token).json(&json!({"ttl_ms": 5000}))).await;
    let waiter = {
        let (client, url, token) = (app.client.clone(), app.url("/v1/locks/queue"), user.access_token.clone());
        tokio::spawn(async move {
            client.post(url).bearer_auth(token).json(&json!({"ttl_ms": 5000, "wait_ms": 5000})).send().await.unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let release = app
        .authed(Method::DELETE, "/v1/locks/queue", &user.access_token)
        .json(&json!({"token": held["token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(release.status(), 204);
    let got = waiter.await.unwrap();
    assert_eq!(got.status(), 200);
}

#[tokio::test]
async fn a_release_with_a_null_body_takes_its_token_from_the_header() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let lease =
        json_of(app.authed(Method::POST, "/v1/locks/nightly", &user.access_token).json(&json!({"ttl_ms": 5000}))).await;
    let release = app
        .authed(Method::DELETE, "/v1/locks/nightly", &user.access_token)
        .header("lock-token", lease["token"].as_str().unwrap())
        .header("content-type", "application/json")
        .body("null");
    assert_eq!(release.send().await.unwrap().status(), 204);
}
