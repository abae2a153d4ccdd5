//! Jobs over HTTP and the runner: enqueue, run, retries to success or
//! death, cancel, retry, tenant isolation, time limits, graceful shutdown,
//! blocking waits honouring delays, exactly-once delivery through several
//! runners, and the admins' queue views.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard::jobs::handlers::{JobContext, JobFailure};
use switchyard::jobs::runner::{Runner, RunnerOptions};
use switchyard_kit::Queue;
use tokio_util::sync::CancellationToken;

use crate::helpers::{assert_problem, json_of, spawn_app, waiter_connection, TestApp, TestUser};

fn options(app: &TestApp) -> RunnerOptions {
    switchyard::worker::jobs::runner_options(&app.state)
}

async fn enqueue(app: &TestApp, user: &TestUser, body: Value) -> reqwest::Response {
    app.authed(Method::POST, "/v1/jobs", &user.access_token).json(&body).send().await.unwrap()
}

async fn job(app: &TestApp, user: &TestUser, id: &str) -> Value {
    json_of(app.authed(Method::GET, &format!("/v1/jobs/{id}"), &user.access_token)).await
}

#[tokio::test]
async fn a_job_is_enqueued_run_and_reported() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let created = enqueue(&app, &user, json!({"type": "sleep", "payload": {"ms": 5}})).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["state"], "queued");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("default."));
    app.drain_jobs("default").await;
    let record = job(&app, &user, id).await;
    assert_eq!(record["state"], "succeeded");
    assert_eq!((record["attempts"].as_u64(), record["max_attempts"].as_u64()), (Some(1), Some(3)));
    assert_eq!((record["type"].as_str(), record["queue"].as_str()), (Some("sleep"), Some("default")));
    assert_eq!(record["result"], json!({"slept_ms": 5}));
    assert!(time_ms(&record, "finished_at") >= time_ms(&record, "started_at"));
    assert!(record.get("owner").is_none() && record.get("payload").is_none());
}

#[tokio::test]
async fn flaky_jobs_retry_to_success_or_die_after_max_attempts() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let backoff = json!({"kind": "fixed", "base_ms": 1});
    let ok: Value = enqueue(&app, &user, json!({"type": "flaky", "payload": {"fail_times": 2}, "backoff": backoff}))
        .await
        .json()
        .await
        .unwrap();
    let dead: Value = enqueue(
        &app,
        &user,
        json!({"type": "flaky", "payload": {"fail_times": 9}, "max_attempts": 2, "backoff": backoff}),
    )
    .await
    .json()
    .await
    .unwrap();
    app.drain_jobs("default").await;
    let ok = job(&app, &user, ok["id"].as_str().unwrap()).await;
    assert_eq!((ok["state"].as_str(), ok["attempts"].as_u64()), (Some("succeeded"), Some(3)));
    let dead_id = dead["id"].as_str().unwrap().to_owned();
    let dead = job(&app, &user, &dead_id).await;
    assert_eq!(dead["state"], "dead");
    assert!(dead["last_error"].as_str().unwrap().contains("flaky"));
    assert_eq!(dead["errors"].as_array().unwrap().len(), 2, "every attempt's error is kept");

    let retry =
        app.authed(Method::POST, &format!("/v1/jobs/{dead_id}/retry"), &user.access_token).send().await.unwrap();
    assert_eq!(retry.status(), 204);
    assert_eq!(job(&app, &user, &dead_id).await["state"], "queued");
}

#[tokio::test]
async fn waiting_jobs_can_be_cancelled_and_others_are_409() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let later: Value = enqueue(&app, &user, json!({"type": "noop", "delay_ms": 60000})).await.json().await.unwrap();
    assert_eq!(later["state"], "scheduled");
    let id = later["id"].as_str().unwrap();
    let cancel = |id: String| app.authed(Method::POST, &format!("/v1/jobs/{id}/cancel"), &user.access_token).send();
    assert_eq!(cancel(id.to_owned()).await.unwrap().status(), 204);
    let conflict = assert_problem(cancel(id.to_owned()).await.unwrap(), 409).await;
    assert_eq!(conflict["detail"], "the job is cancelled, which does not allow this");
    assert_eq!(job(&app, &user, id).await["state"], "cancelled");
}

#[tokio::test]
async fn unknown_types_and_bad_fields_are_422_and_other_tenants_get_404() {
    let app = spawn_app().await;
    let (alice, mallory) = (app.new_user().await, app.new_user().await);
    let body = assert_problem(enqueue(&app, &alice, json!({"type": "launch_missiles"})).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "type");
    let body = assert_problem(
        enqueue(&app, &alice, json!({"type": "noop", "queue": "Bad Queue", "priority": 5000})).await,
        422,
    )
    .await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["queue", "priority"]);

    let created: Value = enqueue(&app, &alice, json!({"type": "noop", "unique_key": "k"})).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let again: Value = enqueue(&app, &alice, json!({"type": "noop", "unique_key": "k"})).await.json().await.unwrap();
    assert_eq!(again["id"], created["id"], "a pending unique key returns the same job");
    let theirs: Value = enqueue(&app, &mallory, json!({"type": "noop", "unique_key": "k"})).await.json().await.unwrap();
    assert_ne!(theirs["id"], created["id"], "unique keys are per tenant");
    let peek = app.authed(Method::GET, &format!("/v1/jobs/{id}"), &mallory.access_token).send().await.unwrap();
    assert_problem(peek, 404).await;
    let cancel =
        app.authed(Method::POST, &format!("/v1/jobs/{id}/cancel"), &mallory.access_token).send().await.unwrap();
    assert_problem(cancel, 404).await;
    assert_problem(app.authed(Method::GET, "/v1/jobs/garbage", &alice.access_token).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn a_batch_enqueues_all_or_names_the_bad_job() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let batch = |jobs: Value| {
        app.authed(Method::POST, "/v1/jobs:batch", &user.access_token).json(&json!({"jobs": jobs})).send()
    };
    let created =
        batch(json!([{"type": "noop"}, {"type": "noop", "queue": "other"}, {"type": "sleep", "payload": {"ms": 1}}]))
            .await
            .unwrap();
    assert_eq!(created.status(), 201);
    let ids: Vec<String> = created.json::<Value>().await.unwrap()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[1].starts_with("other."));
    for id in &ids {
        assert_eq!(job(&app, &user, id).await["state"], "queued");
    }
    let bad = batch(json!([{"type": "noop"}, {"type": "nope"}])).await.unwrap();
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "jobs[1].type");
    let queued = app.state.jobs.queue("default").overview().await.unwrap().queued;
    assert_eq!(queued, 2, "the rejected batch enqueued nothing");
}

#[tokio::test]
async fn internal_and_operator_only_types_are_forbidden_to_users_and_bad_payloads_named() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let mail = json!({"type": "mail", "payload": {"to": "x@example.com", "subject": "s", "body": "b"}});
    let refused = assert_problem(enqueue(&app, &user, mail).await, 403).await;
    assert!(refused["detail"].as_str().unwrap().contains("mail jobs"), "{refused}");
    let notify = json!({"type": "notify", "payload": {"user_id": user.id, "title": "hi"}});
    let refused = assert_problem(enqueue(&app, &user, notify).await, 403).await;
    assert!(refused["detail"].as_str().unwrap().contains("admin"), "{refused}");
    let unknown = json!({"type": "nope", "payload": {}});
    assert_eq!(assert_problem(enqueue(&app, &user, unknown).await, 422).await["errors"][0]["field"], "type");
    let typo = json!({"type": "noop", "delay": 60000});
    assert_eq!(assert_problem(enqueue(&app, &user, typo).await, 422).await["errors"][0]["field"], "delay");
    let hook = json!({"type": "webhook", "payload": {"url": "ftp://example.com", "body": {}}});
    assert_eq!(assert_problem(enqueue(&app, &user, hook).await, 422).await["errors"][0]["field"], "payload.url");
    let sleep = json!({"type": "sleep", "payload": {"ms": "long"}});
    assert_eq!(assert_problem(enqueue(&app, &user, sleep).await, 422).await["errors"][0]["field"], "payload.ms");
}

#[tokio::test]
async fn an_attempt_running_past_its_timeout_fails_and_is_retried() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let body = json!({"type": "sleep", "payload": {"ms": 5000}, "timeout_ms": 50, "max_attempts": 1});
    let created: Value = enqueue(&app, &user, body).await.json().await.unwrap();
    assert!(app.runner("default").run_one().await.unwrap());
    let record = job(&app, &user, created["id"].as_str().unwrap()).await;
    assert_eq!(record["state"], "dead");
    assert_eq!(record["last_error"], "timed out after 50 ms");
}

/// A runner working `queue` in the background; cancel the token to stop it.
async fn start_runner(runner: Runner, concurrency: usize) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner.run(waiter_connection().await, concurrency, shutdown.clone()));
    (shutdown, task)
}

async fn wait_for_state(app: &TestApp, user: &TestUser, id: &str, state: &str) -> Value {
    for _ in 0..400 {
        let record = job(app, user, id).await;
        if record["state"] == state {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never reached {state}: {}", job(app, user, id).await);
}

#[tokio::test]
async fn an_idle_runner_wakes_for_new_jobs_and_never_starts_a_delayed_one_early() {
    // How soon after it is due a job starts is a latency, measured by the
    // benchmarks rather than asserted here.
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (shutdown, task) = start_runner(app.runner("default"), 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // the runner is blocked waiting
    let now: Value = enqueue(&app, &user, json!({"type": "noop"})).await.json().await.unwrap();
    wait_for_state(&app, &user, now["id"].as_str().unwrap(), "succeeded").await;
    for delay in [300, 700] {
        let later: Value = enqueue(&app, &user, json!({"type": "noop", "delay_ms": delay})).await.json().await.unwrap();
        let record = wait_for_state(&app, &user, later["id"].as_str().unwrap(), "succeeded").await;
        let due = time_ms(&record, "scheduled_for");
        let started = time_ms(&record, "started_at");
        assert!(started >= due, "not before it is due");
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_short_jobs_finish_and_releases_the_rest_unspent() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let short: Value =
        enqueue(&app, &user, json!({"type": "sleep", "payload": {"ms": 100}})).await.json().await.unwrap();
    let long: Value =
        enqueue(&app, &user, json!({"type": "sleep", "payload": {"ms": 30000}})).await.json().await.unwrap();
    let mut opts = options(&app);
    opts.shutdown_grace = Duration::from_millis(400);
    let runner =
        Runner::new(app.state.jobs.queue("default"), Arc::new(switchyard::app::job_handlers(&app.state)), opts);
    let (shutdown, task) = start_runner(runner, 2).await;
    wait_for_state(&app, &user, long["id"].as_str().unwrap(), "running").await;
    shutdown.cancel();
    task.await.unwrap();
    let short = job(&app, &user, short["id"].as_str().unwrap()).await;
    assert_eq!(short["state"], "succeeded", "finished within the grace period");
    let long = job(&app, &user, long["id"].as_str().unwrap()).await;
    assert_eq!((long["state"].as_str(), long["attempts"].as_u64()), (Some("queued"), Some(0)), "released, not spent");
}

#[tokio::test]
async fn ten_thousand_jobs_through_four_runners_each_run_exactly_once() {
    let app = spawn_app().await;
    let seen_key = app.keys.key(&["test", "seen"]);
    // The side effect is counted in Redis, per job id.
    let count_handler = {
        let (redis, seen_key) = (app.redis.clone(), seen_key.clone());
        move |job: JobContext| {
            let (mut redis, seen_key) = (redis.clone(), seen_key.clone());
            async move {
                let _: i64 = redis::cmd("HINCRBY")
                    .arg(&seen_key)
                    .arg(&job.id)
                    .arg(1)
                    .query_async(&mut redis)
                    .await
                    .map_err(|e| JobFailure::retry(e.to_string()))?;
                Ok(Value::Null)
            }
        }
    };
    let handlers = Arc::new(switchyard::app::job_handlers(&app.state).with("count", count_handler));
    let queue = app.state.jobs.queue("bulk");
    let total = 10_000;
    for _ in 0..total / 500 {
        let jobs: Vec<_> = (0..500).map(|_| switchyard_kit::NewJob::new("count", "{}")).collect();
        queue.enqueue_many(&jobs).await.unwrap();
    }
    let mut runners = Vec::new();
    for _ in 0..4 {
        runners.push(start_runner(Runner::new(queue.clone(), handlers.clone(), options(&app)), 8).await);
    }
    let mut conn = app.redis.clone();
    for _ in 0..3000 {
        let o = queue.overview().await.unwrap();
        if o.queued == 0 && o.running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (shutdown, task) in runners {
        shutdown.cancel();
        task.await.unwrap();
    }
    let seen: std::collections::HashMap<String, u32> =
        redis::cmd("HGETALL").arg(&seen_key).query_async(&mut conn).await.unwrap();
    assert_eq!(seen.len(), total, "every job ran");
    assert!(seen.values().all(|&n| n == 1), "no job ran twice");
    let o = queue.overview().await.unwrap();
    assert_eq!((o.queued, o.running, o.retrying, o.dead), (0, 0, 0, 0));
}

#[tokio::test]
async fn a_queue_is_registered_again_when_redis_lost_its_keys() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    // An API key still authenticates once Redis is empty (its cache falls
    // back to PostgreSQL); the user's session would not survive.
    let key = app.create_client(&user, json!({"name": "enqueuer"})).await["api_key"].as_str().unwrap().to_owned();
    let post = |body: Value| app.keyed(Method::POST, "/v1/jobs", &key).json(&body).send();
    let registered = || Queue::registered(&app.redis, &app.keys);
    assert_eq!(post(json!({"type": "noop", "queue": "ops"})).await.unwrap().status(), 201);
    assert_eq!(registered().await.unwrap(), ["ops"]);

    // A restart without persistence: this process still remembers having
    // registered `ops`, and must not trust that.
    let mut conn = app.redis.clone();
    redis::cmd("DEL").arg(app.redis_keys().await).query_async::<()>(&mut conn).await.unwrap();
    assert!(registered().await.unwrap().is_empty());
    assert_eq!(post(json!({"type": "noop", "queue": "ops"})).await.unwrap().status(), 201);
    assert_eq!(registered().await.unwrap(), ["ops"], "workers without --queues find the queue again");
    let batch = json!({"jobs": [{"type": "noop", "queue": "ops"}]});
    assert_eq!(app.keyed(Method::POST, "/v1/jobs:batch", &key).json(&batch).send().await.unwrap().status(), 201);
    assert_eq!(registered().await.unwrap(), ["ops"]);
}

#[tokio::test]
async fn admins_see_queues_and_handle_dead_letters_and_pauses() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let admin = app.new_admin().await;
    assert_problem(app.authed(Method::GET, "/v1/queues", &user.access_token).send().await.unwrap(), 403).await;

    let doomed = json!({"type": "flaky", "payload": {"fail_times": 5}, "max_attempts": 1, "queue": "ops"});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created: Value = enqueue(&app, &user, doomed.clone()).await.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    enqueue(&app, &user, json!({"type": "noop", "queue": "ops", "delay_ms": 60000})).await;
    app.drain_jobs("ops").await;
    enqueue(&app, &user, json!({"type": "noop", "queue": "ops"})).await;

    let queues = json_of(app.authed(Method::GET, "/v1/queues", &admin.access_token)).await;
    let ops = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "ops")
        .expect("the ops queue is listed")
        .clone();
    assert_eq!((ops["queued"].as_u64(), ops["scheduled"].as_u64(), ops["dead"].as_u64()), (Some(1), Some(1), Some(3)));
    assert_eq!(ops["failed_last_minute"], 3);
    assert!(ops["oldest_queued_age_ms"].as_u64().is_some());

    let page = json_of(app.authed(Method::GET, "/v1/queues/ops/dead?limit=2", &admin.access_token)).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["state"], "dead");
    assert!(page["jobs"][0]["last_error"].as_str().unwrap().contains("flaky"));
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest =
        json_of(app.authed(Method::GET, &format!("/v1/queues/ops/dead?limit=2&cursor={cursor}"), &admin.access_token))
            .await;
    assert_eq!(rest["jobs"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let bad = app.authed(Method::GET, "/v1/queues/ops/dead?limit=0", &admin.access_token).send().await.unwrap();
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "limit");
    let missing =
        assert_problem(app.authed(Method::GET, "/v1/queues/nope/dead", &admin.access_token).send().await.unwrap(), 404)
            .await;
    assert_eq!(missing["detail"], "no such queue");

    let retried = json_of(
        app.authed(Method::POST, "/v1/queues/ops/dead/retry", &admin.access_token).json(&json!({"ids": [ids[0]]})),
    )
    .await;
    assert_eq!(retried["count"], 1);
    assert_eq!(job(&app, &user, &ids[0]).await["state"], "queued");
    let purged = json_of(app.authed(Method::DELETE, "/v1/queues/ops/dead", &admin.access_token)).await;
    assert_eq!(purged["count"], 2);
    assert_problem(
        app.authed(Method::GET, &format!("/v1/jobs/{}", ids[1]), &user.access_token).send().await.unwrap(),
        404,
    )
    .await;

    let paused = json_of(app.authed(Method::POST, "/v1/queues/ops/pause", &admin.access_token)).await;
    assert_eq!(paused["paused"], true);
    assert!(!app.runner("ops").run_one().await.unwrap(), "a paused queue hands out nothing");
    let resumed = json_of(app.authed(Method::POST, "/v1/queues/ops/resume", &admin.access_token)).await;
    assert_eq!(resumed["paused"], false);
    assert!(app.runner("ops").run_one().await.unwrap());

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"jobs_queue_depth{queue="ops",state="dead"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"jobs_queue_oldest_age_seconds{queue="ops"}"#));
}

#[tokio::test]
async fn a_prefetched_job_waits_for_a_slot_and_goes_back_unspent_at_shutdown() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let long: Value =
        enqueue(&app, &user, json!({"type": "sleep", "payload": {"ms": 30000}})).await.json().await.unwrap();
    let next: Value = enqueue(&app, &user, json!({"type": "noop"})).await.json().await.unwrap();
    let mut opts = options(&app);
    opts.shutdown_grace = Duration::from_millis(100);
    opts.prefetch_per_slot = 1;
    let runner =
        Runner::new(app.state.jobs.queue("default"), Arc::new(switchyard::app::job_handlers(&app.state)), opts);
    let (shutdown, task) = start_runner(runner, 1).await;
    wait_for_state(&app, &user, long["id"].as_str().unwrap(), "running").await;
    // The second job is leased ahead (state running, not started) while the
    // only slot is busy.
    wait_for_state(&app, &user, next["id"].as_str().unwrap(), "running").await;
    shutdown.cancel();
    task.await.unwrap();
    for id in [&long, &next] {
        let record = job(&app, &user, id["id"].as_str().unwrap()).await;
        assert_eq!((record["state"].as_str(), record["attempts"].as_u64()), (Some("queued"), Some(0)), "{record}");
    }
}

#[tokio::test]
async fn run_at_schedules_for_that_time_and_excludes_delay_ms() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(30);
    let created: Value =
        enqueue(&app, &user, json!({"type": "noop", "run_at": at.to_rfc3339()})).await.json().await.unwrap();
    assert_eq!(created["state"], "scheduled");
    let record = job(&app, &user, created["id"].as_str().unwrap()).await;
    let scheduled_for = time_ms(&record, "scheduled_for");
    assert!((scheduled_for - at.timestamp_millis()).abs() < 1000, "{scheduled_for} vs {}", at.timestamp_millis());
    let past: Value =
        enqueue(&app, &user, json!({"type": "noop", "run_at": "2020-01-01T00:00:00Z"})).await.json().await.unwrap();
    assert_eq!(past["state"], "queued", "a past time runs now");
    let both = enqueue(&app, &user, json!({"type": "noop", "run_at": at.to_rfc3339(), "delay_ms": 5})).await;
    assert_eq!(assert_problem(both, 422).await["errors"][0]["field"], "run_at");
    let far = enqueue(&app, &user, json!({"type": "noop", "delay_ms": 400u64 * 24 * 3600 * 1000})).await;
    assert_eq!(assert_problem(far, 422).await["errors"][0]["field"], "delay_ms");
}

/// A job record's RFC 3339 time `field` in Unix milliseconds.
fn time_ms(record: &Value, field: &str) -> i64 {
    let text = record[field].as_str().unwrap_or_else(|| panic!("{field} is an RFC 3339 string: {record}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
}

#[tokio::test]
async fn what_the_document_allows_is_accepted_far_future_times_and_whole_floats_included() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    // Any RFC 3339 time: a job may wait years; a past time means now.
    let far = enqueue(&app, &user, json!({"type": "noop", "run_at": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(far.status(), 201);
    let far: Value = far.json().await.unwrap();
    assert_eq!(far["state"], "scheduled");
    // Whole numbers written with a fraction, at the top and in a payload.
    let floats = json!({"type": "sleep", "payload": {"ms": 5.0}, "priority": -480.0, "max_attempts": 2.0});
    let r = enqueue(&app, &user, floats).await;
    assert_eq!(r.status(), 201);
    let job = job(&app, &user, r.json::<Value>().await.unwrap()["id"].as_str().unwrap()).await;
    assert_eq!(job["max_attempts"], 2);
    let r = enqueue(&app, &user, json!({"type": "sleep", "payload": {"ms": 5.5}})).await;
    assert_eq!(assert_problem(r, 422).await["errors"][0]["field"], "payload.ms");
    // delay_ms and run_at exclude each other.
    let both = json!({"type": "noop", "delay_ms": 10, "run_at": "2999-01-01T00:00:00Z"});
    assert_eq!(assert_problem(enqueue(&app, &user, both).await, 422).await["errors"][0]["field"], "run_at");
}
