//! Usage analytics, the reports half: the live counters (fed straight to
//! the `counters` observer, as the recorder would), the daily roll-up
//! (over `activity` rows inserted with SQL: the recorder is not needed),
//! and the `/v1/analytics` reports with their cache.

use chrono::{DateTime, Days, NaiveDate, Utc};
use reqwest::Method;
use serde_json::Value;
use switchyard::analytics::counters::{Breakdown, Subject};
use switchyard::analytics::report_cache::ReportKey;
use switchyard::analytics::{ActivityRecord, BatchObserver, PrincipalKind, Reports};
use switchyard::config::AnalyticsSettings;
use switchyard_kit::CacheStatus;
use uuid::Uuid;

use crate::helpers::{assert_problem, json_of, TestApp, TestUser};

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).unwrap()
}

/// Noon of `day`, plus `n` milliseconds (distinct times for distinct rows).
fn at(day: NaiveDate, n: u64) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap().and_utc() + chrono::TimeDelta::milliseconds(i64::try_from(n).unwrap())
}

/// A request of `account` (through `client` when given).
fn record(
    occurred_at: DateTime<Utc>,
    account: Uuid,
    client: Option<Uuid>,
    route: &str,
    status: u16,
    latency_us: u64,
) -> ActivityRecord {
    ActivityRecord {
        id: Uuid::now_v7(),
        occurred_at,
        request_id: Uuid::new_v4().to_string(),
        principal_kind: if client.is_some() { PrincipalKind::Client } else { PrincipalKind::User },
        user_id: if client.is_some() { None } else { Some(account) },
        client_id: client,
        account_id: Some(account),
        method: "GET".into(),
        route: route.to_owned().into(),
        status,
        latency_us,
        request_bytes: 0,
        response_bytes: 100,
        client_ip: Some([203, 0, 113, 7].into()),
        user_agent: None,
    }
}

async fn insert_activity(app: &TestApp, records: &[ActivityRecord]) {
    for r in records {
        sqlx::query(
            "INSERT INTO activity (id, occurred_at, request_id, principal_kind, user_id, client_id, account_id, method,
                                   route, status, latency_us, request_bytes, response_bytes, client_ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(r.id)
        .bind(r.occurred_at)
        .bind(&r.request_id)
        .bind(r.principal_kind.as_str())
        .bind(r.user_id)
        .bind(r.client_id)
        .bind(r.account_id)
        .bind(r.method.as_ref())
        .bind(r.route.as_ref())
        .bind(i16::try_from(r.status).unwrap())
        .bind(i64::try_from(r.latency_us).unwrap())
        .bind(0_i64)
        .bind(0_i64)
        .bind(r.client_ip.map(|ip| ip.to_string()))
        .bind(&r.user_agent)
        .execute(&app.db)
        .await
        .unwrap();
    }
}

/// 100 requests: 98 at 0.8 ms, one at 40 ms (an error), one at 20 s:
/// p50 reads 1 ms (its bucket's bound), p99 50 ms.
fn known_latencies(day: NaiveDate, account: Uuid, client: Option<Uuid>) -> Vec<ActivityRecord> {
    (0..100_u64)
        .map(|n| {
            let (status, latency) = match n {
                98 => (500, 40_000),
                99 => (200, 20_000_000),
                _ => (200, 800),
            };
            record(at(day, n), account, client, "/v1/leaderboards/{board}", status, latency)
        })
        .collect()
}

/// An app that does not record its own requests: these tests feed the
/// counters and the activity table themselves and count exactly.
async fn spawn_unrecorded() -> TestApp {
    crate::helpers::spawn_app_with(&[("activity_enabled", "false")], utoipa_axum::router::OpenApiRouter::new()).await
}

fn uuid_of(user: &TestUser) -> Uuid {
    user.id.parse().unwrap()
}

async fn get(app: &TestApp, path: &str, user: &TestUser) -> reqwest::Response {
    app.authed(Method::GET, path, &user.access_token).send().await.unwrap()
}

fn x_cache(response: &reqwest::Response) -> String {
    response.headers().get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned()
}

#[tokio::test]
async fn hyperloglogs_count_ten_thousand_distinct_callers_within_two_percent() {
    let app = spawn_unrecorded().await;
    let admin = app.new_admin().await;
    let counters = app.state.reports.counters();
    let now = Utc::now();
    let records: Vec<ActivityRecord> = (0..10_000_u32)
        .map(|n| {
            let mut r = record(now, Uuid::new_v4(), None, "/v1/locks/{resource}", 200, 1_000);
            r.client_ip = Some([10, (n >> 16) as u8, (n >> 8) as u8, n as u8].into());
            r
        })
        .collect();
    for batch in records.chunks(500) {
        counters.observe(batch).await.unwrap();
    }
    let within = |count: u64| (9_800..=10_200).contains(&count);
    let visitors = json_of(app.authed(
        Method::GET,
        &format!("/v1/analytics/unique-visitors?date={}", today()),
        &admin.access_token,
    ))
    .await;
    assert!(within(visitors["count"].as_u64().unwrap()), "{visitors}");
    // The admin's own sign-in requests are not recorded here: only the fed ones count.
    let active = json_of(app.authed(Method::GET, "/v1/analytics/active-users?window=week", &admin.access_token)).await;
    assert_eq!(active["window"], "week");
    assert!(within(active["count"].as_u64().unwrap()), "{active}");
}

#[tokio::test]
async fn the_counters_equal_the_records_fed() {
    let app = spawn_unrecorded().await;
    let admin = app.new_admin().await;
    let counters = app.state.reports.counters();
    let (account, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (client_a, client_b) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    let mut records = Vec::new();
    for n in 0..7 {
        records.push(record(now, account, Some(client_a), "/v1/locks/{resource}", if n < 2 { 404 } else { 200 }, 800));
    }
    for _ in 0..3 {
        records.push(record(now, account, Some(client_b), "/v1/events:batch", 200, 30_000));
    }
    records.push(record(now, account, None, "/v1/events:batch", 503, 30_000));
    records.push(record(now, other, None, "/v1/locks/{resource}", 200, 800));
    // Two batches, as the recorder would send them.
    counters.observe(&records[..5]).await.unwrap();
    counters.observe(&records[5..]).await.unwrap();

    let day = [today()];
    let a = &counters.subject_usage(&day, Subject::Client(client_a)).await.unwrap()[0];
    assert_eq!((a.requests, a.errors, a.histogram.iter().sum::<u64>()), (7, 2, 7));
    let whole = &counters.subject_usage(&day, Subject::Account(account)).await.unwrap()[0];
    assert_eq!((whole.requests, whole.errors), (11, 3));
    let routes = counters.breakdown(today(), Breakdown::Routes).await.unwrap();
    let batch = &routes["GET /v1/events:batch"];
    assert_eq!((batch.requests, batch.errors, batch.p99_ms()), (4, 1, Some(50.0)));
    assert_eq!(routes["GET /v1/locks/{resource}"].requests, 8);
    let clients = counters.breakdown(today(), Breakdown::Clients).await.unwrap();
    assert_eq!((clients[&client_a.to_string()].requests, clients[&client_b.to_string()].requests), (7, 3));

    // The same through the admin reports.
    let path = format!("/v1/analytics/top-users?date={}&limit=2", today());
    let top = json_of(app.authed(Method::GET, &path, &admin.access_token)).await;
    assert_eq!(top["users"][0]["user_id"], account.to_string());
    assert_eq!((top["users"][0]["requests"].as_u64(), top["users"][1]["requests"].as_u64()), (Some(11), Some(1)));
    let path = format!("/v1/analytics/top-routes?from={}&to={}", today(), today());
    let top = json_of(app.authed(Method::GET, &path, &admin.access_token)).await;
    assert_eq!(top["routes"][0]["route"], "/v1/locks/{resource}");
    assert_eq!((top["routes"][0]["requests"].as_u64(), top["routes"][1]["errors"].as_u64()), (Some(8), Some(1)));
    let path = format!("/v1/analytics/top-clients?from={}&to={}&limit=1", today(), today());
    let top = json_of(app.authed(Method::GET, &path, &admin.access_token)).await;
    assert_eq!(top["clients"].as_array().unwrap().len(), 1);
    assert_eq!(
        (top["clients"][0]["client_id"].as_str(), top["clients"][0]["errors"].as_u64()),
        (Some(client_a.to_string().as_str()), Some(2))
    );
}

async fn usage_rows(app: &TestApp, day: NaiveDate) -> Vec<(Option<Uuid>, String, i64, i64, Vec<i64>)> {
    sqlx::query_as(
        "SELECT client_id, route, requests, errors, latency_histogram FROM usage_daily WHERE day = $1 ORDER BY client_id, route",
    )
    .bind(day)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_daily_rollup_is_idempotent_and_its_percentiles_match_a_known_latency_set() {
    let app = spawn_unrecorded().await;
    let user = app.new_user().await;
    let account = uuid_of(&user);
    let day = days_ago(2);
    let mut records = known_latencies(day, account, None);
    records.push(record(at(days_ago(1), 0), account, None, "/v1/locks/{resource}", 200, 100));
    insert_activity(&app, &records).await;

    let rollup = app.state.reports.rollup();
    assert_eq!(rollup.roll_day(day).await.unwrap(), 1);
    let first = usage_rows(&app, day).await;
    assert_eq!(rollup.roll_day(day).await.unwrap(), 1);
    assert_eq!(usage_rows(&app, day).await, first, "rolling a day again gives the same rows");
    let (_, route, requests, errors, histogram) = &first[0];
    assert_eq!((route.as_str(), *requests, *errors), ("/v1/leaderboards/{board}", 100, 1));
    assert_eq!(histogram.iter().sum::<i64>(), 100);
    assert_eq!(histogram.len(), switchyard::analytics::usage::BUCKETS);

    // Catching up rolls every finished day not rolled yet, and only those.
    let rolled = rollup.catch_up(today()).await.unwrap();
    assert!(rolled.contains(&days_ago(1)) && !rolled.contains(&day) && !rolled.contains(&today()), "{rolled:?}");
    assert!(rollup.catch_up(today()).await.unwrap().is_empty(), "nothing left to roll");
    assert_eq!(usage_rows(&app, days_ago(1)).await.len(), 1);

    let path = format!("/v1/analytics/usage/daily?from={day}&to={day}");
    let report = json_of(app.authed(Method::GET, &path, &user.access_token)).await;
    let entry = &report["days"][0];
    assert_eq!((entry["requests"].as_u64(), entry["errors"].as_u64()), (Some(100), Some(1)));
    assert_eq!((entry["p50_ms"].as_f64(), entry["p99_ms"].as_f64()), (Some(1.0), Some(50.0)), "{report}");
}

#[tokio::test]
async fn daily_usage_has_every_day_of_the_range_past_days_rolled_up_and_today_live() {
    let app = spawn_unrecorded().await;
    let user = app.new_user().await;
    let account = uuid_of(&user);
    let client: Uuid = app.create_client(&user, serde_json::json!({"name": "reporter"})).await["client"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Two days ago: in the activity table only, rolled up.
    let mut past = known_latencies(days_ago(2), account, Some(client));
    past.push(record(at(days_ago(2), 500), account, None, "/v1/locks/{resource}", 200, 800));
    insert_activity(&app, &past).await;
    app.state.reports.rollup().roll_day(days_ago(2)).await.unwrap();
    // Today: in the live counters only.
    let now = Utc::now();
    let live = vec![
        record(now, account, Some(client), "/v1/locks/{resource}", 200, 3_000),
        record(now, account, None, "/v1/locks/{resource}", 429, 3_000),
    ];
    app.state.reports.counters().observe(&live).await.unwrap();

    let path = format!("/v1/analytics/usage/daily?from={}&to={}", days_ago(4), today());
    let response = get(&app, &path, &user).await;
    assert_eq!(response.status(), 200);
    assert_eq!(x_cache(&response), "miss");
    let report: Value = response.json().await.unwrap();
    let days = report["days"].as_array().unwrap();
    let dates: Vec<&str> = days.iter().map(|d| d["date"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..=4).rev().map(|n| days_ago(n).to_string()).collect();
    assert_eq!(dates, expected, "one entry per day, in order");
    let counts: Vec<(u64, u64)> =
        days.iter().map(|d| (d["requests"].as_u64().unwrap(), d["errors"].as_u64().unwrap())).collect();
    assert_eq!(counts, [(0, 0), (0, 0), (101, 1), (0, 0), (2, 1)]);
    assert_eq!(days[0]["p50_ms"], Value::Null, "no requests, no percentile");
    assert_eq!(days[4]["p99_ms"].as_f64(), Some(5.0));

    // One client of the account.
    let path = format!("/v1/analytics/usage/daily?client_id={client}&from={}&to={}", days_ago(2), today());
    let report = json_of(app.authed(Method::GET, &path, &user.access_token)).await;
    let counts: Vec<u64> = report["days"].as_array().unwrap().iter().map(|d| d["requests"].as_u64().unwrap()).collect();
    assert_eq!(counts, [100, 0, 1]);
}

#[tokio::test]
async fn a_second_identical_report_is_a_cache_hit_until_the_cache_version_changes() {
    let app = spawn_unrecorded().await;
    let user = app.new_user().await;
    let path = format!("/v1/analytics/usage/daily?from={}&to={}", days_ago(9), days_ago(3));
    let first = get(&app, &path, &user).await;
    assert_eq!((first.status().as_u16(), x_cache(&first)), (200, "miss".to_owned()));
    let first: Value = first.json().await.unwrap();
    let second = get(&app, &path, &user).await;
    assert_eq!(x_cache(&second), "hit");
    assert_eq!(second.json::<Value>().await.unwrap(), first);

    let reports = &app.state.reports;
    let key = ReportKey::UsageDaily { account: uuid_of(&user), client: None, from: days_ago(9), to: days_ago(3) };
    assert_eq!(reports.cache().key_stats(&key, today()).await.unwrap(), (1, 1), "counted per key");

    // The same deployment after CACHE_VERSION is bumped: every report misses once.
    let bumped = with_version(&app, "v2");
    let principal = switchyard::domain::Principal::User(switchyard::domain::AuthenticatedUser {
        user_id: uuid_of(&user),
        session_id: Uuid::new_v4(),
        role: switchyard::domain::Role::User,
    });
    let (_, status) = bumped.usage_daily(&principal, None, days_ago(9), days_ago(3)).await.unwrap();
    assert_eq!(status, CacheStatus::Miss);
    let (_, status) = bumped.usage_daily(&principal, None, days_ago(9), days_ago(3)).await.unwrap();
    assert_eq!(status, CacheStatus::Hit);
}

/// The app's reports over the same database and Redis, with another
/// `CACHE_VERSION`.
fn with_version(app: &TestApp, version: &str) -> Reports {
    let settings = AnalyticsSettings { cache_version: version.into(), ..app.state.settings.analytics.clone() };
    Reports::new(app.db.clone(), app.redis.clone(), app.keys.clone(), &settings)
}

#[tokio::test]
async fn prewarming_fills_the_most_missed_reports_under_the_current_version() {
    let app = spawn_unrecorded().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let (from, to) = (days_ago(6), days_ago(2));
    let daily = format!("/v1/analytics/usage/daily?from={from}&to={to}");
    let routes = format!("/v1/analytics/top-routes?from={from}&to={to}&limit=5");
    assert_eq!(x_cache(&get(&app, &daily, &user).await), "miss");
    assert_eq!(x_cache(&get(&app, &routes, &admin).await), "miss");

    let bumped = with_version(&app, "v2");
    assert_eq!(bumped.prewarm(10).await.unwrap(), 2, "both missed reports recomputed");
    let (_, status) = bumped.top_routes(from, to, 5).await.unwrap();
    assert_eq!(status, CacheStatus::Hit, "warmed under v2");
    let key = ReportKey::UsageDaily { account: uuid_of(&user), client: None, from, to };
    assert_eq!(bumped.cache().key_stats(&key, today()).await.unwrap(), (0, 0), "warming is not a lookup");
    let principal = switchyard::domain::Principal::User(switchyard::domain::AuthenticatedUser {
        user_id: uuid_of(&user),
        session_id: Uuid::new_v4(),
        role: switchyard::domain::Role::User,
    });
    assert_eq!(bumped.usage_daily(&principal, None, from, to).await.unwrap().1, CacheStatus::Hit);
    // A report never asked for is not warmed.
    assert_eq!(bumped.top_clients(from, to, 5).await.unwrap().1, CacheStatus::Miss);
}

#[tokio::test]
async fn a_user_cannot_read_another_accounts_usage() {
    let app = spawn_unrecorded().await;
    let (alice, bob, admin) = (app.new_user().await, app.new_user().await, app.new_admin().await);
    let bobs =
        app.create_client(&bob, serde_json::json!({"name": "bobs"})).await["client"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/analytics/usage/daily?client_id={bobs}&from={}&to={}", days_ago(1), today());
    assert_problem(get(&app, &path, &alice).await, 404).await;
    assert_eq!(get(&app, &path, &bob).await.status(), 200);
    assert_eq!(get(&app, &path, &admin).await.status(), 200, "admins may name any client");
    let unknown = format!("/v1/analytics/usage/daily?client_id={}&from={}&to={}", Uuid::new_v4(), today(), today());
    assert_problem(get(&app, &unknown, &admin).await, 404).await;
    let anonymous = app.get(&format!("/v1/analytics/usage/daily?from={}&to={}", today(), today())).await;
    assert_problem(anonymous, 401).await;
}

#[tokio::test]
async fn the_admin_reports_are_403_for_everyone_else() {
    let app = spawn_unrecorded().await;
    let (user, admin) = (app.new_user().await, app.new_admin().await);
    let (from, to) = (days_ago(1), today());
    for path in [
        format!("/v1/analytics/top-clients?from={from}&to={to}"),
        format!("/v1/analytics/top-routes?from={from}&to={to}"),
        "/v1/analytics/active-users?window=day".to_owned(),
        format!("/v1/analytics/unique-visitors?date={to}"),
        format!("/v1/analytics/top-users?date={to}"),
    ] {
        assert_problem(get(&app, &path, &user).await, 403).await;
        let response = get(&app, &path, &admin).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(x_cache(&response), "miss", "{path}");
    }
}

#[tokio::test]
async fn bad_dates_ranges_and_limits_are_422s_naming_the_field() {
    let app = spawn_unrecorded().await;
    let admin = app.new_admin().await;
    let (today, long_ago) = (today(), days_ago(366));
    for (path, field) in [
        (format!("/v1/analytics/usage/daily?from={today}&to={}", days_ago(1)), "from"),
        (format!("/v1/analytics/usage/daily?from={long_ago}&to={today}"), "to"),
        (format!("/v1/analytics/usage/daily?from=2024-13-01&to={today}"), "from"),
        (format!("/v1/analytics/usage/daily?from={today}"), "to"),
        (format!("/v1/analytics/usage/daily?client_id=nope&from={today}&to={today}"), "client_id"),
        (format!("/v1/analytics/top-clients?from={long_ago}&to={today}"), "to"),
        (format!("/v1/analytics/top-routes?from={today}&to={today}&limit=0"), "limit"),
        (format!("/v1/analytics/top-users?date={today}&limit=101"), "limit"),
        ("/v1/analytics/active-users?window=year".to_owned(), "window"),
        (format!("/v1/analytics/unique-visitors?date={}", days_ago(40)), "date"),
    ] {
        let body = assert_problem(get(&app, &path, &admin).await, 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
    // 366 days, inclusive, is the longest range.
    let path = format!("/v1/analytics/usage/daily?from={}&to={today}", days_ago(365));
    let report = json_of(app.authed(Method::GET, &path, &admin.access_token)).await;
    assert_eq!(report["days"].as_array().unwrap().len(), 366);
}

#[tokio::test]
async fn the_worker_schedules_the_rollup_and_the_warmup_and_runs_them() {
    let app = spawn_unrecorded().await;
    let entries = switchyard::app::cron_entries(&app.state.settings);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"usage-rollup") && names.contains(&"report-prewarm"), "{names:?}");
    switchyard::jobs::cron::CronScheduler::new(app.state.jobs.clone(), &entries)
        .expect("the built-in entries are valid");

    let user = app.new_user().await;
    insert_activity(&app, &known_latencies(days_ago(1), uuid_of(&user), None)).await;
    let handlers = switchyard::app::job_handlers(&app.state);
    let job = |kind: &str| switchyard::jobs::handlers::JobContext {
        id: Uuid::new_v4().to_string(),
        kind: kind.into(),
        payload: Value::Null,
        attempt: 1,
        max_attempts: 3,
    };
    let rolled = handlers.run(job("usage-rollup")).await.unwrap();
    assert!(rolled["rolled"].as_array().unwrap().contains(&Value::from(days_ago(1).to_string())), "{rolled}");
    assert_eq!(usage_rows(&app, days_ago(1)).await.len(), 1);
    let warmed = handlers.run(job("report-prewarm")).await.unwrap();
    assert_eq!(warmed["warmed"], 0, "nothing has missed yet");
}

#[tokio::test]
async fn requests_recorded_by_the_server_show_in_todays_usage_without_any_direct_feed() {
    // End to end: the recording layer, the recorder and its `counters`
    // observer, then the report reading today from Redis.
    let app = crate::helpers::spawn_app_with(
        &[("activity_flush_interval_ms", "50"), ("cache_hit_tracking_enabled", "false")],
        utoipa_axum::router::OpenApiRouter::new(),
    )
    .await;
    let user = app.new_user().await;
    let client = app.create_client(&user, serde_json::json!({"name": "reporter"})).await;
    let key = client["api_key"].as_str().unwrap().to_owned();
    let client_id = client["client"]["id"].as_str().unwrap().to_owned();
    for _ in 0..7 {
        assert_eq!(app.keyed(Method::GET, "/v1/actions", &key).send().await.unwrap().status(), 200);
    }
    assert_eq!(app.keyed(Method::GET, "/v1/jobs/nope", &key).send().await.unwrap().status(), 404);
    let path = format!("/v1/analytics/usage/daily?client_id={client_id}&from={}&to={}", today(), today());
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = json_of(app.authed(Method::GET, &path, &user.access_token)).await;
        if seen["days"][0]["requests"] == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen["days"][0]["requests"], 8, "{seen}");
    assert_eq!(seen["days"][0]["errors"], 1, "the 404 counts as an error");
}
