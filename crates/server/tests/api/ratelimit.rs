//! Rate limiting over HTTP: the check service, policies with their
//! headers, client IPs behind proxies, shadow mode, allow/deny lists,
//! per-client overrides, and the failure modes with Redis down.

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_kit::testing::RedisProcess;

use crate::helpers::{assert_problem, json_of, spawn_app, spawn_app_with_policies, TestApp};

async fn api_key(app: &TestApp, rate_limit: Option<i64>) -> String {
    let user = app.new_user().await;
    let body = json!({"name": "svc", "rate_limit": rate_limit});
    let created = json_of(app.authed(Method::POST, "/v1/clients", &user.access_token).json(&body)).await;
    created["api_key"].as_str().unwrap().to_owned()
}

async fn check(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.keyed(Method::POST, "/v1/ratelimit/check", key).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn the_check_service_decides_and_reports_like_a_limiter() {
    let app = spawn_app().await;
    let key = api_key(&app, None).await;
    let spec = json!({"key": "upload:42", "algorithm": "fixed_window", "limit": 2, "window_ms": 60000});
    let first: Value = check(&app, &key, spec.clone()).await.json().await.unwrap();
    assert_eq!(first["allowed"], true);
    assert_eq!((first["limit"].as_u64(), first["remaining"].as_u64()), (Some(2), Some(1)));
    assert_eq!(first["retry_after_ms"], Value::Null);
    check(&app, &key, spec.clone()).await;
    let denied: Value = check(&app, &key, spec.clone()).await.json().await.unwrap();
    assert_eq!(denied["allowed"], false);
    assert!(denied["retry_after_ms"].as_u64().unwrap() <= 60_000);

    let status = json_of(app.keyed(
        Method::GET,
        "/v1/ratelimit/status?key=upload:42&algorithm=fixed_window&limit=2&window_ms=60000",
        &key,
    ))
    .await;
    assert_eq!((status["allowed"].as_bool(), status["remaining"].as_u64()), (Some(false), Some(0)));

    // Another client's identical key is a different counter.
    let other = api_key(&app, None).await;
    let theirs: Value = check(&app, &other, spec).await.json().await.unwrap();
    assert_eq!(theirs["allowed"], true);
}

#[tokio::test]
async fn the_check_service_validates_every_field_and_needs_an_api_key() {
    let app = spawn_app().await;
    let key = api_key(&app, None).await;
    let body =
        assert_problem(check(&app, &key, json!({"key": "", "algorithm": "token_bucket", "cost": 0})).await, 422).await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["key", "capacity", "refill_per_sec", "cost"]);
    let body = assert_problem(check(&app, &key, json!({"key": "k", "algorithm": "leaky"})).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "algorithm");
    assert_problem(app.post_json("/v1/ratelimit/check", &json!({"key": "k"})).await, 401).await;
    let user = app.new_user().await;
    let with_token = app
        .authed(Method::POST, "/v1/ratelimit/check", &user.access_token)
        .json(&json!({"key": "k", "algorithm": "gcra", "rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_problem(with_token, 403).await;
}

#[tokio::test]
async fn an_exact_sliding_log_takes_a_cost_of_a_million_in_one_entry() {
    let app = spawn_app().await;
    let key = api_key(&app, None).await;
    let spec = |cost: u64| json!({"key": "bulk", "algorithm": "sliding_window", "limit": 1_000_000, "window_ms": 60_000, "cost": cost});
    let first: Value = check(&app, &key, spec(1_000_000)).await.json().await.unwrap();
    assert_eq!((first["allowed"].as_bool(), first["remaining"].as_u64()), (Some(true), Some(0)), "{first}");
    let denied: Value = check(&app, &key, spec(1)).await.json().await.unwrap();
    assert_eq!(denied["allowed"], false, "{denied}");
    let retry = denied["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 60_000, "{denied}");
    // The log holds the request, not a million units of it.
    let mut conn = app.redis.clone();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*bulk*", app.keys.prefix())).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty());
    let mut entries = 0u64;
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query_async(&mut conn).await.unwrap();
        if kind == "zset" {
            entries += redis::cmd("ZCARD").arg(&k).query_async::<u64>(&mut conn).await.unwrap();
        }
    }
    assert_eq!(entries, 1, "one log entry for one request");
}

#[tokio::test]
async fn a_batch_is_decided_in_order_and_a_bad_item_consumes_nothing() {
    let app = spawn_app().await;
    let key = api_key(&app, None).await;
    let one = json!({"key": "a", "algorithm": "token_bucket", "capacity": 1, "refill_per_sec": 0.001});
    let batch = json!({"checks": [one, {"key": "b", "algorithm": "gcra", "rate": 1.0, "burst": 0}, one]});
    let response = json_of(app.keyed(Method::POST, "/v1/ratelimit/check:batch", &key).json(&batch)).await;
    let allowed: Vec<bool> =
        response["results"].as_array().unwrap().iter().map(|r| r["allowed"].as_bool().unwrap()).collect();
    assert_eq!(allowed, [true, true, false]);

    let bad = json!({"checks": [{"key": "c", "algorithm": "fixed_window", "limit": 1, "window_ms": 60000}, {"key": "d", "algorithm": "fixed_window"}]});
    let body = assert_problem(
        app.keyed(Method::POST, "/v1/ratelimit/check:batch", &key).json(&bad).send().await.unwrap(),
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "checks[1].limit");
    let c: Value = check(&app, &key, json!({"key": "c", "algorithm": "fixed_window", "limit": 1, "window_ms": 60000}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["allowed"], true, "the rejected batch consumed nothing");
}

fn user_policy(limits: Value, extra: Value) -> Value {
    let mut policy = json!({"name": "users", "group": "api", "principal": "user", "limits": limits, "limit_names": ["burst", "hourly"]});
    policy.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!([policy])
}

#[tokio::test]
async fn limited_routes_carry_ratelimit_headers_and_429_names_the_policy() {
    let limits = json!([{"algorithm": "fixed_window", "limit": 3, "window_ms": 60000}, {"algorithm": "fixed_window", "limit": 100, "window_ms": 3600000}]);
    let app = spawn_app_with_policies(&[], user_policy(limits, json!({}))).await;
    let user = app.new_user().await;
    let me = || app.authed(Method::GET, "/v1/me", &user.access_token).send();
    let first = me().await.unwrap();
    assert_eq!(first.status(), 200);
    let h = first.headers();
    assert_eq!(h["ratelimit-policy"], r#""burst";q=3;w=60, "hourly";q=100;w=3600"#);
    assert_eq!(h["ratelimit-limit"], "3");
    assert_eq!(h["ratelimit-remaining"], "2");
    assert!(h["ratelimit"].to_str().unwrap().starts_with(r#""burst";r=2;t="#), "{:?}", h["ratelimit"]);
    me().await.unwrap();
    me().await.unwrap();
    let denied = me().await.unwrap();
    assert_eq!(denied.headers()["ratelimit-remaining"], "0");
    let retry: u64 = denied.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let state = denied.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(state.contains(r#""hourly";r=97"#), "denied requests consumed nothing from the hourly limit: {state}");
    let body = assert_problem(denied, 429).await;
    assert!(body["detail"].as_str().unwrap().contains("users"));
    // Unlimited routes carry no headers.
    assert!(!app.get("/health").await.headers().contains_key("ratelimit-policy"));
}

#[tokio::test]
async fn a_429_says_one_wait_in_retry_after_ratelimit_reset_and_the_binding_limit() {
    let algorithms = [
        (json!({"algorithm": "fixed_window", "limit": 3, "window_ms": 60000}), 60),
        (json!({"algorithm": "sliding_window", "limit": 3, "window_ms": 60000}), 60),
        // The approximate window still weighs the previous window's count
        // after the current one ends: a wait can reach two windows.
        (json!({"algorithm": "sliding_window_approx", "limit": 3, "window_ms": 60000}), 120),
        (json!({"algorithm": "token_bucket", "capacity": 3, "refill_per_sec": 0.05}), 20),
        (json!({"algorithm": "gcra", "rate": 0.05, "burst": 2}), 20),
    ];
    for (limit, longest) in algorithms {
        let policy =
            json!([{"name": "users", "group": "api", "principal": "user", "limits": [limit], "limit_names": ["only"]}]);
        let app = spawn_app_with_policies(&[], policy).await;
        let user = app.new_user().await;
        let mut denied = None;
        for _ in 0..10 {
            let response = app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap();
            if response.status() == 429 {
                denied = Some(response);
                break;
            }
        }
        let denied = denied.unwrap_or_else(|| panic!("{limit} denies within 10 requests"));
        let header = |name: &str| denied.headers()[name].to_str().unwrap().to_owned();
        let retry: u64 = header("retry-after").parse().unwrap();
        assert!((1..=longest).contains(&retry), "{limit}: retry-after {retry}");
        assert_eq!(header("ratelimit-reset"), retry.to_string(), "{limit}");
        assert_eq!(header("ratelimit"), format!(r#""only";r=0;t={retry}"#), "{limit}");
    }
}

fn ip_policy(limit: u64) -> Value {
    json!([{"name": "anon", "group": "api", "principal": "anonymous", "limits": [{"algorithm": "fixed_window", "limit": limit, "window_ms": 60000}]}])
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with_policies(&[], ip_policy(2)).await;
    for i in 0..2 {
        let r = app
            .request(Method::GET, "/v1/none")
            .await
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let spoofed =
        app.request(Method::GET, "/v1/none").await.header("x-forwarded-for", "198.51.100.7").send().await.unwrap();
    assert_problem(spoofed, 429).await;

    let app = spawn_app_with_policies(&[("rate_limit_trusted_proxies", "127.0.0.1/32")], ip_policy(2)).await;
    for i in 0..3 {
        let r = app
            .request(Method::GET, "/v1/none")
            .await
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "each forwarded client has its own budget");
    }
}

#[tokio::test]
async fn a_shadow_policy_counts_but_never_denies() {
    let limits = json!([{"algorithm": "fixed_window", "limit": 1, "window_ms": 60000}]);
    let app = spawn_app_with_policies(&[], user_policy(limits, json!({"shadow": true, "limit_names": []}))).await;
    let user = app.new_user().await;
    for _ in 0..3 {
        let r = app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!r.headers().contains_key("ratelimit-policy"));
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"ratelimit_decisions_total{policy="users",outcome="shadow_denied"} 2"#), "{metrics}");
}

#[tokio::test]
async fn deny_and_allow_lists_are_checked_before_any_counter() {
    let app = spawn_app_with_policies(&[("rate_limit_deny", "ip:127.0.0.1")], ip_policy(1)).await;
    assert_problem(app.get("/v1/none").await, 403).await;
    let app = spawn_app_with_policies(&[("rate_limit_allow", "ip:127.0.0.1")], ip_policy(1)).await;
    for _ in 0..3 {
        let r = app.get("/v1/none").await;
        assert_eq!(r.status(), 404);
        assert!(!r.headers().contains_key("ratelimit-limit"));
    }
}

#[tokio::test]
async fn a_clients_own_rate_limit_overrides_the_policy() {
    let app = spawn_app().await;
    let key = api_key(&app, Some(2)).await;
    let whoami = || app.keyed(Method::GET, "/v1/auth/whoami", &key).send();
    assert_eq!(whoami().await.unwrap().headers()["ratelimit-limit"], "2");
    whoami().await.unwrap();
    assert_problem(whoami().await.unwrap(), 429).await;
}

async fn app_on_dead_redis(mode: &str, limit: u64) -> (TestApp, RedisProcess) {
    let mut redis = RedisProcess::start().unwrap();
    let url = redis.url();
    let policies = json!([{"name": "anon", "group": "api", "principal": "anonymous", "on_redis_error": mode,
        "limits": [{"algorithm": "fixed_window", "limit": limit, "window_ms": 60000}]}]);
    let app = spawn_app_with_policies(&[("redis_url", &url)], policies).await;
    redis.stop();
    (app, redis)
}

#[tokio::test]
async fn with_redis_down_fail_open_allows() {
    let (app, _redis) = app_on_dead_redis("fail_open", 1).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/none").await.status(), 404);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"ratelimit_fallbacks_total{policy="anon",mode="fail_open"} 3"#), "{metrics}");
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["checks"]["rate_limiting"], "degraded");
}

#[tokio::test]
async fn with_redis_down_fail_closed_refuses() {
    let (app, _redis) = app_on_dead_redis("fail_closed", 100).await;
    assert_problem(app.get("/v1/none").await, 503).await;
}

#[tokio::test]
async fn with_redis_down_local_limits_in_process() {
    let (app, _redis) = app_on_dead_redis("local", 2).await;
    assert_eq!(app.get("/v1/none").await.status(), 404);
    assert_eq!(app.get("/v1/none").await.status(), 404);
    assert_problem(app.get("/v1/none").await, 429).await;
}

/// While Redis restarts and reloads its data it answers LOADING: every
/// request that needs it then is a 503 with Retry-After, never a 500.
#[tokio::test]
async fn requests_while_redis_loads_its_data_are_503s_with_retry_after() {
    let mut redis = RedisProcess::start_with(&[
        "--enable-debug-command",
        "yes",
        // About 100 µs per key while loading, and requests answered meanwhile.
        "--key-load-delay",
        "100",
        "--loading-process-events-interval-bytes",
        "1024",
    ])
    .unwrap();
    let url = redis.url();
    let app = crate::helpers::spawn_app_with(&[("redis_url", &url)], utoipa_axum::router::OpenApiRouter::new()).await;
    let user = app.new_user().await;
    let conn =
        switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&url).unwrap()).await.unwrap();
    let mut c = conn.clone();
    redis::cmd("DEBUG").arg("POPULATE").arg(40_000).arg("filler").query_async::<()>(&mut c).await.unwrap();
    redis::cmd("SAVE").query_async::<()>(&mut c).await.unwrap();
    redis.restart().unwrap();

    let mut unavailable = 0;
    for _ in 0..200 {
        let response = app.authed(Method::GET, "/v1/leaderboards/b/top", &user.access_token).send().await.unwrap();
        match response.status().as_u16() {
            503 => {
                assert!(response.headers().contains_key("retry-after"), "a 503 says when to retry");
                assert_problem(response, 503).await;
                unavailable += 1;
            }
            200 => break,
            other => panic!("a request during loading answered {other}: {}", response.text().await.unwrap()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(unavailable > 0, "some requests ran while Redis was loading");
}
