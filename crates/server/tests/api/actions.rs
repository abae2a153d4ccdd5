//! The action flow end to end: PostgreSQL row, audit stream, pub/sub,
//! leaderboards and the last-action cache; limits, idempotent retries, and
//! the repair of side effects that failed after the insert.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use switchyard::domain::Role;
use switchyard_kit::testing::RedisProcess;

use crate::helpers::{assert_problem, json_of, redis_url, spawn_app, spawn_app_with, TestApp, TestUser};

async fn post_action(app: &TestApp, user: &TestUser, body: Value) -> reqwest::Response {
    app.authed(Method::POST, "/v1/actions", &user.access_token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn an_action_lands_in_postgres_the_stream_pubsub_the_boards_and_the_cache() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    let actor_channel = app.state.actions.channel(Some(("user", user.id.parse().unwrap())));
    pubsub.subscribe(&actor_channel).await.unwrap();
    pubsub.subscribe(app.state.actions.channel(None)).await.unwrap();

    let response = post_action(&app, &user, json!({"type": "UPLOAD", "metadata": {"file": "a.png"}})).await;
    assert_eq!(response.status(), 201);
    let action: Value = response.json().await.unwrap();
    assert_eq!(action["type"], "UPLOAD");
    assert_eq!(action["metadata"], json!({"file": "a.png"}));
    assert_eq!(action["actor"], json!({"kind": "user", "id": user.id}));
    let id = action["id"].as_str().unwrap();

    // The row is committed before the answer; `published_at` is set by a
    // batched UPDATE the request does not wait for, so give it a moment.
    let mut row: (String, bool) = (String::new(), false);
    for _ in 0..100 {
        row = sqlx::query_as("SELECT type, published_at IS NOT NULL FROM actions WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
        if row.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((row.0.as_str(), row.1), ("UPLOAD", true));

    let mut messages = pubsub.on_message();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next()).await.unwrap().unwrap();
        let payload: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        assert_eq!(payload["id"], id);
    }

    let entries = app.state.actions.audit("-", 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["id"], id);

    let top = json_of(app.authed(Method::GET, "/v1/leaderboards/actions/top", &user.access_token)).await;
    assert_eq!(top["entries"][0]["member"], format!("user:{}", user.id));
    assert_eq!(top["entries"][0]["score"], 1.0);

    let last = app.authed(Method::GET, "/v1/actions/last", &user.access_token).send().await.unwrap();
    assert_eq!(last.headers()["x-cache"], "hit", "the flow filled the cache");
    assert_eq!(last.json::<Value>().await.unwrap()["id"], id);
}

#[tokio::test]
async fn last_is_cache_aside_and_the_list_pages_newest_first() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_problem(app.authed(Method::GET, "/v1/actions/last", &user.access_token).send().await.unwrap(), 404).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let a: Value = post_action(&app, &user, json!({"type": format!("T{i}")})).await.json().await.unwrap();
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    // Drop the cached entry: the next read is a miss that refills it.
    let cache = switchyard_kit::Cache::new(app.redis.clone(), app.keys.clone(), "last-action");
    cache.bump_version().await.unwrap();
    let miss = app.authed(Method::GET, "/v1/actions/last", &user.access_token).send().await.unwrap();
    assert_eq!(miss.headers()["x-cache"], "miss");
    assert_eq!(miss.json::<Value>().await.unwrap()["id"], ids[4].as_str());
    let hit = app.authed(Method::GET, "/v1/actions/last", &user.access_token).send().await.unwrap();
    assert_eq!(hit.headers()["x-cache"], "hit");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"cache_hits_total{family="last-action"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"cache_misses_total{family="last-action"} 2"#), "{metrics}");

    let first = json_of(app.authed(Method::GET, "/v1/actions?limit=2", &user.access_token)).await;
    let got: Vec<&str> = first["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest =
        json_of(app.authed(Method::GET, &format!("/v1/actions?limit=10&cursor={cursor}"), &user.access_token)).await;
    assert_eq!(rest["actions"].as_array().unwrap().len(), 3);
    assert_eq!(rest["next_cursor"], Value::Null);
    let bad = app.authed(Method::GET, "/v1/actions?limit=101", &user.access_token).send().await.unwrap();
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn the_actions_policy_allows_a_burst_of_ten_then_429() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for _ in 0..10 {
        assert_eq!(post_action(&app, &user, json!({"type": "CLICK"})).await.status(), 201);
    }
    let denied = post_action(&app, &user, json!({"type": "CLICK"})).await;
    assert!(denied.headers()["ratelimit-policy"].to_str().unwrap().contains("actions-burst"));
    assert_problem(denied, 429).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM actions").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 10, "a denied request does nothing");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_action() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let send_body = |body: Value| {
        app.authed(Method::POST, "/v1/actions", &user.access_token)
            .header("idempotency-key", "order-77")
            .json(&body)
            .send()
    };
    let send = || send_body(json!({"type": "PAY", "metadata": {"amount": 5, "currency": "EUR"}}));
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], first["id"]);
    // The same parameters in another order are the same request.
    let reordered = send_body(json!({"metadata": {"currency": "EUR", "amount": 5}, "type": "PAY"})).await.unwrap();
    assert_eq!(reordered.status(), 201);
    // Other parameters under a used key are refused, not answered with the first action.
    let other = send_body(json!({"type": "PAY", "metadata": {"amount": 500, "currency": "EUR"}})).await.unwrap();
    let body = assert_problem(other, 422).await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM actions").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn bad_actions_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let body = assert_problem(post_action(&app, &user, json!({"type": "has space", "metadata": [1]})).await, 422).await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["type", "metadata"]);
    let big = json!({"type": "BIG", "metadata": {"blob": "x".repeat(17 * 1024)}});
    assert_problem(post_action(&app, &user, big).await, 422).await;
    // PostgreSQL cannot store a NUL character: a 422, not a 500.
    let nul = json!({"type": "NUL", "metadata": {"note": "a\u{0}b"}});
    assert_eq!(assert_problem(post_action(&app, &user, nul).await, 422).await["errors"][0]["field"], "metadata");
}

#[tokio::test]
async fn side_effects_lost_after_the_insert_are_repaired_into_the_audit_stream() {
    let mut redis = RedisProcess::start().unwrap();
    let url = redis.url();
    let app = spawn_app_with(&[("redis_url", &url)], utoipa_axum::router::OpenApiRouter::new()).await;
    let user_id = uuid::Uuid::new_v4();
    let principal = switchyard::domain::Principal::User(switchyard::domain::AuthenticatedUser {
        user_id,
        session_id: uuid::Uuid::new_v4(),
        role: Role::User,
    });
    redis.stop();
    let row = app.state.actions.record(&principal, "UPLOAD", json!({})).await.expect("the insert succeeds alone");
    let unpublished: bool = sqlx::query_scalar("SELECT published_at IS NULL FROM actions WHERE id = $1")
        .bind(row.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(unpublished);

    redis.restart().unwrap();
    let mut repaired = 0;
    for _ in 0..50 {
        if let Ok(n) = app.state.actions.repair_once(Duration::ZERO).await {
            repaired = n;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(repaired, 1);
    let entries = app.state.actions.audit("-", 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["id"], row.id.to_string());
    assert_eq!(app.state.actions.repair_once(Duration::ZERO).await.unwrap(), 0, "nothing left to repair");
}

#[tokio::test]
async fn the_audit_stream_is_for_admins() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    post_action(&app, &user, json!({"type": "A"})).await;
    assert_problem(app.authed(Method::GET, "/v1/audit", &user.access_token).send().await.unwrap(), 403).await;
    app.state.identity.create_user("boss", "boss@example.com", "boss-password", Role::Admin).await.unwrap();
    let tokens: Value = app.login("boss@example.com", "boss-password").await.json().await.unwrap();
    let admin = tokens["access_token"].as_str().unwrap();
    let page = json_of(app.authed(Method::GET, "/v1/audit?limit=10", admin)).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(page["entries"][0]["action"]["type"], "A");
    assert!(page["next_cursor"].is_null(), "a page shorter than the limit is the end: {page}");
    let bad = app.authed(Method::GET, "/v1/audit?from=nope", admin).send().await.unwrap();
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "from");
}

#[tokio::test]
async fn concurrent_actions_are_group_committed_and_each_answered_with_its_own_row() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let created = json_of(
        app.authed(Method::POST, "/v1/clients", &user.access_token)
            .json(&json!({"name": "busy", "rate_limit": 100000})),
    )
    .await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (client, url, key) = (app.client.clone(), app.url("/v1/actions"), key.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("x-api-key", key)
                    .json(&json!({"type": "T", "metadata": {"i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["metadata"]["i"], i, "each request gets its own row back");
                body["id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap());
    }
    assert_eq!(ids.len(), 200);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM actions").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 200);
    assert_eq!(app.state.actions.audit("-", 1000).await.unwrap().len(), 200, "every action reached the audit stream");
}

#[tokio::test]
async fn metadata_numbers_at_the_edges_of_a_double_read_back_as_written() {
    // jsonb once stored these as 300-digit decimals that no longer parsed
    // as doubles, leaving the account's log unreadable.
    let app = spawn_app().await;
    let user = app.new_user().await;
    let metadata = json!({"max": f64::MAX, "min": f64::MIN, "tiny": 5e-324, "small": 1.755867129564469e-256});
    let r = app
        .authed(Method::POST, "/v1/actions", &user.access_token)
        .json(&json!({"type": "EDGE", "metadata": metadata}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let listed = json_of(app.authed(Method::GET, "/v1/actions", &user.access_token)).await;
    assert_eq!(listed["actions"][0]["metadata"], metadata);
}
