//! /health, /ready and /metrics.

use std::time::Duration;

use serde_json::Value;
use switchyard_kit::testing::RedisProcess;
use utoipa_axum::router::OpenApiRouter;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_is_200_with_a_status() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_reports_each_dependency_when_all_are_up() {
    let app = spawn_app().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["postgres"]["status"], "up");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert!(body["checks"]["redis"]["latency_ms"].is_number());
    assert!(body["checks"]["redis"]["maxmemory_policy"].is_string());
}

#[tokio::test]
async fn ready_turns_503_naming_redis_when_redis_dies_and_recovers_after() {
    let mut redis = RedisProcess::start().unwrap();
    let url = redis.url();
    let app = spawn_app_with(&[("redis_url", &url), ("ready_check_timeout_ms", "500")], OpenApiRouter::new()).await;
    assert_eq!(app.get("/ready").await.status(), 200);

    redis.stop();
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert!(body["checks"]["redis"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], "up");
    // Liveness does not depend on Redis.
    assert_eq!(app.get("/health").await.status(), 200);

    redis.restart().unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/ready").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "/ready returns to 200 once Redis is back");
}

#[tokio::test]
async fn ready_warns_when_redis_may_evict_durable_keys() {
    let redis = RedisProcess::start().unwrap();
    let mut conn = switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis.url()).unwrap())
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .unwrap();
    let app = spawn_app_with(&[("redis_url", &redis.url())], OpenApiRouter::new()).await;
    let body: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["redis"]["maxmemory_policy"], "allkeys-lru");
    assert_eq!(body["checks"]["redis"]["eviction_risk"], true);
    assert!(body["warnings"][0].as_str().unwrap().contains("noeviction"), "{body}");
}

#[tokio::test]
async fn ready_names_postgres_when_the_database_is_gone() {
    let app = spawn_app_with(&[("ready_check_timeout_ms", "500")], OpenApiRouter::new()).await;
    // Terminate this test database's connections from outside, then make
    // new ones impossible: the pool cannot reconnect.
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&crate::helpers::admin_database_url()).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&app.db).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false"#)))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"]["status"], "down", "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true"#)))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status_and_show_pool_gauges() {
    let app = spawn_app().await;
    app.get("/health").await;
    app.get("/health").await;
    app.get("/no/such/route").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/health",status="200"} 2"#), "{text}");
    assert!(text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#), "{text}");
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"), "{text}");
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/health",status="200",le="0.005"}"#)
    );
    assert!(text.contains(r#"db_pool_connections{state="idle"}"#), "{text}");
    assert!(text.contains("db_pool_max_connections 5"), "{text}");
    assert!(!text.contains("/no/such/route"), "raw paths never become labels");
}
