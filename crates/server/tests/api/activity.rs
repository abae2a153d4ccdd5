//! Activity recording: every request under /v1 becomes exactly one row,
//! whatever happens to PostgreSQL and Redis meanwhile (spill, memory,
//! restart, SIGTERM), daily partitions come and go, and a caller reads
//! (and watches live) only its own account's activity.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use switchyard::analytics::spill::Spill;
use switchyard::analytics::{partitions, store, ActivityRecord, PrincipalKind};
use switchyard::app::AppState;
use switchyard::config::Settings;
use switchyard::startup::{self, Application};
use switchyard_kit::testing::RedisProcess;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::helpers::{
    admin_database_url, assert_problem, json_of, read_until, spawn_app_with, test_settings_with, TestApp,
};

/// Short flushes, so tests wait milliseconds, not seconds.
const FAST: &[(&str, &str)] = &[("activity_flush_interval_ms", "50")];

/// Polls `check` until it holds (generous bound: a loaded machine is slow).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Rows whose user agent is `agent` (each test tags its own requests).
async fn rows_by_agent(db: &PgPool, agent: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM activity WHERE user_agent = $1")
        .bind(agent)
        .fetch_one(db)
        .await
        .unwrap_or(-1)
}

async fn distinct_rows_by_agent(db: &PgPool, agent: &str) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT id) FROM activity WHERE user_agent = $1")
        .bind(agent)
        .fetch_one(db)
        .await
        .unwrap()
}

/// `n` anonymous requests to an unmatched path, tagged with `agent`.
async fn send_tagged(address: &str, agent: &str, n: usize) {
    let client = reqwest::Client::new();
    for _ in 0..n {
        let response = client.get(format!("{address}/v1/no-such-route")).header("user-agent", agent).send().await;
        assert!(response.is_ok(), "every request is answered");
    }
}

/// Blocks new connections to the test database and ends the open ones.
async fn block_database(name: &str) {
    let mut admin = PgConnection::connect(&admin_database_url()).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS false"#))).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn unblock_database(name: &str) {
    let mut admin = PgConnection::connect(&admin_database_url()).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS true"#))).await.unwrap();
}

async fn database_name(db: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_database()::text").fetch_one(db).await.unwrap()
}

fn spill_of(state: &AppState) -> Spill {
    Spill::new(state.redis.clone(), &state.keys, 1000)
}

/// Records waiting in the spill.
async fn spilled_records(spill: &Spill) -> usize {
    match spill.oldest(10_000).await {
        Ok(entries) => entries.into_iter().map(|(_, batch)| batch.map_or(0, |b| b.len())).sum(),
        Err(_) => 0,
    }
}

/// A server of the test's own making (not a `TestApp`), so a test can stop
/// it, wait for it to finish, and start another on the same database and
/// key prefix.
struct Server {
    address: String,
    state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(settings: Settings) -> Self {
        let state = startup::connect(settings).await.expect("connect");
        startup::migrate(&state.db).await.expect("migrate");
        let app = Application::bind(state.clone()).await.expect("bind");
        let address = format!("http://{}", app.local_addr());
        let shutdown = CancellationToken::new();
        let running = app.run_until_stopped(shutdown.clone());
        let task = tokio::spawn(async move { running.await.expect("serves") });
        Self { address, state, shutdown, task }
    }

    /// As SIGTERM would, and waits for the process's work to end.
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

fn synthetic(n: usize, agent: &str) -> Vec<ActivityRecord> {
    (0..n)
        .map(|i| ActivityRecord {
            id: uuid::Uuid::now_v7(),
            occurred_at: chrono::Utc::now(),
            request_id: format!("req-{i}"),
            principal_kind: PrincipalKind::Anonymous,
            user_id: None,
            client_id: None,
            account_id: None,
            method: "GET".into(),
            route: "/v1/synthetic".into(),
            status: 200,
            latency_us: 10,
            request_bytes: 0,
            response_bytes: 2,
            client_ip: Some([127, 0, 0, 1].into()),
            user_agent: Some(agent.into()),
        })
        .collect()
}

/// (route, principal kind, account, client, requests).
type RouteCount = (String, String, Option<uuid::Uuid>, Option<uuid::Uuid>, i64);

#[tokio::test]
async fn n_requests_become_exactly_n_rows_with_their_route_template_and_caller() {
    let app = spawn_app_with(FAST, OpenApiRouter::new()).await;
    let user = app.new_user().await;
    let key = app.create_client(&user, json!({"name": "svc"})).await["api_key"].as_str().unwrap().to_owned();
    let agent = "probe/1";
    for _ in 0..5 {
        app.authed(Method::GET, "/v1/me", &user.access_token).header("user-agent", agent).send().await.unwrap();
        app.keyed(Method::GET, "/v1/auth/whoami", &key).header("user-agent", agent).send().await.unwrap();
    }
    send_tagged(&app.address, agent, 5).await;
    app.client.get(app.url("/health")).header("user-agent", agent).send().await.unwrap();
    eventually("15 rows", || async { rows_by_agent(&app.db, agent).await >= 15 }).await;
    // Later flushes add nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rows_by_agent(&app.db, agent).await, 15, "exactly one row per /v1 request; /health is not recorded");

    let by_route: Vec<RouteCount> = sqlx::query_as(
        "SELECT route, principal_kind, account_id, client_id, count(*) FROM activity WHERE user_agent = $1
         GROUP BY 1, 2, 3, 4 ORDER BY 1",
    )
    .bind(agent)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let user_id: uuid::Uuid = user.id.parse().unwrap();
    assert_eq!(by_route.len(), 3, "{by_route:?}");
    assert_eq!(
        (by_route[0].0.as_str(), by_route[0].1.as_str(), by_route[0].2),
        ("/v1/auth/whoami", "client", Some(user_id))
    );
    assert!(by_route[0].3.is_some(), "the client is recorded");
    assert_eq!((by_route[1].0.as_str(), by_route[1].1.as_str(), by_route[1].2), ("/v1/me", "user", Some(user_id)));
    assert_eq!((by_route[2].0.as_str(), by_route[2].1.as_str(), by_route[2].2), ("unmatched", "anonymous", None));
    let (request_id, status, ip, bytes): (String, i16, Option<String>, i64) = sqlx::query_as(
        "SELECT request_id, status, client_ip, response_bytes FROM activity WHERE route = '/v1/me' AND user_agent = $1 LIMIT 1",
    )
    .bind(agent)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(!request_id.is_empty());
    assert_eq!(status, 200);
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert!(bytes > 0, "the JSON body's length");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in ["activity_written_total", "activity_flush_seconds", "activity_buffered"] {
        assert!(metrics.contains(name), "{name} exported");
    }
}

#[tokio::test]
async fn a_batch_written_again_after_its_commit_is_stored_once() {
    let (settings, _database) = test_settings_with(FAST, None).await;
    let first = Server::start(settings.clone()).await;
    let batch = synthetic(40, "replayed");
    assert_eq!(store::insert_batch(&first.state.db, &batch).await.unwrap(), 40);
    assert_eq!(store::insert_batch(&first.state.db, &batch).await.unwrap(), 0, "a retried write adds nothing");
    // As if the first attempt committed but its answer was lost: the batch
    // also went to the spill, which the next server drains.
    spill_of(&first.state).push(&batch).await.unwrap();
    first.stop().await;
    let second = Server::start(settings).await;
    let spill = spill_of(&second.state);
    eventually("the spill drained", || async { spill.waiting().await.unwrap() == 0 }).await;
    assert_eq!(rows_by_agent(&second.state.db, "replayed").await, 40);
    second.stop().await;
}

#[tokio::test]
async fn a_batch_partly_stored_already_adds_only_its_new_rows() {
    let app = spawn_app_with(FAST, OpenApiRouter::new()).await;
    let mut batch = synthetic(30, "overlap");
    for (i, record) in batch.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        let (user, client) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        (record.user_id, record.client_id, record.account_id) = (Some(user), Some(client), Some(user));
        record.principal_kind = PrincipalKind::Client;
        (record.status, record.latency_us, record.request_bytes) = (503, 1 << 40, i as u64);
        (record.client_ip, record.request_id) = (None, "ünïcode-id".into());
    }
    for record in batch.iter_mut().skip(1).step_by(3) {
        record.client_ip = Some("2001:db8::8:800:200c:417a".parse().unwrap());
    }
    assert_eq!(store::insert_batch(&app.db, &batch[..10]).await.unwrap(), 10);
    // The batch's COPY fails on the stored rows; the batch is written again
    // skipping them.
    assert_eq!(store::insert_batch(&app.db, &batch).await.unwrap(), 20);
    assert_eq!(rows_by_agent(&app.db, "overlap").await, 30);
    assert_eq!(distinct_rows_by_agent(&app.db, "overlap").await, 30);
    let stored: Vec<ActivityRecord> = {
        let filter = store::Filter { route: Some("/v1/synthetic".into()), ..store::Filter::default() };
        store::page(&app.db, &filter, None, 100).await.unwrap()
    };
    let mut expected: Vec<&ActivityRecord> = batch.iter().collect();
    expected.sort_by_key(|r| std::cmp::Reverse((r.occurred_at, r.id)));
    let truncate = |at: chrono::DateTime<chrono::Utc>| at.timestamp_micros();
    for (row, sent) in stored.iter().zip(&expected) {
        // Every column as sent (PostgreSQL keeps microseconds).
        assert_eq!(truncate(row.occurred_at), truncate(sent.occurred_at));
        assert_eq!(ActivityRecord { occurred_at: sent.occurred_at, ..row.clone() }, **sent);
    }
    assert_eq!(stored.len(), 30);
}

#[tokio::test]
async fn while_postgres_is_away_records_are_spilled_and_arrive_once_after() {
    let app = spawn_app_with(FAST, OpenApiRouter::new()).await;
    let name = database_name(&app.db).await;
    let spill = spill_of(&app.state);
    let agent = "pg-away";
    send_tagged(&app.address, agent, 5).await;
    eventually("the first rows", || async { rows_by_agent(&app.db, agent).await == 5 }).await;

    block_database(&name).await;
    send_tagged(&app.address, agent, 30).await;
    eventually("30 records spilled", || async { spilled_records(&spill).await == 30 }).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("activity_spilled_total 30"), "{metrics}");

    unblock_database(&name).await;
    eventually("every record written", || async { rows_by_agent(&app.db, agent).await == 35 }).await;
    eventually("the spill drained", || async { spill.waiting().await.unwrap() == 0 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rows_by_agent(&app.db, agent).await, 35);
    assert_eq!(distinct_rows_by_agent(&app.db, agent).await, 35, "none twice");
}

#[tokio::test]
async fn a_restarted_server_drains_what_the_stopped_one_spilled() {
    let overrides = [FAST, &[("shutdown_timeout_secs", "1")]].concat();
    let (settings, _database) = test_settings_with(&overrides, None).await;
    let first = Server::start(settings.clone()).await;
    let name = database_name(&first.state.db).await;
    let spill = spill_of(&first.state);
    let agent = "restart";
    block_database(&name).await;
    send_tagged(&first.address, agent, 25).await;
    eventually("25 records spilled", || async { spilled_records(&spill).await == 25 }).await;
    // It stops while PostgreSQL is still away: the records stay spilled.
    first.stop().await;
    assert_eq!(spilled_records(&spill).await, 25);

    unblock_database(&name).await;
    let second = Server::start(settings).await;
    eventually("the spill drained", || async { spill.waiting().await.unwrap() == 0 }).await;
    assert_eq!(rows_by_agent(&second.state.db, agent).await, 25);
    assert_eq!(distinct_rows_by_agent(&second.state.db, agent).await, 25);
    let mut conn = second.state.redis.clone();
    second.stop().await;
    let _: () = redis::cmd("DEL").arg(spill.key()).query_async(&mut conn).await.unwrap();
}

/// A gauge's or counter's value in a Prometheus scrape.
fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn with_redis_and_postgres_both_down_memory_is_bounded_and_drops_are_counted() {
    let mut redis = RedisProcess::start().unwrap();
    let url = redis.url();
    let policies = json!([{"name": "anon", "group": "api", "principal": "anonymous", "on_redis_error": "fail_open",
        "limits": [{"algorithm": "fixed_window", "limit": 1000, "window_ms": 60000}]}]);
    let overrides = [FAST, &[("redis_url", url.as_str()), ("activity_memory_max_records", "4")]].concat();
    let app = crate::helpers::spawn_app_with_policies(&overrides, policies).await;
    let name = database_name(&app.db).await;
    redis.stop();
    block_database(&name).await;

    send_tagged(&app.address, "both-down", 12).await;
    let scrape = || async { app.get("/metrics").await.text().await.unwrap() };
    eventually("8 records dropped, 4 held", || async {
        let metrics = scrape().await;
        metric(&metrics, r#"activity_dropped_total{reason="memory_full"}"#) == Some(8.0)
            && metric(&metrics, "activity_buffered") == Some(4.0)
    })
    .await;
    assert_eq!(app.get("/health").await.status(), 200, "the server still answers");

    unblock_database(&name).await;
    redis.restart().unwrap();
    eventually("the held records written", || async { rows_by_agent(&app.db, "both-down").await == 4 }).await;
    eventually("nothing buffered", || async { metric(&scrape().await, "activity_buffered") == Some(0.0) }).await;
}

#[tokio::test]
async fn sigterm_writes_every_buffered_record_before_the_process_exits() {
    let database = crate::helpers::TestDatabase::create().await;
    // Nothing is flushed before the signal: a long interval, a big batch.
    let (child, base, _keys) =
        crate::binary::serve(&database, &[("ACTIVITY_FLUSH_INTERVAL_MS", "600000"), ("ACTIVITY_BATCH_SIZE", "10000")])
            .await;
    send_tagged(&base, "sigterm", 20).await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    assert_eq!(rows_by_agent(&pool, "sigterm").await, 0, "still buffered");
    let output = crate::binary::stop(child).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(rows_by_agent(&pool, "sigterm").await, 20, "written on the way out");
    pool.close().await;
}

#[tokio::test]
async fn partitions_are_created_ahead_rows_in_default_are_moved_and_old_ones_dropped() {
    let app = spawn_app_with(FAST, OpenApiRouter::new()).await;
    let today = chrono::Utc::now().date_naive();
    let partitions_of = || async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'activity'::regclass ORDER BY 1",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        names
    };
    // The server made today's and the next three days' at start-up.
    let ahead: Vec<String> = (0..=3).map(|d| partitions::partition_name(today + chrono::Days::new(d))).collect();
    eventually("start-up partitions", || async {
        let have = partitions_of().await;
        ahead.iter().all(|p| have.contains(p))
    })
    .await;

    // A row for a day without a partition waits in the default one ...
    let later = today + chrono::Days::new(10);
    let mut record = synthetic(1, "future").remove(0);
    record.occurred_at = later.and_hms_opt(12, 0, 0).unwrap().and_utc();
    store::insert_batch(&app.db, &[record]).await.unwrap();
    let in_default = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM activity_default").fetch_one(&app.db).await.unwrap()
    };
    assert_eq!(in_default().await, 1);
    // ... and moves to its day's partition when that is created, even by
    // two maintenance runs at once.
    let from = today + chrono::Days::new(8);
    let (a, b) =
        tokio::join!(partitions::maintain(&app.db, from, 3, None), partitions::maintain(&app.db, from, 3, None));
    let created: Vec<String> = [a.unwrap().created, b.unwrap().created].concat();
    assert_eq!(created.len(), 4, "each partition created once: {created:?}");
    assert_eq!(in_default().await, 0);
    let moved: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {} WHERE user_agent = 'future'",
        partitions::partition_name(later)
    )))
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(moved, 1);

    // Partitions past the retention (30 days) are dropped by the worker's run.
    let old = today - chrono::Days::new(40);
    partitions::maintain(&app.db, old, 0, None).await.unwrap();
    assert!(partitions_of().await.contains(&partitions::partition_name(old)));
    let done = app.state.activity.maintain_partitions(today).await.unwrap();
    assert_eq!(done.dropped, [partitions::partition_name(old)]);
    assert!(!partitions_of().await.contains(&partitions::partition_name(old)));
    assert!(partitions_of().await.contains(&partitions::partition_name(today)), "recent ones stay");
}

fn entries(page: &Value) -> &Vec<Value> {
    page["activity"].as_array().unwrap()
}

#[tokio::test]
async fn a_caller_reads_only_its_own_accounts_activity() {
    let app = spawn_app_with(FAST, OpenApiRouter::new()).await;
    let (alice, bob, admin) = (app.new_user().await, app.new_user().await, app.new_admin().await);
    let alice_key = app.create_client(&alice, json!({"name": "a"})).await;
    let bob_key = app.create_client(&bob, json!({"name": "b"})).await;
    let (alice_client, bob_client) =
        (alice_key["client"]["id"].as_str().unwrap(), bob_key["client"]["id"].as_str().unwrap());
    for _ in 0..3 {
        app.keyed(Method::GET, "/v1/auth/whoami", alice_key["api_key"].as_str().unwrap()).send().await.unwrap();
        app.keyed(Method::GET, "/v1/auth/whoami", bob_key["api_key"].as_str().unwrap()).send().await.unwrap();
        app.authed(Method::GET, "/v1/me", &bob.access_token).send().await.unwrap();
    }
    eventually("the clients' rows", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM activity WHERE client_id IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .unwrap()
            == 6
    })
    .await;
    let list = |token: &str, query: &str| app.authed(Method::GET, &format!("/v1/activity{query}"), token);

    let mine = json_of(list(&alice.access_token, "?limit=100")).await;
    assert!(!entries(&mine).is_empty());
    assert!(entries(&mine).iter().all(|e| e["account_id"] == alice.id.as_str()), "only alice's: {mine}");
    assert_eq!(entries(&mine).iter().filter(|e| e["client_id"] == alice_client).count(), 3);
    let by_client = json_of(list(&alice.access_token, &format!("?client_id={alice_client}"))).await;
    assert_eq!(entries(&by_client).len(), 3);
    assert!(entries(&by_client).iter().all(|e| e["route"] == "/v1/auth/whoami" && e["principal_kind"] == "client"));
    assert_problem(list(&alice.access_token, &format!("?client_id={bob_client}")).send().await.unwrap(), 404).await;
    // The API client reads its account's activity too.
    let keyed = json_of(app.keyed(Method::GET, "/v1/activity?limit=100", alice_key["api_key"].as_str().unwrap())).await;
    assert!(entries(&keyed).iter().all(|e| e["account_id"] == alice.id.as_str()));

    // Admins see every account, filtered as asked.
    let all = json_of(list(&admin.access_token, &format!("?client_id={bob_client}"))).await;
    assert_eq!(entries(&all).len(), 3);
    assert!(entries(&all).iter().all(|e| e["client_id"] == bob_client && e["account_id"] == bob.id.as_str()));
    // A client that does not exist is not found, for admins too (as in the
    // usage report).
    let unknown = format!("?client_id={}", uuid::Uuid::now_v7());
    assert_problem(list(&admin.access_token, &unknown).send().await.unwrap(), 404).await;

    // Newest first, paged by cursor without gaps or repeats.
    let first = json_of(list(&bob.access_token, "?limit=2&route=/v1/me&status=200")).await;
    assert_eq!(entries(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = json_of(list(&bob.access_token, &format!("?limit=2&route=/v1/me&cursor={cursor}"))).await;
    assert_eq!(entries(&rest).len(), 1);
    assert!(rest["next_cursor"].is_null());
    let times: Vec<&str> =
        entries(&first).iter().chain(entries(&rest)).map(|e| e["occurred_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let today = chrono::Utc::now().date_naive();
    let dated = json_of(list(&bob.access_token, &format!("?route=/v1/me&from={today}&to={today}"))).await;
    assert_eq!(entries(&dated).len(), 3, "a date covers its whole day");

    for (query, field) in [
        ("?status=abc", "status"),
        ("?status=42", "status"),
        ("?from=yesterday", "from"),
        ("?to=2026-13-01", "to"),
        ("?cursor=nope", "cursor"),
        ("?limit=0", "limit"),
        ("?client_id=not-a-uuid", "client_id"),
    ] {
        let body = assert_problem(list(&alice.access_token, query).send().await.unwrap(), 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    assert_problem(app.get("/v1/activity").await, 401).await;
}

#[tokio::test]
async fn the_live_feed_shows_the_callers_account_only_and_ends_on_shutdown() {
    // The default flush interval: the live feed does not wait for writes.
    let app = spawn_app_with(&[], OpenApiRouter::new()).await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let mut live = app.authed(Method::GET, "/v1/activity/live", &alice.access_token).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    app.authed(Method::GET, "/v1/me", &bob.access_token).header("user-agent", "bob-was-here").send().await.unwrap();
    app.authed(Method::GET, "/v1/me", &alice.access_token).header("user-agent", "alice-was-here").send().await.unwrap();
    let seen = read_until(&mut live, "alice-was-here").await;
    assert!(seen.contains("event: activity"), "{seen}");
    assert!(!seen.contains("bob-was-here"), "another account's requests never appear: {seen}");
    let data = seen.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().unwrap();
    let entry: Value = serde_json::from_str(data).unwrap();
    assert_eq!((entry["route"].as_str(), entry["account_id"].as_str()), (Some("/v1/me"), Some(alice.id.as_str())));

    app.shut_down();
    let ended =
        tokio::time::timeout(Duration::from_secs(10), async { while live.chunk().await.ok().flatten().is_some() {} })
            .await;
    assert!(ended.is_ok(), "the stream ends when the server shuts down");
}

#[tokio::test]
async fn with_recording_off_nothing_is_recorded() {
    let app: TestApp = spawn_app_with(&[("activity_enabled", "false"), FAST[0]], OpenApiRouter::new()).await;
    send_tagged(&app.address, "off", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rows_by_agent(&app.db, "off").await, 0);
}

#[tokio::test]
async fn every_record_is_written_or_counted_as_lost_when_shutdown_runs_out_of_time() {
    let database = crate::helpers::TestDatabase::create().await;
    let (child, base, _keys) = crate::binary::serve(
        &database,
        &[("ACTIVITY_FLUSH_INTERVAL_MS", "600000"), ("ACTIVITY_BATCH_SIZE", "5"), ("SHUTDOWN_TIMEOUT_SECS", "1")],
    )
    .await;
    // The recorder's start-up partition work is done once today's
    // partition exists; from then on the lock below holds up writes only.
    let pool = PgPool::connect(&database.url).await.unwrap();
    let today = switchyard::analytics::partitions::partition_name(chrono::Utc::now().date_naive());
    eventually("the start-up partitions", || async {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL").bind(&today).fetch_one(&pool).await.unwrap()
    })
    .await;
    use sqlx::{Connection, Executor};
    let mut holder = sqlx::PgConnection::connect(&database.url).await.unwrap();
    holder.execute("BEGIN; LOCK TABLE activity IN ACCESS EXCLUSIVE MODE").await.unwrap();
    // The first batch's write waits behind the lock; the rest wait for it.
    send_tagged(&base, "cut-off", 20).await;
    // Shutdown needs the lock gone to finish (its pool waits for the
    // blocked write); whenever it goes, before the deadline or after,
    // every record must end up written or counted.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        holder.execute("ROLLBACK").await.unwrap();
    });
    let output = crate::binary::stop(child).await;
    release.await.unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let lost: i64 = logs
        .lines()
        .filter(|l| l.contains("activity recorder stopped before everything was written"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l["lost"].as_i64())
        .sum();
    let written = rows_by_agent(&pool, "cut-off").await;
    assert!(written + lost >= 20, "{written} written and {lost} counted lost of 20: {logs}");
    pool.close().await;
}
