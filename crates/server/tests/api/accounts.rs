//! One account: a user and the API clients it owns share every
//! account-scoped resource (locks, jobs, the action log, rate-limit check
//! keys, boards and streams), and two accounts share none.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, json_of, spawn_app};

#[tokio::test]
async fn a_user_and_its_clients_are_one_account_and_other_accounts_are_apart() {
    let app = spawn_app().await;
    let (owner, stranger) = (app.new_user().await, app.new_user().await);
    let first_key = app.create_client(&owner, json!({"name": "first"})).await["api_key"].as_str().unwrap().to_owned();
    let second_key = app.create_client(&owner, json!({"name": "second"})).await["api_key"].as_str().unwrap().to_owned();
    let strangers_key =
        app.create_client(&stranger, json!({"name": "theirs"})).await["api_key"].as_str().unwrap().to_owned();

    // Locks: the client holds the account's lock, so its user cannot take
    // it; another account's lock of the same name is its own.
    let taken = app.keyed(Method::POST, "/v1/locks/report-gen", &first_key).json(&json!({"ttl_ms": 5000}));
    let taken = json_of(taken).await;
    let by_owner = app.authed(Method::POST, "/v1/locks/report-gen", &owner.access_token).json(&json!({"ttl_ms": 5000}));
    assert_problem(by_owner.send().await.unwrap(), 409).await;
    let by_stranger = app.keyed(Method::POST, "/v1/locks/report-gen", &strangers_key).json(&json!({"ttl_ms": 5000}));
    let theirs = json_of(by_stranger).await;
    assert_eq!(theirs["fencing_token"], 1, "another account's lock has its own fencing sequence");
    // The user may release what its client holds, with the token.
    let release = app
        .authed(Method::DELETE, "/v1/locks/report-gen", &owner.access_token)
        .header("lock-token", taken["token"].as_str().unwrap());
    assert_eq!(release.send().await.unwrap().status(), 204);
    let again = app.authed(Method::POST, "/v1/locks/report-gen", &owner.access_token).json(&json!({"ttl_ms": 5000}));
    assert_eq!(json_of(again).await["fencing_token"], 2, "one fencing sequence per account");

    // Jobs: what a client enqueued, its user can read and cancel.
    let job = app.keyed(Method::POST, "/v1/jobs", &first_key).json(&json!({"type": "noop", "delay_ms": 60000}));
    let job = json_of(job).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    assert_eq!(json_of(app.authed(Method::GET, &path, &owner.access_token)).await["id"], job["id"]);
    assert_problem(app.keyed(Method::GET, &path, &strangers_key).send().await.unwrap(), 404).await;
    let cancel = app.authed(Method::POST, &format!("{path}/cancel"), &owner.access_token);
    assert_eq!(cancel.send().await.unwrap().status(), 204);

    // The action log lists every actor of the account, and only them.
    for (key, kind) in [(&first_key, "from-first"), (&second_key, "from-second")] {
        let r = app.keyed(Method::POST, "/v1/actions", key).json(&json!({"type": kind})).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = app.authed(Method::POST, "/v1/actions", &owner.access_token).json(&json!({"type": "from-user"}));
    assert_eq!(r.send().await.unwrap().status(), 201);
    let r = app.keyed(Method::POST, "/v1/actions", &strangers_key).json(&json!({"type": "from-stranger"}));
    assert_eq!(r.send().await.unwrap().status(), 201);
    for seen_by in [
        app.authed(Method::GET, "/v1/actions", &owner.access_token),
        app.keyed(Method::GET, "/v1/actions", &second_key),
    ] {
        let page = json_of(seen_by).await;
        let mut kinds: Vec<&str> =
            page["actions"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["from-first", "from-second", "from-user"]);
    }

    // Rate-limit check keys: both clients count against the same key.
    let check = |key: &str| {
        app.keyed(Method::POST, "/v1/ratelimit/check", key).json(&json!({
            "key": "exports", "algorithm": "fixed_window", "limit": 1, "window_ms": 60000
        }))
    };
    assert_eq!(json_of(check(&first_key)).await["allowed"], true);
    assert_eq!(json_of(check(&second_key)).await["allowed"], false, "the account's second client shares the key");
    assert_eq!(json_of(check(&strangers_key)).await["allowed"], true, "another account's key is its own");
}

#[tokio::test]
async fn actions_recorded_before_accounts_existed_are_backfilled_to_their_account() {
    // The migration gives old rows an account: a user's is its own, a
    // client's is its owner's. Rows inserted without one (as before the
    // column) and backfilled the same way appear in the account's log.
    let app = spawn_app().await;
    let owner = app.new_user().await;
    let client = app.create_client(&owner, json!({"name": "old"})).await;
    let client_id: uuid::Uuid = client["client"]["id"].as_str().unwrap().parse().unwrap();
    sqlx::query(
        "INSERT INTO actions (id, actor_kind, actor_id, type, published_at) VALUES ($1, 'client', $2, 'legacy', now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(client_id)
    .execute(&app.db)
    .await
    .unwrap();
    let backfill = include_str!("../../../../migrations/20261202000007_actions_account.sql")
        .lines()
        .filter(|line| line.starts_with("UPDATE"))
        .collect::<Vec<_>>();
    for statement in backfill {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&app.db).await.unwrap();
    }
    let page = json_of(app.authed(Method::GET, "/v1/actions", &owner.access_token)).await;
    assert_eq!(page["actions"][0]["type"], "legacy");
}
