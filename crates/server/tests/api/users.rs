//! User management: who may list, read, change and delete whom; deletion
//! takes every credential of the user down at once and keeps an anonymised
//! row; a role change signs the user out; the operator streams cannot be
//! written through the events API.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of, spawn_app};

#[tokio::test]
async fn deleting_a_user_makes_their_access_token_refresh_token_and_api_keys_fail_at_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let client = app.create_client(&user, json!({"name": "ci"})).await;
    let key = client["api_key"].as_str().unwrap();
    // Both tiers of the key cache hold the key as valid before the deletion.
    for _ in 0..2 {
        assert_eq!(app.keyed(Method::GET, "/v1/auth/whoami", key).send().await.unwrap().status(), 200);
    }
    assert_eq!(app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap().status(), 200);

    let path = format!("/v1/users/{}", user.id);
    let deleted = app.authed(Method::DELETE, &path, &user.access_token).send().await.unwrap();
    assert_eq!(deleted.status(), 204, "a user deletes themself");

    assert_problem(app.keyed(Method::GET, "/v1/auth/whoami", key).send().await.unwrap(), 401).await;
    assert_problem(app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap(), 401).await;
    let refresh = app.post_json("/v1/auth/refresh", &json!({"refresh_token": user.refresh_token})).await;
    assert_problem(refresh, 401).await;
    assert_problem(app.login(&user.email, &user.password).await, 401).await;

    let (username, email, hash, deleted_at): (String, String, String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT username, email, password_hash, deleted_at FROM users WHERE id = $1::uuid")
            .bind(&user.id)
            .fetch_one(&app.db)
            .await
            .expect("the row is kept");
    assert!(deleted_at.is_some());
    assert!(username.starts_with("deleted:") && email.ends_with("@deleted.invalid"), "{username} {email}");
    assert_ne!(email, user.email);
    assert!(hash.is_empty(), "the password hash is cleared");
    let live_keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys k JOIN api_clients c ON c.id = k.client_id
         WHERE c.owner_id = $1::uuid AND k.revoked_at IS NULL",
    )
    .bind(&user.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(live_keys, 0, "every key is revoked");

    let admin = app.new_admin().await;
    let seen = json_of(app.authed(Method::GET, &path, &admin.access_token)).await;
    assert!(seen["user"]["deleted_at"].is_string(), "admins see the anonymised row: {seen}");
    let again = app.authed(Method::DELETE, &path, &admin.access_token).send().await.unwrap();
    assert_eq!(again.status(), 204, "deleting again repeats the revocations");
    let other = app.new_user().await;
    let response = app.authed(Method::DELETE, &path, &other.access_token).send().await.unwrap();
    assert_problem(response, 404).await;
}

#[tokio::test]
async fn admins_list_and_search_users_page_by_page_and_others_may_not() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.new_user().await.id);
    }
    let member = app.new_user().await;
    let forbidden = app.authed(Method::GET, "/v1/users", &member.access_token).send().await.unwrap();
    assert_problem(forbidden, 403).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users?limit=2&cursor={c}"),
            None => "/v1/users?limit=2".into(),
        };
        let page = json_of(app.authed(Method::GET, &path, &admin.access_token)).await;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(users.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "every user once: {seen:?}");
    assert_eq!(seen.iter().collect::<std::collections::HashSet<_>>().len(), 7);
    assert_eq!(seen[0], member.id, "newest first");

    let email_part = &member.email[..8];
    let found = json_of(app.authed(Method::GET, &format!("/v1/users?query={email_part}"), &admin.access_token)).await;
    let found: Vec<&str> = found["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(found, [member.id.as_str()]);
    let wildcard = json_of(app.authed(Method::GET, "/v1/users?query=%25", &admin.access_token)).await;
    assert!(wildcard["users"].as_array().unwrap().is_empty(), "% is matched literally");

    let bad = app.authed(Method::GET, "/v1/users?cursor=nope&limit=0", &admin.access_token).send().await.unwrap();
    let problem = assert_problem(bad, 422).await;
    assert!(problem.to_string().contains("cursor") && problem.to_string().contains("limit"), "{problem}");
}

#[tokio::test]
async fn a_user_reads_and_changes_themself_but_not_their_role_nor_anyone_else() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    let mine = format!("/v1/users/{}", user.id);
    let theirs = format!("/v1/users/{}", other.id);

    let me = json_of(app.authed(Method::GET, &mine, &user.access_token)).await;
    assert_eq!(me["user"]["id"], user.id.as_str());
    assert!(me["user"]["display_name"].is_null());
    assert_problem(app.authed(Method::GET, &theirs, &user.access_token).send().await.unwrap(), 404).await;
    let patch = app.authed(Method::PATCH, &theirs, &user.access_token).json(&json!({"display_name": "x"}));
    assert_problem(patch.send().await.unwrap(), 404).await;

    let renamed = app
        .authed(Method::PATCH, &mine, &user.access_token)
        .json(&json!({"display_name": "  Ada Lovelace ", "username": "ada_l"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(
        (renamed["user"]["display_name"].as_str(), renamed["user"]["username"].as_str()),
        (Some("Ada Lovelace"), Some("ada_l"))
    );
    let cleared =
        json_of(app.authed(Method::PATCH, &mine, &user.access_token).json(&json!({"display_name": null}))).await;
    assert!(cleared["user"]["display_name"].is_null(), "null clears it: {cleared}");

    let promote = app.authed(Method::PATCH, &mine, &user.access_token).json(&json!({"role": "admin"}));
    assert_problem(promote.send().await.unwrap(), 403).await;
    let taken =
        app.authed(Method::PATCH, &theirs, &app.new_admin().await.access_token).json(&json!({"username": "ADA_L"}));
    assert_problem(taken.send().await.unwrap(), 409).await;
    // Naming no change (or only a null role) changes nothing and answers the user.
    for body in [json!({}), json!({"role": null})] {
        let same = json_of(app.authed(Method::PATCH, &mine, &user.access_token).json(&body)).await;
        assert_eq!((same["user"]["username"].as_str(), same["user"]["role"].as_str()), (Some("ada_l"), Some("user")));
    }
    for (body, field) in [(json!({"display_name": ""}), "display_name"), (json!({"username": "a b"}), "username")] {
        let response = app.authed(Method::PATCH, &mine, &user.access_token).json(&body).send().await.unwrap();
        let problem = assert_problem(response, 422).await;
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
}

#[tokio::test]
async fn an_admin_changing_a_role_signs_the_user_out_and_the_new_role_applies() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let path = format!("/v1/users/{}", user.id);
    let promoted = json_of(app.authed(Method::PATCH, &path, &admin.access_token).json(&json!({"role": "admin"}))).await;
    assert_eq!(promoted["user"]["role"], "admin");
    assert_problem(app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap(), 401).await;
    let tokens: Value = app.login(&user.email, &user.password).await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.authed(Method::GET, "/v1/users", token).send().await.unwrap().status(), 200, "now an admin");
}

#[tokio::test]
async fn nobody_publishes_to_an_operator_stream_through_the_events_api() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    for stream in ["sys:users", "sys:chat"] {
        let body = json!({"stream": stream, "type": "user.created", "data": {}});
        let response = app.authed(Method::POST, "/v1/events", &admin.access_token).json(&body).send().await.unwrap();
        let problem = assert_problem(response, 422).await;
        assert!(problem.to_string().contains("stream"), "{problem}");
    }
}
