//! Jobs over HTTP and the runner: enqueue, run, retries to success or
//! death, cancel, retry, and tenant isolation.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard::jobs::runner::Runner;

use crate::helpers::{assert_problem, json_of, spawn_app, TestApp, TestUser};

async fn enqueue(app: &TestApp, user: &TestUser, body: Value) -> reqwest::Response {
    app.authed(Method::POST, "/v1/jobs", &user.access_token).json(&body).send().await.unwrap()
}

async fn job(app: &TestApp, user: &TestUser, id: &str) -> Value {
    json_of(app.authed(Method::GET, &format!("/v1/jobs/{id}"), &user.access_token)).await
}

/// Runs jobs until none is ready (waiting out short back-offs).
async fn drain(app: &TestApp, queue: &str) {
    let runner = Runner::new(app.state.jobs.queue(queue), queue, Duration::from_secs(5));
    let mut idle = 0;
    while idle < 20 {
        if runner.run_one().await.unwrap() {
            idle = 0;
        } else {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
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
    drain(&app, "default").await;
    let record = job(&app, &user, id).await;
    assert_eq!(record["state"], "succeeded");
    assert_eq!(record["attempts"], "1");
    assert_eq!(record["result"], r#"{"slept_ms":5}"#);
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
    drain(&app, "default").await;
    let ok = job(&app, &user, ok["id"].as_str().unwrap()).await;
    assert_eq!((ok["state"].as_str(), ok["attempts"].as_str()), (Some("succeeded"), Some("3")));
    let dead_id = dead["id"].as_str().unwrap().to_owned();
    let dead = job(&app, &user, &dead_id).await;
    assert_eq!(dead["state"], "dead");
    assert!(dead["last_error"].as_str().unwrap().contains("flaky"));

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
    assert_problem(cancel(id.to_owned()).await.unwrap(), 409).await;
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
        batch(json!([{"type": "noop"}, {"type": "noop", "queue": "mail"}, {"type": "sleep", "payload": {"ms": 1}}]))
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
    assert!(ids[1].starts_with("mail."));
    for id in &ids {
        assert_eq!(job(&app, &user, id).await["state"], "queued");
    }
    let bad = batch(json!([{"type": "noop"}, {"type": "nope"}])).await.unwrap();
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "jobs[1].type");
    let (ready, ..) = app.state.jobs.queue("default").counts().await.unwrap();
    assert_eq!(ready, 2, "the rejected batch enqueued nothing");
}
