//! Leaderboards over HTTP: scores and ranks, pages, neighbours, deletion,
//! tenant isolation, the read-only actions board, and input checks.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of, spawn_app, spawn_app_with_policies, TestApp, TestUser};

async fn score(app: &TestApp, user: &TestUser, board: &str, body: Value) -> reqwest::Response {
    let path = format!("/v1/leaderboards/{board}/scores");
    app.authed(Method::POST, &path, &user.access_token).json(&body).send().await.unwrap()
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> reqwest::Response {
    app.authed(Method::GET, path, &user.access_token).send().await.unwrap()
}

#[tokio::test]
async fn scores_ranks_pages_and_neighbours() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for (member, points) in [("ann", 30.0), ("bob", 10.0), ("cid", 20.0), ("dee", 20.0)] {
        assert_eq!(
            score(&app, &user, "weekly", json!({"member": member, "score": points, "mode": "set"})).await.status(),
            200
        );
    }
    let bumped: Value = score(&app, &user, "weekly", json!({"member": "bob", "score": 25, "mode": "increment"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bumped, json!({"member": "bob", "score": 35.0, "rank": 1}));

    let top: Value = get(&app, &user, "/v1/leaderboards/weekly/top?limit=3").await.json().await.unwrap();
    assert_eq!(
        top,
        json!({"entries": [
            {"rank": 1, "member": "bob", "score": 35.0},
            {"rank": 2, "member": "ann", "score": 30.0},
            {"rank": 3, "member": "dee", "score": 20.0},
        ]})
    );
    let page: Value = get(&app, &user, "/v1/leaderboards/weekly?page=2&per_page=3").await.json().await.unwrap();
    assert_eq!(page["total"], 4);
    assert_eq!(page["entries"], json!([{"rank": 4, "member": "cid", "score": 20.0}]));
    let member: Value = get(&app, &user, "/v1/leaderboards/weekly/members/ann").await.json().await.unwrap();
    assert_eq!(member["rank"], 2);
    let around: Value =
        get(&app, &user, "/v1/leaderboards/weekly/members/dee/around?radius=1").await.json().await.unwrap();
    let ranks: Vec<u64> = around["entries"].as_array().unwrap().iter().map(|s| s["rank"].as_u64().unwrap()).collect();
    assert_eq!(ranks, [2, 3, 4]);

    assert_problem(get(&app, &user, "/v1/leaderboards/weekly/members/zed").await, 404).await;
    let delete =
        app.authed(Method::DELETE, "/v1/leaderboards/weekly/members/ann", &user.access_token).send().await.unwrap();
    assert_eq!(delete.status(), 204);
    assert_problem(get(&app, &user, "/v1/leaderboards/weekly/members/ann").await, 404).await;
    let reset = app.authed(Method::DELETE, "/v1/leaderboards/weekly", &user.access_token).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    let empty: Value = get(&app, &user, "/v1/leaderboards/weekly/top").await.json().await.unwrap();
    assert_eq!(empty, json!({"entries": []}));
}

#[tokio::test]
async fn two_hundred_concurrent_increments_over_http_give_the_exact_total() {
    // No rate-limit policies: the default per-user burst limit would refuse
    // most of these 200 requests (correctly, but not what is tested here).
    let app = spawn_app_with_policies(&[], json!([])).await;
    let user = app.new_user().await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (client, url, token) =
                (app.client.clone(), app.url("/v1/leaderboards/race/scores"), user.access_token.clone());
            tokio::spawn(async move {
                let body = json!({"member": "m", "score": 1, "mode": "increment"});
                client.post(url).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let member: Value = get(&app, &user, "/v1/leaderboards/race/members/m").await.json().await.unwrap();
    assert_eq!(member["score"], 200.0);
}

#[tokio::test]
async fn tenants_never_see_each_others_boards_but_share_with_their_clients() {
    let app = spawn_app().await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    score(&app, &alice, "shared-name", json!({"member": "x", "score": 1})).await;
    let theirs: Value = get(&app, &bob, "/v1/leaderboards/shared-name/top").await.json().await.unwrap();
    assert_eq!(theirs, json!({"entries": []}));

    let created =
        json_of(app.authed(Method::POST, "/v1/clients", &alice.access_token).json(&json!({"name": "game-server"})))
            .await;
    let via_key =
        json_of(app.keyed(Method::GET, "/v1/leaderboards/shared-name/top", created["api_key"].as_str().unwrap())).await;
    assert_eq!(via_key["entries"][0]["member"], "x", "a user's clients share the user's boards");
}

#[tokio::test]
async fn the_actions_board_is_read_only_and_input_is_checked() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_eq!(get(&app, &user, "/v1/leaderboards/actions/top").await.status(), 200);
    assert_problem(score(&app, &user, "actions", json!({"member": "me", "score": 1})).await, 403).await;
    let bad = score(&app, &user, "Bad Name", json!({"member": "m", "score": 1})).await;
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "board");
    let bad = score(&app, &user, "ok", json!({"member": "m", "score": 1, "mode": "double"})).await;
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "mode");
    let bad = get(&app, &user, "/v1/leaderboards/ok/top?limit=1000").await;
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "limit");
    assert_problem(app.get("/v1/leaderboards/ok/top").await, 401).await;
}

#[tokio::test]
async fn a_periodic_board_starts_over_and_keeps_the_previous_period_readable() {
    use switchyard::leaderboards::service::{period_board, ResetPeriod};
    let app = spawn_app().await;
    let user = app.new_user().await;
    let configure = |reset: &str| {
        app.authed(Method::PUT, "/v1/leaderboards/daily-race", &user.access_token).json(&json!({"reset": reset})).send()
    };
    assert_eq!(configure("daily").await.unwrap().json::<Value>().await.unwrap(), json!({"reset": "daily"}));
    let bad = configure("hourly").await.unwrap();
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "reset");

    score(&app, &user, "daily-race", json!({"member": "today", "score": 5})).await;
    // Yesterday's board, as the service names it, written directly.
    let boards = switchyard_kit::Leaderboards::new(app.redis.clone(), app.keys.clone());
    let today = ResetPeriod::Daily.index(chrono::Utc::now().timestamp()).unwrap();
    let scoped = format!("user:{}/daily-race", user.id);
    boards
        .submit(&period_board(&scoped, ResetPeriod::Daily, today - 1), "yesterday", 9.0, switchyard_kit::ScoreMode::Set)
        .await
        .unwrap();

    let current: Value = get(&app, &user, "/v1/leaderboards/daily-race/top").await.json().await.unwrap();
    assert_eq!(current, json!({"entries": [{"rank": 1, "member": "today", "score": 5.0}]}));
    let previous: Value =
        get(&app, &user, "/v1/leaderboards/daily-race/top?period=previous").await.json().await.unwrap();
    assert_eq!(previous, json!({"entries": [{"rank": 1, "member": "yesterday", "score": 9.0}]}));

    let mut conn = app.redis.clone();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(boards.key(&period_board(&scoped, ResetPeriod::Daily, today)))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 86_400_000 && ttl <= 2 * 86_400_000, "lives until the end of tomorrow: {ttl}");

    configure("never").await.unwrap();
    let plain: Value = get(&app, &user, "/v1/leaderboards/daily-race/top").await.json().await.unwrap();
    assert_eq!(plain, json!({"entries": []}), "without a period the board is the plain, un-periodic one");
}
