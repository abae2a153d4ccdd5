//! Event streams over HTTP: publish and replay, validation that names the
//! field, accounts that never see each other's streams (a user's API
//! clients share them), consumer groups with ack, reclaim and dead letters,
//! waiting reads, and exclusivity under concurrent consumers.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of, spawn_app, TestApp, TestUser};

/// POSTs `body` to `path` as `user`; the response.
async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> reqwest::Response {
    app.authed(Method::POST, path, &user.access_token).json(&body).send().await.unwrap()
}

/// POSTs and expects 200 or 201; the JSON body.
async fn post_ok(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let response = post(app, user, path, body).await;
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> Value {
    json_of(app.authed(Method::GET, path, &user.access_token)).await
}

async fn create_group(app: &TestApp, user: &TestUser, path: &str, start: &str) -> reqwest::Response {
    app.authed(Method::PUT, path, &user.access_token).json(&json!({"start": start})).send().await.unwrap()
}

fn ids_of(events: &Value) -> Vec<String> {
    events.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn events_are_published_and_replayed_in_order_with_their_data() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let one =
        post(&app, &user, "/v1/events", json!({"stream": "users", "type": "user.created", "data": {"id": 1}})).await;
    assert_eq!(one.status(), 201);
    let first = one.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let batch = json!({"stream": "users", "events": [
        {"type": "user.updated", "data": {"id": 1, "name": "Ada"}},
        {"type": "user.deleted", "data": {"id": 1}},
        {"type": "note", "data": "plain string"},
    ]});
    let ids = post_ok(&app, &user, "/v1/events:batch", batch).await["ids"].clone();
    let mut all = vec![first];
    all.extend(ids.as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()));

    let page = get(&app, &user, "/v1/events/users").await;
    assert_eq!(ids_of(&page["events"]), all);
    assert_eq!(page["events"][1]["type"], "user.updated");
    assert_eq!(page["events"][1]["data"], json!({"id": 1, "name": "Ada"}));
    assert_eq!(page["events"][3]["data"], "plain string");
    let appended = chrono::DateTime::parse_from_rfc3339(page["events"][0]["timestamp"].as_str().unwrap()).unwrap();
    assert!(appended.timestamp_millis() > 1_700_000_000_000);
    assert_eq!(page["next_cursor"], all[3]);

    let rest = get(&app, &user, &format!("/v1/events/users?cursor={}&limit=2", all[0])).await;
    assert_eq!(ids_of(&rest["events"]), all[1..3]);
    let end = get(&app, &user, &format!("/v1/events/users?after={}", all[3])).await;
    assert!(end["events"].as_array().unwrap().is_empty() && end["next_cursor"].is_null());
    assert_eq!(get(&app, &user, "/v1/events/users/stats").await["length"], 4);
}

#[tokio::test]
async fn bad_input_is_422_naming_the_field() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let field = |body: Value| async move { body["errors"][0]["field"].as_str().unwrap().to_owned() };
    let cases = [
        ("/v1/events", json!({"stream": "Bad Name", "type": "t"}), "stream"),
        ("/v1/events", json!({"stream": "s", "type": ""}), "type"),
        ("/v1/events", json!({"stream": "s", "type": "t", "data": "x".repeat(70_000)}), "data"),
        ("/v1/events:batch", json!({"stream": "s", "events": [{"type": "ok"}, {"type": "\u{7}"}]}), "events[1].type"),
        ("/v1/events:batch", json!({"stream": "s", "events": []}), "events"),
        ("/v1/events:batch", json!({"stream": "s", "events": [{"type": ""}]}), "events[0].type"),
    ];
    for (path, body, expected) in cases {
        let problem = assert_problem(post(&app, &user, path, body).await, 422).await;
        assert_eq!(field(problem).await, expected, "{path}");
    }
    assert_eq!(get(&app, &user, "/v1/events/s/stats").await["length"], 0, "nothing half-written");
    let bad_after = app.authed(Method::GET, "/v1/events/s?after=latest", &user.access_token).send().await.unwrap();
    assert_eq!(field(assert_problem(bad_after, 422).await).await, "after");
    let bad_limit = app.authed(Method::GET, "/v1/events/s?limit=0", &user.access_token).send().await.unwrap();
    assert_eq!(field(assert_problem(bad_limit, 422).await).await, "limit");
    // A group needs no body (it starts at the stream's end).
    let bare = app.authed(Method::PUT, "/v1/events/s/groups/bare", &user.access_token).send().await.unwrap();
    assert_eq!(bare.status(), 201);
    let bad_start = create_group(&app, &user, "/v1/events/s/groups/g", "middle").await;
    assert_eq!(field(assert_problem(bad_start, 422).await).await, "start");
    let bad_consumer = post(&app, &user, "/v1/events/s/groups/g/read", json!({"consumer": "a b"})).await;
    assert_eq!(field(assert_problem(bad_consumer, 422).await).await, "consumer");
    let bad_wait = post(&app, &user, "/v1/events/s/groups/g/read", json!({"consumer": "a", "wait_ms": 60_000})).await;
    assert_eq!(field(assert_problem(bad_wait, 422).await).await, "wait_ms");
    let huge_idle = json!({"consumer": "a", "min_idle_ms": 9_223_372_036_854_775_808u64});
    let bad_idle = post(&app, &user, "/v1/events/s/groups/g/reclaim", huge_idle).await;
    assert_eq!(field(assert_problem(bad_idle, 422).await).await, "min_idle_ms", "not a 500 from Redis");
    let bad_ids = post(&app, &user, "/v1/events/s/groups/g/ack", json!({"ids": ["nope"]})).await;
    assert_eq!(field(assert_problem(bad_ids, 422).await).await, "ids");
    let no_group = post(&app, &user, "/v1/events/s/groups/missing/read", json!({"consumer": "a"})).await;
    assert_problem(no_group, 404).await;
}

#[tokio::test]
async fn accounts_never_see_each_others_streams_but_share_with_their_clients() {
    let app = spawn_app().await;
    let (alice, mallory) = (app.new_user().await, app.new_user().await);
    let key = app.create_client(&alice, json!({"name": "backend"})).await["api_key"].as_str().unwrap().to_owned();
    let by_client = app
        .keyed(Method::POST, "/v1/events", &key)
        .json(&json!({"stream": "orders", "type": "order.placed", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_client.status(), 201);
    assert_eq!(get(&app, &alice, "/v1/events/orders").await["events"].as_array().unwrap().len(), 1);
    assert!(get(&app, &mallory, "/v1/events/orders").await["events"].as_array().unwrap().is_empty());
    assert_eq!(get(&app, &mallory, "/v1/events/orders/stats").await["length"], 0);
}

#[tokio::test]
async fn a_group_delivers_each_event_once_and_reclaims_and_dead_letters_what_is_never_acknowledged() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    post_ok(&app, &user, "/v1/events", json!({"stream": "jobs", "type": "before", "data": {}})).await;
    assert_eq!(create_group(&app, &user, "/v1/events/jobs/groups/billing", "beginning").await.status(), 201);
    let again = create_group(&app, &user, "/v1/events/jobs/groups/billing", "end").await;
    assert_eq!((again.status().as_u16(), again.json::<Value>().await.unwrap()["created"].clone()), (200, json!(false)));
    assert_eq!(create_group(&app, &user, "/v1/events/jobs/groups/live", "end").await.status(), 201);
    post_ok(&app, &user, "/v1/events", json!({"stream": "jobs", "type": "after", "data": {}})).await;

    let read = |group: &'static str, consumer: &'static str| {
        let (app, user) = (&app, &user);
        async move {
            let path = format!("/v1/events/jobs/groups/{group}/read");
            post_ok(app, user, &path, json!({"consumer": consumer, "count": 1})).await["events"].clone()
        }
    };
    let a = read("billing", "a").await;
    let b = read("billing", "b").await;
    assert_eq!((a[0]["type"].as_str(), b[0]["type"].as_str()), (Some("before"), Some("after")));
    assert_eq!(a[0]["deliveries"], 1);
    assert!(read("billing", "c").await.as_array().unwrap().is_empty());
    assert_eq!(read("live", "x").await[0]["type"], "after", "a group started at the end sees only new events");

    let acked = post_ok(&app, &user, "/v1/events/jobs/groups/billing/ack", json!({"ids": ids_of(&b)})).await;
    assert_eq!(acked["acknowledged"], 1);
    let stats = get(&app, &user, "/v1/events/jobs/stats").await;
    let billing = stats["groups"].as_array().unwrap().iter().find(|g| g["name"] == "billing").unwrap().clone();
    assert_eq!(
        (billing["pending"].as_u64(), billing["consumers"].as_u64(), billing["lag"].as_u64()),
        (Some(1), Some(2), Some(0))
    );

    // `a` crashed holding `before`: after two more deliveries it is dead.
    let reclaim = |consumer: &'static str| {
        let (app, user) = (&app, &user);
        async move {
            let body = json!({"consumer": consumer, "min_idle_ms": 0, "max_deliveries": 3});
            post_ok(app, user, "/v1/events/jobs/groups/billing/reclaim", body).await
        }
    };
    assert_eq!(reclaim("b").await["events"][0]["deliveries"], 2);
    assert_eq!(reclaim("c").await["events"][0]["deliveries"], 3);
    let dead = reclaim("d").await;
    assert!(dead["events"].as_array().unwrap().is_empty());
    assert_eq!(dead["dead"], json!(ids_of(&a)));
    let letters = get(&app, &user, "/v1/events/jobs/dead").await;
    assert_eq!(letters["events"][0]["event"]["id"], a[0]["id"]);
    assert_eq!(
        (letters["events"][0]["group"].as_str(), letters["events"][0]["deliveries"].as_u64()),
        (Some("billing"), Some(3))
    );
    let stats = get(&app, &user, "/v1/events/jobs/stats").await;
    assert_eq!(stats["dead_letters"], 1);
    let waiting = post(&app, &user, "/v1/events/jobs/groups/missing/reclaim", json!({"consumer": "z"})).await;
    assert_problem(waiting, 404).await;

    let delete = || app.authed(Method::DELETE, "/v1/events/jobs/groups/billing", &user.access_token).send();
    assert_eq!(delete().await.unwrap().status(), 204);
    assert_problem(delete().await.unwrap(), 404).await;
    assert_problem(post(&app, &user, "/v1/events/jobs/groups/billing/read", json!({"consumer": "a"})).await, 404).await;
    assert_eq!(get(&app, &user, "/v1/events/jobs/stats").await["length"], 2, "the events stay");
    let no_stream = app.authed(Method::DELETE, "/v1/events/nothing/groups/g", &user.access_token).send().await.unwrap();
    assert_problem(no_stream, 404).await;
}

#[tokio::test]
async fn a_waiting_read_answers_when_an_event_is_published() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    create_group(&app, &user, "/v1/events/feed/groups/ui", "end").await;
    let empty = post_ok(&app, &user, "/v1/events/feed/groups/ui/read", json!({"consumer": "a", "wait_ms": 50})).await;
    assert!(empty["events"].as_array().unwrap().is_empty(), "nothing came within the wait");

    let waiting = {
        let request = app
            .authed(Method::POST, "/v1/events/feed/groups/ui/read", &user.access_token)
            .json(&json!({"consumer": "a", "wait_ms": 10_000}));
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let id =
        post_ok(&app, &user, "/v1/events", json!({"stream": "feed", "type": "ping", "data": {}})).await["id"].clone();
    let got = waiting.await.unwrap();
    assert_eq!(got["events"][0]["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_events_through_eight_concurrent_http_consumers_are_each_delivered_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    create_group(&app, &user, "/v1/events/work/groups/pool", "beginning").await;
    for chunk in 0..2 {
        let events: Vec<Value> = (0..100).map(|n| json!({"type": "task", "data": {"n": chunk * 100 + n}})).collect();
        post_ok(&app, &user, "/v1/events:batch", json!({"stream": "work", "events": events})).await;
    }
    // An API key of the same account with a high limit: the user's own
    // default limit (20/s) would throttle the consumers.
    let key = app.create_client(&user, json!({"name": "pool", "rate_limit": 1_000_000})).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for consumer in 0..8 {
        let (client, base, key) = (reqwest::Client::new(), app.url(""), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let read = client
                    .post(format!("{base}/v1/events/work/groups/pool/read"))
                    .header("x-api-key", &key)
                    .json(&json!({"consumer": format!("c{consumer}"), "count": 3}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(read.status(), 200);
                let read: Value = read.json().await.unwrap();
                let ids = ids_of(&read["events"]);
                if ids.is_empty() {
                    return seen;
                }
                let acked = client
                    .post(format!("{base}/v1/events/work/groups/pool/ack"))
                    .header("x-api-key", &key)
                    .json(&json!({"ids": ids}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(acked.status(), 200);
                seen.extend(read["events"].as_array().unwrap().iter().map(|e| e["data"]["n"].as_u64().unwrap()));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (200, 200), "every event once, none twice");
    let stats = get(&app, &user, "/v1/events/work/stats").await;
    assert_eq!(stats["groups"][0]["pending"], 0);
}
