//! Tasks per account (another account's is a 404), completion exactly once
//! under concurrency, their events on the account's stream `tasks`; system
//! logs on the account's stream `logs`.

use reqwest::Method;
use serde_json::{json, Value};
use switchyard::outbox::Relay;
use switchyard_kit::{Event, EventStream};

use crate::helpers::{assert_problem, json_of, spawn_app, TestApp, TestUser};

async fn create_task(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let response = app.authed(Method::POST, "/v1/tasks", &user.access_token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "task created");
    response.json::<Value>().await.unwrap()["task"].clone()
}

async fn stream_events(app: &TestApp, user: &TestUser, stream: &str) -> Vec<Event> {
    let name = format!("user:{}/{stream}", user.id);
    EventStream::new(app.redis.clone(), app.keys.clone(), &name).range(None, 10_000).await.unwrap()
}

#[tokio::test]
async fn a_task_belongs_to_its_account_and_is_completed_once_with_its_events() {
    let app = spawn_app().await;
    let owner = app.new_user().await;
    let stranger = app.new_user().await;
    let task = create_task(
        &app,
        &owner,
        json!({"title": " Ship it ", "description": "the release", "priority": "high", "assigned_to": stranger.id}),
    )
    .await;
    assert_eq!((task["title"].as_str(), task["status"].as_str()), (Some("Ship it"), Some("open")));
    assert_eq!(task["created_by"], format!("user:{}", owner.id));
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());

    assert_eq!(json_of(app.authed(Method::GET, &path, &owner.access_token)).await["task"]["id"], task["id"]);
    assert_problem(app.authed(Method::GET, &path, &stranger.access_token).send().await.unwrap(), 404).await;
    let complete = format!("{path}/complete");
    assert_problem(app.authed(Method::POST, &complete, &stranger.access_token).send().await.unwrap(), 404).await;

    let done = app.authed(Method::POST, &complete, &owner.access_token).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(done.json::<Value>().await.unwrap()["task"]["status"], "completed");
    assert_problem(app.authed(Method::POST, &complete, &owner.access_token).send().await.unwrap(), 409).await;

    Relay::new(app.db.clone(), app.redis.clone(), app.keys.clone(), std::time::Duration::from_secs(60))
        .pass()
        .await
        .unwrap();
    let events = stream_events(&app, &owner, "tasks").await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["task.created", "task.completed"]);
    let created: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!((created["task_id"].as_str(), created["priority"].as_str()), (task["id"].as_str(), Some("high")));
    assert_eq!(created["assigned_to"], stranger.id.as_str());
    assert!(stream_events(&app, &stranger, "tasks").await.is_empty(), "another account's stream is untouched");
}

#[tokio::test]
async fn of_a_hundred_concurrent_completions_exactly_one_succeeds() {
    let app = spawn_app().await;
    let owner = app.new_user().await;
    let task = create_task(&app, &owner, json!({"title": "race", "priority": "normal"})).await;
    let complete = format!("/v1/tasks/{}/complete", task["id"].as_str().unwrap());
    // A client of the account with room for a hundred requests at once.
    let client = app.create_client(&owner, json!({"name": "racer", "rate_limit": 100_000})).await;
    let key = client["api_key"].as_str().unwrap();
    let attempts = (0..100).map(|_| app.keyed(Method::POST, &complete, key).send());
    let statuses: Vec<u16> =
        futures::future::join_all(attempts).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 99, "{statuses:?}");
    let completions: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'task.completed'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(completions, 1, "one task.completed");
}

#[tokio::test]
async fn tasks_are_listed_newest_first_filtered_and_paged() {
    let app = spawn_app().await;
    let owner = app.new_user().await;
    let other = app.new_user().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let assigned = if n % 2 == 0 { Some(other.id.clone()) } else { None };
        let task =
            create_task(&app, &owner, json!({"title": format!("t{n}"), "priority": "low", "assigned_to": assigned}))
                .await;
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    create_task(&app, &other, json!({"title": "theirs", "priority": "low"})).await;
    let done = app.authed(Method::POST, &format!("/v1/tasks/{}/complete", ids[0]), &owner.access_token);
    assert_eq!(done.send().await.unwrap().status(), 200);

    let mut seen = Vec::new();
    let mut path = "/v1/tasks?limit=2".to_owned();
    loop {
        let page = json_of(app.authed(Method::GET, &path, &owner.access_token)).await;
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/v1/tasks?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids.iter().rev().cloned().collect::<Vec<_>>(), "newest first, the account's only");

    let ids_of = |page: Value| -> Vec<String> {
        page["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    };
    let open = ids_of(json_of(app.authed(Method::GET, "/v1/tasks?status=open", &owner.access_token)).await);
    assert_eq!(open, [ids[4].clone(), ids[3].clone(), ids[2].clone(), ids[1].clone()]);
    let path = format!("/v1/tasks?status=completed&assigned_to={}", other.id);
    assert_eq!(ids_of(json_of(app.authed(Method::GET, &path, &owner.access_token)).await), [ids[0].clone()]);

    let bad = app.authed(Method::GET, "/v1/tasks?status=done", &owner.access_token).send().await.unwrap();
    assert!(assert_problem(bad, 422).await.to_string().contains("status"));
}

#[tokio::test]
async fn bad_tasks_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let owner = app.new_user().await;
    for (body, field) in [
        (json!({"title": "  ", "priority": "low"}), "title"),
        (json!({"title": "x", "priority": "urgent"}), "priority"),
        (json!({"title": "x"}), "priority"),
        (json!({"title": "x", "priority": "low", "assigned_to": uuid::Uuid::now_v7()}), "assigned_to"),
        (json!({"title": "x", "priority": "low", "description": "d".repeat(10_001)}), "description"),
    ] {
        let response = app.authed(Method::POST, "/v1/tasks", &owner.access_token).json(&body).send().await.unwrap();
        let problem = assert_problem(response, 422).await;
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&app.db).await.unwrap();
    assert_eq!(count, 1, "only the signup's event: no task event for a refused task");
}

#[tokio::test]
async fn logs_publish_system_info_and_system_error_on_the_accounts_stream() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let client = app.create_client(&user, json!({"name": "logger"})).await;
    let info = app
        .authed(Method::POST, "/v1/logs", &user.access_token)
        .json(&json!({"level": "info", "message": "started"}))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 201);
    let id = info.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let error = app
        .keyed(Method::POST, "/v1/logs", client["api_key"].as_str().unwrap())
        .json(&json!({"level": "error", "message": "payment timed out", "context": {"order": 7}}))
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 201);

    let events = stream_events(&app, &user, "logs").await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["system.info", "system.error"], "a client's logs go to its owner's account");
    assert_eq!(events[0].id, id);
    let data: Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!((data["level"].as_str(), data["context"]["order"].as_i64()), (Some("error"), Some(7)));
    assert_eq!(data["logged_by"], format!("client:{}", client["client"]["id"].as_str().unwrap()));

    for (body, field) in
        [(json!({"level": "debug", "message": "x"}), "level"), (json!({"level": "info", "message": ""}), "message")]
    {
        let response = app.authed(Method::POST, "/v1/logs", &user.access_token).json(&body).send().await.unwrap();
        assert!(assert_problem(response, 422).await.to_string().contains(field), "{field}");
    }
}
