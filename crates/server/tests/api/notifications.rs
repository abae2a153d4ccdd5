//! The notification inbox: what the notify job stored, newest first with
//! keyset paging, unread counts, marking read (only one's own), who may
//! read it, and the live stream (server-sent events) that ends on shutdown.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of, read_until, spawn_app, TestApp, TestUser};

async fn inbox(app: &TestApp, user: &TestUser, query: &str) -> Value {
    json_of(app.authed(Method::GET, &format!("/v1/notifications{query}"), &user.access_token)).await
}

fn titles(page: &Value) -> Vec<String> {
    page["notifications"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_user_pages_through_and_marks_read_what_the_notify_job_stored() {
    let app = spawn_app().await;
    let (admin, target, other) = (app.new_admin().await, app.new_user().await, app.new_user().await);
    for title in ["first", "second", "third"] {
        let job = json!({"type": "notify", "payload": {"user_id": target.id, "title": title, "data": {"t": title}}});
        let created = app.authed(Method::POST, "/v1/jobs", &admin.access_token).json(&job).send().await.unwrap();
        assert_eq!(created.status(), 201);
        // One at a time, so the creation times are ordered.
        app.drain_jobs("default").await;
    }

    let page = inbox(&app, &target, "?limit=2").await;
    assert_eq!(titles(&page), ["third", "second"], "newest first");
    assert_eq!(page["unread"], 3);
    assert_eq!(page["notifications"][0]["data"], json!({"t": "third"}));
    assert!(page["notifications"][0]["read_at"].is_null());
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = inbox(&app, &target, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(titles(&rest), ["first"]);
    assert!(rest["next_cursor"].is_null());
    assert!(titles(&inbox(&app, &other, "").await).is_empty(), "another user's inbox is their own");

    let second = page["notifications"][1]["id"].as_str().unwrap().to_owned();
    let mark = |user: &TestUser| {
        app.authed(Method::POST, &format!("/v1/notifications/{second}/read"), &user.access_token).send()
    };
    assert_problem(mark(&other).await.unwrap(), 404).await;
    assert_eq!(mark(&target).await.unwrap().status(), 204);
    let read_at = inbox(&app, &target, "").await["notifications"][1]["read_at"].clone();
    assert!(read_at.is_string());
    assert_eq!(mark(&target).await.unwrap().status(), 204, "marking again is fine");
    assert_eq!(inbox(&app, &target, "").await["notifications"][1]["read_at"], read_at, "the first read time stays");
    let unread = inbox(&app, &target, "?unread=true").await;
    assert_eq!((titles(&unread), unread["unread"].clone()), (vec!["third".to_owned(), "first".to_owned()], json!(2)));

    let all = json_of(app.authed(Method::POST, "/v1/notifications:read-all", &target.access_token)).await;
    assert_eq!(all["marked"], 2);
    assert_eq!(inbox(&app, &target, "").await["unread"], 0);
}

#[tokio::test]
async fn bad_paging_is_422_and_the_inbox_is_for_users_only() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for (query, field) in [("?cursor=nope", "cursor"), ("?limit=0", "limit"), ("?limit=101", "limit")] {
        let response = app.authed(Method::GET, &format!("/v1/notifications{query}"), &user.access_token).send();
        assert_eq!(assert_problem(response.await.unwrap(), 422).await["errors"][0]["field"], field, "{query}");
    }
    let missing =
        app.authed(Method::POST, &format!("/v1/notifications/{}/read", uuid::Uuid::new_v4()), &user.access_token);
    assert_problem(missing.send().await.unwrap(), 404).await;
    let key = app.create_client(&user, json!({"name": "svc"})).await["api_key"].as_str().unwrap().to_owned();
    assert_problem(app.keyed(Method::GET, "/v1/notifications", &key).send().await.unwrap(), 403).await;
    assert_problem(app.get("/v1/notifications").await, 401).await;
}

#[tokio::test]
async fn notifications_arrive_live_as_server_sent_events_and_the_stream_ends_on_shutdown() {
    let app = spawn_app().await;
    let (admin, target, other) = (app.new_admin().await, app.new_user().await, app.new_user().await);
    let open = |user: &TestUser| app.authed(Method::GET, "/v1/notifications/live", &user.access_token).send();
    let mut live = open(&target).await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut other_live = open(&other).await.unwrap();
    let mut second_tab = open(&target).await.unwrap();

    for (user, title) in [(&other, "for other"), (&target, "for target")] {
        let job = json!({"type": "notify", "payload": {"user_id": user.id, "title": title, "data": {"k": 1}}});
        let created = app.authed(Method::POST, "/v1/jobs", &admin.access_token).json(&job).send().await.unwrap();
        assert_eq!(created.status(), 201);
        app.drain_jobs("default").await;
    }
    let seen = read_until(&mut live, "for target").await;
    assert!(seen.contains("event: notification"), "{seen}");
    assert!(!seen.contains("for other"), "only the user's own: {seen}");
    let data = seen.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let notification: Value = serde_json::from_str(data).unwrap();
    let stored = inbox(&app, &target, "").await;
    assert_eq!(notification["id"], stored["notifications"][0]["id"], "the stored notification: {notification}");
    assert_eq!(notification["data"], json!({"k": 1}));
    read_until(&mut second_tab, "for target").await;
    read_until(&mut other_live, "for other").await;

    app.shut_down();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while live.chunk().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when the server shuts down");
}
