//! The built-in job handlers against real services: signed webhook delivery
//! to a local receiver (retries, final 4xx, the SSRF guard, unreachable
//! hosts), notify (stored once, published on the user's channel), mail
//! through the queue (the payload is dropped once delivered), and cron
//! (each tick enqueued once however many schedulers run).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use switchyard::config::CronSetting;
use switchyard::jobs::cron::CronScheduler;
use switchyard::jobs::handlers::notify::NotifyHandler;
use switchyard::jobs::handlers::webhook::signature;
use switchyard::jobs::handlers::{Handler, JobContext};
use switchyard::notifications::service::channel as notify_channel;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::helpers::{json_of, redis_url, spawn_app, spawn_app_with, TestApp, TestUser};

const SECRET: &str = "test-webhook-secret-abcdefghijklmnopqrst";

/// Webhooks may reach the test's receiver on 127.0.0.1, signed with `SECRET`.
async fn spawn_webhook_app() -> TestApp {
    spawn_app_with(&[("webhook_allow_private_networks", "true"), ("webhook_secret", SECRET)], OpenApiRouter::new())
        .await
}

/// Enqueues `body` as `user` (201 expected); the job's id.
async fn enqueue(app: &TestApp, user: &TestUser, body: Value) -> String {
    let response = app.authed(Method::POST, "/v1/jobs", &user.access_token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "enqueued");
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn job(app: &TestApp, user: &TestUser, id: &str) -> Value {
    json_of(app.authed(Method::GET, &format!("/v1/jobs/{id}"), &user.access_token)).await
}

/// (state, attempts) of a job record.
fn progress(record: &Value) -> (&str, u64) {
    (record["state"].as_str().unwrap_or_default(), record["attempts"].as_u64().unwrap_or_default())
}

/// A webhook job to `url` posting `{"order": 42}`, with `extra` job fields.
fn webhook(url: &str, extra: Value) -> Value {
    let mut job = json!({"type": "webhook", "payload": {"url": url, "body": {"order": 42}}});
    job.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    job
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// A webhook receiver: records every request, answers scripted statuses.
#[derive(Debug, Clone, Default)]
struct Receiver {
    statuses: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    receiver.received.lock().unwrap().push(Received { headers, body: body.to_vec() });
    let status = receiver.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// Serves `POST /hook` on 127.0.0.1, answering `statuses` in turn (then
/// 200); returns the hook's URL, the port and the receiver.
async fn start_receiver(statuses: &[u16]) -> (String, u16, Receiver) {
    let receiver =
        Receiver { statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())), ..Receiver::default() };
    let router = axum::Router::new().route("/hook", axum::routing::post(record)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://127.0.0.1:{port}/hook"), port, receiver)
}

/// HMAC-SHA256 of `"{t}.{body}"`, hex, computed here rather than by the crate.
fn expected_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_signed_webhook_is_retried_after_a_5xx_and_then_delivered() {
    let app = spawn_webhook_app().await;
    let user = app.new_user().await;
    let (url, _, receiver) = start_receiver(&[500, 200]).await;
    let body = json!({"type": "webhook",
        "payload": {"url": url, "body": {"order": 42}, "headers": {"x-trace": "t1"}},
        "backoff": {"kind": "fixed", "base_ms": 1}});
    let id = enqueue(&app, &user, body).await;
    app.drain_jobs("default").await;

    let record = job(&app, &user, &id).await;
    assert_eq!(progress(&record), ("succeeded", 2), "{record}");
    assert_eq!(record["result"], json!({"status": 200}));
    assert!(record["errors"][0]["error"].as_str().unwrap().contains("500"), "{record}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "one request per attempt");
    let now = chrono::Utc::now().timestamp();
    for (attempt, request) in (1..).zip(&requests) {
        assert_eq!(serde_json::from_slice::<Value>(&request.body).unwrap(), json!({"order": 42}));
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("x-trace"), "t1");
        assert_eq!(request.header("switchyard-job-id"), id);
        assert_eq!(request.header("switchyard-attempt"), attempt.to_string());
        let signed = request.header("switchyard-signature");
        let t: i64 = signed.strip_prefix("t=").and_then(|s| s.split(',').next()).unwrap().parse().unwrap();
        assert!((now - t).abs() < 3600, "t is Unix seconds: {t}");
        assert_eq!(signed, signature(SECRET, t, &request.body));
        assert_eq!(signed, expected_signature(SECRET, t, &request.body), "HMAC-SHA256 over \"t.body\"");
        assert_ne!(signed, expected_signature("another-secret-of-at-least-32-characters", t, &request.body));
    }
}

#[tokio::test]
async fn a_4xx_is_final_after_one_attempt_but_a_429_is_retried() {
    let app = spawn_webhook_app().await;
    let user = app.new_user().await;
    let (bad_url, _, bad) = start_receiver(&[400]).await;
    let (busy_url, _, busy) = start_receiver(&[429, 200]).await;
    let backoff = json!({"kind": "fixed", "base_ms": 1});
    let rejected = enqueue(&app, &user, webhook(&bad_url, json!({"queue": "hooks-bad", "backoff": backoff}))).await;
    let throttled = enqueue(&app, &user, webhook(&busy_url, json!({"queue": "hooks-busy", "backoff": backoff}))).await;

    assert!(app.runner("hooks-bad").run_one().await.unwrap());
    let record = job(&app, &user, &rejected).await;
    assert_eq!(progress(&record), ("dead", 1), "{record}");
    assert!(record["last_error"].as_str().unwrap().contains("400"), "{record}");
    assert!(!app.runner("hooks-bad").run_one().await.unwrap(), "nothing left to retry");
    assert_eq!(bad.requests().len(), 1);

    assert!(app.runner("hooks-busy").run_one().await.unwrap());
    let record = job(&app, &user, &throttled).await;
    assert_eq!(progress(&record), ("retrying", 1), "a 429 waits for its retry: {record}");
    assert!(record["last_error"].as_str().unwrap().contains("429"), "{record}");
    app.drain_jobs("hooks-busy").await;
    assert_eq!(progress(&job(&app, &user, &throttled).await), ("succeeded", 2));
    assert_eq!(busy.requests().len(), 2);
}

#[tokio::test]
async fn by_default_webhooks_to_private_addresses_die_at_once_without_a_request() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (url, port, receiver) = start_receiver(&[]).await;
    let literals = [
        url,
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://0x7f000001:{port}/hook"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ];
    let mut ids = Vec::new();
    for target in &literals {
        ids.push(enqueue(&app, &user, webhook(target, json!({"max_attempts": 3}))).await);
    }
    // A name resolving to loopback is refused by the resolver.
    let named = enqueue(
        &app,
        &user,
        webhook(&format!("http://localhost:{port}/hook"), json!({"queue": "hooks-named", "max_attempts": 3})),
    )
    .await;
    let worker = app.runner("default");
    for _ in &literals {
        assert!(worker.run_one().await.unwrap());
    }
    assert!(!worker.run_one().await.unwrap(), "none is retried");
    for (target, id) in literals.iter().zip(&ids) {
        let record = job(&app, &user, id).await;
        assert_eq!(progress(&record), ("dead", 1), "{target}: {record}");
        assert!(record["last_error"].as_str().unwrap().contains("private address"), "{target}: {record}");
    }
    assert!(app.runner("hooks-named").run_one().await.unwrap());
    let record = job(&app, &user, &named).await;
    assert_eq!(progress(&record), ("dead", 1), "the resolver's refusal is final: {record}");
    assert!(record["last_error"].as_str().unwrap().contains("no public address"), "{record}");
    assert!(receiver.requests().is_empty(), "the local server was never called");
}

#[tokio::test]
async fn a_webhook_to_a_closed_port_is_retried_until_its_attempts_are_spent() {
    let app = spawn_webhook_app().await;
    let user = app.new_user().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/hook");
    let id =
        enqueue(&app, &user, webhook(&url, json!({"max_attempts": 3, "backoff": {"kind": "fixed", "base_ms": 1}})))
            .await;
    assert!(app.runner("default").run_one().await.unwrap());
    let record = job(&app, &user, &id).await;
    assert_eq!(progress(&record), ("retrying", 1), "a connection error is retried: {record}");
    assert!(record["last_error"].as_str().unwrap().contains("could not be delivered"), "{record}");
    app.drain_jobs("default").await;
    let record = job(&app, &user, &id).await;
    assert_eq!(progress(&record), ("dead", 3), "{record}");
    assert_eq!(record["errors"].as_array().unwrap().len(), 3);
}

async fn notifications(app: &TestApp, user_id: Uuid) -> Vec<(String, String, String, Value)> {
    sqlx::query_as("SELECT job_id, title, body, data FROM notifications WHERE user_id = $1 ORDER BY created_at")
        .bind(user_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admins_client_notifies_a_user_once_stored_and_published() {
    let app = spawn_app().await;
    let (owner, target) = (app.new_admin().await, app.new_user().await);
    let key = app.create_client(&owner, json!({"name": "notifier"})).await["api_key"].as_str().unwrap().to_owned();
    let target_id = Uuid::parse_str(&target.id).unwrap();
    let mut pubsub = redis::Client::open(redis_url()).unwrap().get_async_pubsub().await.unwrap();
    pubsub.subscribe(notify_channel(&app.keys, target_id)).await.unwrap();

    let payload = json!({"user_id": target.id, "title": "Hello", "body": "World", "data": {"k": 1}});
    let created =
        app.keyed(Method::POST, "/v1/jobs", &key).json(&json!({"type": "notify", "payload": payload})).send().await;
    let created = created.unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert!(app.runner("default").run_one().await.unwrap());
    let record = json_of(app.keyed(Method::GET, &format!("/v1/jobs/{id}"), &key)).await;
    assert_eq!(progress(&record), ("succeeded", 1), "{record}");
    assert_eq!(record["result"]["receivers"], 1, "{record}");

    let message = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next())
        .await
        .expect("a message is published")
        .unwrap();
    let message: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!((message["title"].as_str(), message["body"].as_str()), (Some("Hello"), Some("World")));
    assert_eq!(message["data"], json!({"k": 1}));
    assert_eq!(message["id"], record["result"]["notification_id"]);
    let stored = notifications(&app, target_id).await;
    assert_eq!(stored, [(id, "Hello".to_owned(), "World".to_owned(), json!({"k": 1}))]);
    assert!(notifications(&app, Uuid::parse_str(&owner.id).unwrap()).await.is_empty());

    // The same job run twice (a retried attempt) stores once.
    let handler = NotifyHandler::new(app.state.notifications.clone());
    let context = JobContext {
        id: "default.direct".into(),
        kind: "notify".into(),
        payload: json!({"user_id": target.id, "title": "Again"}),
        attempt: 1,
        max_attempts: 3,
    };
    let first = handler.run(context.clone()).await.unwrap();
    let second = handler.run(JobContext { attempt: 2, ..context }).await.unwrap();
    assert_eq!(first["notification_id"], second["notification_id"]);
    let stored = notifications(&app, target_id).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored.iter().filter(|(job_id, ..)| job_id == "default.direct").count(), 1);
}

#[tokio::test]
async fn a_notification_for_an_unknown_user_is_dead_at_once() {
    let app = spawn_app().await;
    let owner = app.new_admin().await;
    let key = app.create_client(&owner, json!({"name": "notifier"})).await["api_key"].as_str().unwrap().to_owned();
    let ghost = Uuid::new_v4();
    let body = json!({"type": "notify", "payload": {"user_id": ghost, "title": "Hello"}});
    let created = app.keyed(Method::POST, "/v1/jobs", &key).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert!(app.runner("default").run_one().await.unwrap());
    let record = json_of(app.keyed(Method::GET, &format!("/v1/jobs/{id}"), &key)).await;
    assert_eq!(progress(&record), ("dead", 1), "{record}");
    assert_eq!(record["last_error"], "no such user");
    assert!(notifications(&app, ghost).await.is_empty());
}

#[tokio::test]
async fn only_admins_and_their_clients_may_notify_other_users() {
    let app = spawn_app().await;
    let (member, admin, target) = (app.new_user().await, app.new_admin().await, app.new_user().await);
    let key_of = |user: TestUser| {
        let app = &app;
        async move { app.create_client(&user, json!({"name": "notifier"})).await["api_key"].as_str().unwrap().to_owned() }
    };
    let (member_key, admin_key) = (key_of(member.clone()).await, key_of(admin.clone()).await);
    let body = json!({"type": "notify", "payload": {"user_id": target.id, "title": "Hello"}});
    let post = |request: reqwest::RequestBuilder| {
        let body = body.clone();
        async move { request.json(&body).send().await.unwrap() }
    };

    // Twice each: the second request finds the key in the caches, which
    // must carry the owner's role as faithfully as the first lookup.
    for _ in 0..2 {
        let refused = post(app.keyed(Method::POST, "/v1/jobs", &member_key)).await;
        let problem = crate::helpers::assert_problem(refused, 403).await;
        assert_eq!(problem["detail"], "notify jobs can only be enqueued by an admin or an admin's API client");
        let by_admins_client = post(app.keyed(Method::POST, "/v1/jobs", &admin_key)).await;
        assert_eq!(by_admins_client.status(), 201);
    }
    let refused = post(app.authed(Method::POST, "/v1/jobs", &member.access_token)).await;
    crate::helpers::assert_problem(refused, 403).await;
    let by_admin = post(app.authed(Method::POST, "/v1/jobs", &admin.access_token)).await;
    assert_eq!(by_admin.status(), 201);
    let batch = json!({"jobs": [{"type": "noop"}, body]});
    let refused = app.keyed(Method::POST, "/v1/jobs:batch", &member_key).json(&batch).send().await.unwrap();
    crate::helpers::assert_problem(refused, 403).await;

    app.drain_jobs("default").await;
    let target_id = Uuid::parse_str(&target.id).unwrap();
    assert_eq!(notifications(&app, target_id).await.len(), 3, "two by the admin's client, one by the admin");
}

#[tokio::test]
async fn mail_goes_through_the_queue_and_its_payload_is_dropped_once_delivered() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_eq!(app.post_json("/v1/auth/password/forgot", &json!({"email": user.email})).await.status(), 202);
    let (_, reset) = app.last_mail(&user.email).await.expect("reset mailed");
    let token = reset.split_whitespace().find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()));
    let token = token.expect("a reset token").to_owned();
    assert_eq!(app.post_json("/v1/auth/otp/request", &json!({"email": user.email})).await.status(), 202);
    for _ in 0..200 {
        if app.mail_count(&user.email).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.mail_count(&user.email).await, 2, "the code is mailed too");
    let (_, otp) = app.last_mail(&user.email).await.unwrap();
    let code = otp.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a code").to_owned();

    let job_prefix = app.keys.tagged("q:mail", &["job", ""]);
    let job_keys: Vec<String> = app.redis_keys().await.into_iter().filter(|k| k.starts_with(&job_prefix)).collect();
    assert_eq!(job_keys.len(), 2, "one job per message: {job_keys:?}");
    let mut conn = app.redis.clone();
    for key in &job_keys {
        let mut fields = HashMap::new();
        for _ in 0..200 {
            fields = redis::cmd("HGETALL").arg(key).query_async::<HashMap<String, String>>(&mut conn).await.unwrap();
            if fields.get("state").map(String::as_str) == Some("succeeded") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fields.get("state").map(String::as_str), Some("succeeded"), "{fields:?}");
        assert_eq!((fields["type"].as_str(), fields["owner"].as_str()), ("mail", "system"));
        assert!(!fields.contains_key("payload"), "the payload is gone: {fields:?}");
        assert!(fields.values().all(|v| !v.contains(&token) && !v.contains(&code)), "no secret is kept: {fields:?}");
    }
}

fn tick_every_second(kind: &str, payload: Value) -> CronSetting {
    CronSetting {
        name: "tick".into(),
        schedule: "* * * * * *".into(),
        queue: "cron".into(),
        kind: kind.into(),
        payload,
        catch_up_secs: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_schedulers_enqueue_each_tick_of_a_window_once() {
    let app = spawn_app().await;
    let entries = [tick_every_second("noop", json!({}))];
    let since = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let now = since + chrono::TimeDelta::seconds(5);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let scheduler = CronScheduler::new(app.state.jobs.clone(), &entries).unwrap();
        tasks.push(tokio::spawn(async move { scheduler.fire_due(since, now).await.unwrap() }));
    }
    let mut fired = Vec::new();
    for task in tasks {
        fired.push(task.await.unwrap());
    }
    assert_eq!(fired[0].len(), 5, "ticks at since+1 s .. since+5 s: {fired:?}");
    assert!(fired.iter().all(|ids| *ids == fired[0]), "every scheduler sees the same job per tick: {fired:?}");
    let distinct: HashSet<&String> = fired.iter().flatten().collect();
    assert_eq!(distinct.len(), 5);
    assert_eq!(app.state.jobs.queue("cron").overview().await.unwrap().queued, 5);
    // Firing the window again enqueues nothing new.
    let again = CronScheduler::new(app.state.jobs.clone(), &entries).unwrap().fire_due(since, now).await.unwrap();
    assert_eq!(again, fired[0]);
    assert_eq!(app.state.jobs.queue("cron").overview().await.unwrap().queued, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tick_missed_while_no_scheduler_ran_is_caught_up_once_within_its_window() {
    let app = spawn_app().await;
    let minutely = |name: &str, catch_up_secs: u64| CronSetting {
        name: name.into(),
        schedule: "0 * * * * *".into(),
        catch_up_secs,
        ..tick_every_second("noop", json!({}))
    };
    let entries = [minutely("late", 120), minutely("skipped", 0)];
    // 30 s after a full minute: the `late` entry's tick at :00 was missed.
    let minute = chrono::DateTime::from_timestamp(1_900_000_020, 0).unwrap();
    let start = minute + chrono::TimeDelta::seconds(30);
    let queued = || async { app.state.jobs.queue("cron").overview().await.unwrap().queued };

    let mut tasks = Vec::new();
    for _ in 0..3 {
        let scheduler = CronScheduler::new(app.state.jobs.clone(), &entries).unwrap();
        tasks.push(tokio::spawn(async move { scheduler.catch_up(start).await.unwrap() }));
    }
    let mut caught = Vec::new();
    for task in tasks {
        caught.push(task.await.unwrap());
    }
    assert_eq!(caught[0].len(), 1, "only the entry with a window, only its latest tick: {caught:?}");
    assert!(caught.iter().all(|ids| *ids == caught[0]), "three schedulers, one job: {caught:?}");
    assert_eq!(queued().await, 1);
    let tick_key = app.keys.tagged("q:cron", &["once", &format!("cron:late:{}", minute.timestamp())]);
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&tick_key).query_async(&mut app.redis.clone()).await.unwrap();
    assert!(ttl_ms > 120_000 + 590_000, "the tick's dedupe key outlives the catch-up window: {ttl_ms} ms");

    // A tick that already ran is not run again by a later start.
    let scheduler = CronScheduler::new(app.state.jobs.clone(), &entries).unwrap();
    let next_minute = minute + chrono::TimeDelta::seconds(60);
    let live = scheduler.fire_due(next_minute - chrono::TimeDelta::seconds(1), next_minute).await.unwrap();
    assert_eq!(live.len(), 2, "both entries fire live ticks: {live:?}");
    let restarted = scheduler.catch_up(next_minute + chrono::TimeDelta::seconds(5)).await.unwrap();
    assert!(live.contains(&restarted[0]), "{restarted:?} ran live as one of {live:?}");
    assert_eq!(queued().await, 3);

    // Outside the window nothing is caught up.
    let hourly = CronSetting { schedule: "0 0 * * * *".into(), catch_up_secs: 600, ..minutely("hourly", 0) };
    let scheduler = CronScheduler::new(app.state.jobs.clone(), &[hourly]).unwrap();
    let hour = chrono::DateTime::from_timestamp(1_900_000_800, 0).unwrap();
    assert!(scheduler.catch_up(hour + chrono::TimeDelta::seconds(1800)).await.unwrap().is_empty());
    assert_eq!(queued().await, 3);
    assert_eq!(scheduler.catch_up(hour + chrono::TimeDelta::seconds(300)).await.unwrap().len(), 1);
    assert_eq!(queued().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_schedulers_enqueue_each_live_tick_once() {
    let app = spawn_app().await;
    let entries = [tick_every_second("noop", json!({}))];
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let scheduler = CronScheduler::new(app.state.jobs.clone(), &entries).unwrap();
        tasks.push(tokio::spawn(scheduler.run(shutdown.clone())));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let keys = app.redis_keys().await;
    let ticks_prefix = app.keys.tagged("q:cron", &["once", "cron:tick:"]);
    let jobs_prefix = app.keys.tagged("q:cron", &["job", ""]);
    let ticks = keys.iter().filter(|k| k.starts_with(&ticks_prefix)).count();
    let jobs = keys.iter().filter(|k| k.starts_with(&jobs_prefix)).count();
    let queued = app.state.jobs.queue("cron").overview().await.unwrap().queued;
    assert!((1..=4).contains(&ticks), "{ticks} ticks in about 2.5 s: {keys:?}");
    assert_eq!(jobs, ticks, "one job per tick: {keys:?}");
    assert_eq!(queued, u64::try_from(ticks).unwrap());
}

#[tokio::test]
async fn cron_entries_are_checked_up_front() {
    let app = spawn_app().await;
    let jobs = || app.state.jobs.clone();
    let bad_schedule = CronSetting { schedule: "every minute".into(), ..tick_every_second("noop", json!({})) };
    let error = CronScheduler::new(jobs(), &[bad_schedule]).unwrap_err();
    assert!(error.starts_with("cron tick: schedule"), "{error}");
    let error = CronScheduler::new(jobs(), &[tick_every_second("launch_missiles", json!({}))]).unwrap_err();
    assert!(error.starts_with("cron tick: type"), "{error}");
    let bad_queue = CronSetting { queue: "Bad Queue".into(), ..tick_every_second("noop", json!({})) };
    assert!(CronScheduler::new(jobs(), &[bad_queue]).unwrap_err().contains("queue"));
    let error = CronScheduler::new(jobs(), &[tick_every_second("mail", json!({"to": "x@example.com"}))]).unwrap_err();
    assert!(error.starts_with("cron tick: payload.to"), "{error}");
    let mail = json!({"to": "ops@example.com", "subject": "daily", "body": "report"});
    assert!(CronScheduler::new(jobs(), &[tick_every_second("mail", mail)]).is_ok(), "system types are allowed");
    let notify = json!({"user_id": Uuid::new_v4(), "title": "tick"});
    assert!(CronScheduler::new(jobs(), &[tick_every_second("notify", notify)]).is_ok());
}
