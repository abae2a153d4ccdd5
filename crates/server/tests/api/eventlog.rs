//! The event log and the built-in consumer groups: persistent streams and
//! the operator streams stored once by (stream, id), whoever redelivers;
//! `/v1/events:processed` and `/v1/events:stats` by account (operators also
//! see `sys:*`); the per-account quotas on streams and boards; the counting
//! groups; and, with real processes, two workers storing 10,000 events, a
//! consumer killed before acking, and `switchyard consume`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use switchyard::eventlog::{Group, GroupWorker};
use switchyard_kit::{EventStream, NewEvent, StartAt};

use crate::binary::{run, switchyard, Running};
use crate::helpers::{
    assert_problem, json_of, redis_url, spawn_app, spawn_app_with, test_key_prefix, TestApp, TestDatabase, TestUser,
};

fn kit_stream(app: &TestApp, name: &str) -> EventStream {
    EventStream::new(app.redis.clone(), app.keys.clone(), name)
}

async fn publish(app: &TestApp, user: &TestUser, stream: &str, kind: &str, data: Value) -> reqwest::Response {
    let body = json!({"stream": stream, "type": kind, "data": data});
    app.authed(Method::POST, "/v1/events", &user.access_token).json(&body).send().await.unwrap()
}

async fn persist(app: &TestApp, user: &TestUser, stream: &str, persist: bool) -> reqwest::Response {
    let path = format!("/v1/events/{stream}");
    app.authed(Method::PUT, &path, &user.access_token).json(&json!({"persist": persist})).send().await.unwrap()
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> Value {
    json_of(app.authed(Method::GET, path, &user.access_token)).await
}

fn ids(page: &Value) -> Vec<String> {
    page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.db).await.unwrap()
}

#[tokio::test]
async fn persistent_and_operator_streams_are_stored_once_and_listed_by_account_newest_first() {
    let app = spawn_app().await;
    let (alice, bob, admin) = (app.new_user().await, app.new_user().await, app.new_admin().await);
    assert_eq!(persist(&app, &alice, "orders", true).await.status(), 200);
    assert_eq!(persist(&app, &bob, "orders", true).await.status(), 200);
    let mut published = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 { "order.created" } else { "order.paid" };
        let response = publish(&app, &alice, "orders", kind, json!({"n": i})).await;
        published.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(publish(&app, &alice, "scratch", "x", json!({})).await.status(), 201, "not persistent");
    assert_eq!(publish(&app, &bob, "orders", "order.created", json!({"bob": true})).await.status(), 201);
    kit_stream(&app, "sys:users").publish(&NewEvent::new("user.created", r#"{"id":"u1"}"#)).await.unwrap();

    let mut worker = GroupWorker::new(app.state.event_log.clone(), Group::EventLog, "test-1");
    assert_eq!(worker.step(true).await.unwrap().processed, 7);
    assert_eq!(stored(&app).await, 7);
    // Redelivery of everything (as after a crash before the ack) adds nothing.
    let source = switchyard::eventlog::service::Source {
        stream: format!("user:{}/orders", alice.id),
        account: Some(alice.id.parse().unwrap()),
    };
    let events = kit_stream(&app, &source.stream).range(None, 100).await.unwrap();
    let again: Vec<_> = events.into_iter().map(|event| switchyard_kit::Delivery { event, deliveries: 2 }).collect();
    app.state.event_log.process(Group::EventLog, &source, &again).await.unwrap();
    assert_eq!(worker.step(true).await.unwrap().processed, 0);
    assert_eq!(stored(&app).await, 7);

    // Alice sees her five, newest first, with stream names as she gives them.
    let page = get(&app, &alice, "/v1/events:processed").await;
    let newest_first: Vec<String> = published.iter().rev().cloned().collect();
    assert_eq!(ids(&page), newest_first);
    assert_eq!(page["events"][0]["stream"], "orders");
    assert_eq!(page["events"][0]["data"], json!({"n": 4}));
    assert!(page["next_cursor"].is_null());
    // Paging.
    let first = get(&app, &alice, "/v1/events:processed?limit=2").await;
    assert_eq!(ids(&first), newest_first[..2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(&app, &alice, &format!("/v1/events:processed?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), newest_first[2..4]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let third = get(&app, &alice, &format!("/v1/events:processed?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&third), newest_first[4..]);
    // Filters.
    let paid = get(&app, &alice, "/v1/events:processed?type=order.paid").await;
    assert_eq!(ids(&paid).len(), 2);
    let later = get(&app, &alice, "/v1/events:processed?from=2999-01-01T00:00:00Z").await;
    assert!(ids(&later).is_empty());
    let earlier = get(&app, &alice, "/v1/events:processed?to=2000-01-01T00:00:00Z&stream=orders").await;
    assert!(ids(&earlier).is_empty());
    let all = get(&app, &alice, "/v1/events:processed?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z").await;
    assert_eq!(ids(&all).len(), 5);
    // Isolation: Bob sees only his; the operator streams do not exist for him.
    let bobs = get(&app, &bob, "/v1/events:processed").await;
    assert_eq!(bobs["events"].as_array().unwrap().len(), 1);
    assert_eq!(bobs["events"][0]["data"], json!({"bob": true}));
    let hidden =
        app.authed(Method::GET, "/v1/events:processed?stream=sys:users", &bob.access_token).send().await.unwrap();
    assert_problem(hidden, 404).await;
    let hidden = app.authed(Method::GET, "/v1/events/sys:users", &bob.access_token).send().await.unwrap();
    assert_problem(hidden, 404).await;
    // Operators see the operator streams, here and through /v1/events.
    let system = get(&app, &admin, "/v1/events:processed?stream=sys:users").await;
    assert_eq!(system["events"][0]["type"], "user.created");
    assert_eq!(system["events"][0]["stream"], "sys:users");
    let replay = get(&app, &admin, "/v1/events/sys:users").await;
    assert_eq!(replay["events"][0]["type"], "user.created");
    let stats = get(&app, &admin, "/v1/events/sys:users/stats").await;
    assert_eq!(stats["persistent"], true);
    assert_eq!(stats["groups"][0]["name"], "event-log");
    // Nobody publishes to an operator stream.
    assert_problem(publish(&app, &admin, "sys:users", "user.created", json!({})).await, 422).await;

    // Stats: Alice's counts per day, stream and type, and her groups.
    let stats = get(&app, &alice, "/v1/events:stats").await;
    let counts: Vec<(String, String, i64)> = stats["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (c["stream"].as_str().unwrap().into(), c["type"].as_str().unwrap().into(), c["count"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(counts, vec![("orders".into(), "order.created".into(), 3), ("orders".into(), "order.paid".into(), 2)]);
    let groups = stats["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(
        (groups[0]["group"].as_str(), groups[0]["pending"].as_u64(), groups[0]["lag"].as_u64()),
        (Some("event-log"), Some(0), Some(0))
    );
    let everything = get(&app, &admin, "/v1/events:stats").await;
    let total: i64 = everything["counts"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 7);
    let mine = get(&app, &alice, "/v1/events/orders/stats").await;
    assert_eq!(mine["persistent"], true);
    assert_eq!(persist(&app, &alice, "orders", false).await.status(), 200);
    assert_eq!(get(&app, &alice, "/v1/events/orders/stats").await["persistent"], false);
}

#[tokio::test]
async fn a_backlog_is_stored_up_to_a_thousand_events_per_stream_and_step() {
    let app = spawn_app().await;
    let users = kit_stream(&app, "sys:users");
    let batch: Vec<NewEvent> = (0..100).map(|i| NewEvent::new("user.created", &format!(r#"{{"n":{i}}}"#))).collect();
    for _ in 0..15 {
        users.publish_many(&batch).await.unwrap();
    }
    let mut worker = GroupWorker::new(app.state.event_log.clone(), Group::EventLog, "test-1");
    let read_max = usize::try_from(switchyard::eventlog::groups::READ_MAX).unwrap();
    assert_eq!(worker.step(true).await.unwrap().processed, read_max);
    assert_eq!(worker.step(true).await.unwrap().processed, 1500 - read_max);
    assert_eq!(worker.step(true).await.unwrap().processed, 0);
    assert_eq!(stored(&app).await, 1500);
}

#[tokio::test]
async fn bad_event_log_parameters_are_422_naming_the_field() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=nonsense", "cursor"),
        ("stream=Bad%20Name", "stream"),
    ] {
        let response =
            app.authed(Method::GET, &format!("/v1/events:processed?{query}"), &user.access_token).send().await.unwrap();
        let problem = assert_problem(response, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
    let response = app.authed(Method::GET, "/v1/events:stats?from=nope", &user.access_token).send().await.unwrap();
    assert_eq!(assert_problem(response, 422).await["errors"][0]["field"], "from");
    let response = app
        .authed(Method::PUT, "/v1/events/orders", &user.access_token)
        .json(&json!({"persist": "yes"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 422).await;
}

#[tokio::test]
async fn the_quotas_refuse_a_new_stream_and_board_past_the_limit_and_leave_other_accounts_alone() {
    let app = spawn_app_with(
        &[("events_max_streams_per_account", "3"), ("leaderboards_max_per_account", "3")],
        Default::default(),
    )
    .await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    for name in ["a", "b", "c"] {
        assert_eq!(publish(&app, &alice, name, "x", json!({})).await.status(), 201);
    }
    let refused = assert_problem(publish(&app, &alice, "d", "x", json!({})).await, 409).await;
    assert!(refused["detail"].as_str().unwrap().contains("EVENTS_MAX_STREAMS_PER_ACCOUNT"));
    assert_problem(persist(&app, &alice, "d", true).await, 409).await;
    let group = app.authed(Method::PUT, "/v1/events/d/groups/g", &alice.access_token).send().await.unwrap();
    assert_problem(group, 409).await;
    assert_eq!(publish(&app, &alice, "a", "x", json!({})).await.status(), 201, "existing streams keep working");
    assert_eq!(publish(&app, &bob, "d", "x", json!({})).await.status(), 201, "other accounts are unaffected");

    let submit = |user: &TestUser, board: &str| {
        let request = app.authed(Method::POST, &format!("/v1/leaderboards/{board}/scores"), &user.access_token);
        request.json(&json!({"member": "m", "score": 1})).send()
    };
    for board in ["a", "b", "c"] {
        assert_eq!(submit(&alice, board).await.unwrap().status(), 200);
    }
    let refused = assert_problem(submit(&alice, "d").await.unwrap(), 409).await;
    assert!(refused["detail"].as_str().unwrap().contains("LEADERBOARDS_MAX_PER_ACCOUNT"));
    assert_eq!(submit(&alice, "a").await.unwrap().status(), 200, "existing boards keep working");
    assert_eq!(submit(&bob, "d").await.unwrap().status(), 200);
}

#[tokio::test]
async fn concurrent_creations_of_new_streams_admit_exactly_the_room_left() {
    let app = spawn_app_with(&[("events_max_streams_per_account", "20")], Default::default()).await;
    let user = app.new_user().await;
    for i in 0..10 {
        assert_eq!(publish(&app, &user, &format!("old-{i}"), "x", json!({})).await.status(), 201);
    }
    // Through the service: 200 requests at once would meet the rate limit.
    let owner = switchyard::events::service::Owner {
        account: switchyard::domain::PrincipalId::User(user.id.parse().unwrap()),
        operator: false,
    };
    let outcomes = join_all((0..200).map(|i| {
        let events = app.state.events.clone();
        async move { events.publish(owner, &format!("new-{i}"), NewEvent::new("x", "{}")).await }
    }))
    .await;
    let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(switchyard::events::service::EventsError::QuotaExceeded { limit: 20 })))
        .count();
    assert_eq!((admitted, refused), (10, 190));
}

#[tokio::test]
async fn the_default_quota_is_a_thousand_streams() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let registry = switchyard_kit::Quota::new(app.redis.clone(), app.keys.clone(), switchyard::app::STREAM_REGISTRY);
    let account = format!("user:{}", user.id);
    let limit = app.state.settings.event_log.max_streams_per_account;
    assert_eq!(limit, 1000);
    for i in 0..999 {
        assert!(registry.admit(&account, &format!("s{i}"), limit).await.unwrap());
    }
    assert_eq!(publish(&app, &user, "s1000", "x", json!({})).await.status(), 201, "the 1000th");
    assert_problem(publish(&app, &user, "s1001", "x", json!({})).await, 409).await;
    assert_eq!(publish(&app, &user, "s5", "x", json!({})).await.status(), 201);
}

#[tokio::test]
async fn completed_tasks_are_counted_per_assignee_once_and_error_bursts_notify_the_account() {
    let app = spawn_app_with(&[("log_error_alert_per_minute", "2")], Default::default()).await;
    let user = app.new_user().await;
    for (kind, who) in
        [("task.created", "ann"), ("task.completed", "ann"), ("task.completed", "ann"), ("task.completed", "ben")]
    {
        assert_eq!(publish(&app, &user, "tasks", kind, json!({"assigned_to": who})).await.status(), 201);
    }
    let mut tasks = GroupWorker::new(app.state.event_log.clone(), Group::TaskProcessing, "t1");
    assert_eq!(tasks.step(true).await.unwrap().processed, 4);
    let account: uuid::Uuid = user.id.parse().unwrap();
    let counts = app.state.event_log.completions(account).await.unwrap();
    assert_eq!(counts, vec![("ann".to_owned(), 2), ("ben".to_owned(), 1)]);
    // The same events again (a redelivery) count nothing.
    let source =
        switchyard::eventlog::service::Source { stream: format!("user:{}/tasks", user.id), account: Some(account) };
    let events = kit_stream(&app, &source.stream).range(None, 100).await.unwrap();
    let again: Vec<_> = events.into_iter().map(|event| switchyard_kit::Delivery { event, deliveries: 2 }).collect();
    app.state.event_log.process(Group::TaskProcessing, &source, &again).await.unwrap();
    assert_eq!(app.state.event_log.completions(account).await.unwrap(), counts);

    for _ in 0..3 {
        assert_eq!(publish(&app, &user, "logs", "system.error", json!({"message": "boom"})).await.status(), 201);
    }
    let mut logs = GroupWorker::new(app.state.event_log.clone(), Group::LogProcessing, "l1");
    assert_eq!(logs.step(true).await.unwrap().processed, 3);
    let inbox = get(&app, &user, "/v1/notifications").await;
    let alerts: Vec<&Value> =
        inbox["notifications"].as_array().unwrap().iter().filter(|n| n["title"] == "Error rate alert").collect();
    // Three errors in one minute, or two and one across a minute boundary.
    let errors: i64 = sqlx::query_scalar("SELECT max(errors) FROM log_error_counts").fetch_one(&app.db).await.unwrap();
    assert_eq!(alerts.len(), usize::from(errors > 2), "{inbox}");
}

#[tokio::test]
async fn a_consumer_killed_before_acking_leaves_its_event_to_be_reclaimed_and_stored_once() {
    let app = spawn_app_with(&[("events_reclaim_idle_ms", "200")], Default::default()).await;
    let stream = kit_stream(&app, "sys:users");
    stream.create_group("event-log", StartAt::Beginning).await.unwrap();
    let id = stream.publish(&NewEvent::new("user.updated", r#"{"id":"u1"}"#)).await.unwrap();

    // A real consumer process reads the event, then is killed before acking.
    let read = format!(
        "redis-cli -u {} XREADGROUP GROUP event-log doomed COUNT 10 STREAMS {} '>'; sleep 60",
        redis_url(),
        stream.key()
    );
    let mut doomed = Running::new(
        std::process::Command::new("sh")
            .args(["-c", &read])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut child = doomed.0.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "the consumer read the event");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let pending = stream.stats().await.unwrap().groups[0].pending;
    assert_eq!(pending, 1, "left unacknowledged");

    let mut worker = GroupWorker::new(app.state.event_log.clone(), Group::EventLog, "survivor");
    let mut processed = 0;
    for _ in 0..100 {
        processed += worker.step(true).await.unwrap().processed;
        if processed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(processed, 1, "reclaimed after the idle time");
    assert_eq!(worker.step(true).await.unwrap().processed, 0);
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM events").fetch_all(&app.db).await.unwrap();
    assert_eq!(rows, vec![id]);
    assert_eq!(stream.stats().await.unwrap().groups[0].pending, 0);
}

fn worker_env<'a>(database: &'a TestDatabase, redis: &'a str, prefix: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("DATABASE_URL", database.url.as_str()),
        ("REDIS_URL", redis),
        ("REDIS_KEY_PREFIX", prefix),
        ("EVENTS_RECLAIM_IDLE_MS", "2000"),
    ]
}

#[tokio::test]
async fn two_worker_processes_store_ten_thousand_events_exactly_once() {
    let database = TestDatabase::create().await;
    let prefix = test_key_prefix();
    let redis = redis_url();
    let env = worker_env(&database, &redis, &prefix);
    assert!(run(switchyard(&["migrate"], &env)).await.status.success());
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    let account = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO persistent_streams (account, name) VALUES ($1, 'orders')")
        .bind(account)
        .execute(&db)
        .await
        .unwrap();
    let spawn = || {
        Running::new(
            switchyard(&["worker", "--queues", "none"], &env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let workers = [spawn(), spawn()];

    let conn =
        switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis).unwrap()).await.unwrap();
    let keys = switchyard_kit::Keyspace::new(&prefix).unwrap();
    let orders = EventStream::new(conn.clone(), keys.clone(), &format!("user:{account}/orders"));
    let users = EventStream::new(conn.clone(), keys.clone(), "sys:users");
    let mut published = HashSet::new();
    for batch in 0..50 {
        let events: Vec<NewEvent> =
            (0..100).map(|i| NewEvent::new("e", &format!("{{\"n\":{}}}", batch * 100 + i))).collect();
        for stream in [&orders, &users] {
            for id in stream.publish_many(&events).await.unwrap() {
                published.insert((stream.key(), id));
            }
        }
    }
    assert_eq!(published.len(), 10_000);
    let mut count = 0;
    for _ in 0..1200 {
        count = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events").fetch_one(&db).await.unwrap();
        if count >= 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(workers);
    assert_eq!(count, 10_000);
    let by_stream: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT stream, count(*), count(DISTINCT id) FROM events GROUP BY stream ORDER BY stream")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(by_stream, vec![("sys:users".to_owned(), 5000, 5000), (format!("user:{account}/orders"), 5000, 5000)]);
    let consumers: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db).await.unwrap();
    assert_eq!(consumers, 10_000);
    db.close().await;
    crate::helpers::delete_keys(&conn, &keys).await;
}

#[tokio::test]
async fn consume_prints_each_event_as_a_json_line_and_acks_it() {
    let database = TestDatabase::create().await;
    let prefix = test_key_prefix();
    let redis = redis_url();
    let env = worker_env(&database, &redis, &prefix);
    let mut consumer = Running::new(
        switchyard(
            &["consume", "--stream", "sys:users", "--group", "audit", "--consumer", "cli-1", "--from", "0"],
            &env,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let conn =
        switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis).unwrap()).await.unwrap();
    let keys = switchyard_kit::Keyspace::new(&prefix).unwrap();
    let users = EventStream::new(conn.clone(), keys.clone(), "sys:users");
    let ids = users
        .publish_many(&[NewEvent::new("user.created", r#"{"id":1}"#), NewEvent::new("user.deleted", "not json")])
        .await
        .unwrap();
    let stdout = consumer.0.as_mut().unwrap().stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(2)
            .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines).await.unwrap().unwrap();
    assert_eq!(
        lines[0],
        json!({"stream": "sys:users", "id": ids[0], "type": "user.created", "data": {"id": 1}, "deliveries": 1})
    );
    assert_eq!(lines[1]["data"], "not json");
    let mut pending = 1;
    for _ in 0..100 {
        pending = users.stats().await.unwrap().groups.iter().find(|g| g.name == "audit").map_or(1, |g| g.pending);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 0, "acknowledged once printed");
    let child = consumer.0.take().unwrap();
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(output.status.success(), "stops cleanly on SIGTERM");
    crate::helpers::delete_keys(&conn, &keys).await;
}
