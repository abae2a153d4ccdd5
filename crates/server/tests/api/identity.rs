//! Identity against the real services: signup, login and its limits,
//! tokens and sessions, refresh rotation and reuse detection, one-time
//! codes and password resets.

use reqwest::Method;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;

use crate::helpers::{assert_problem, json_of, spawn_app, spawn_app_with, TestApp};

#[tokio::test]
async fn signup_returns_the_user_without_secrets() {
    let app = spawn_app().await;
    let response = app.signup("alice", "Alice@Example.com", "correct horse").await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "Alice@Example.com");
    assert_eq!(user["role"], "user");
    assert!(user["id"].is_string() && user["created_at"].is_string());
    assert!(!body.to_string().contains("correct horse") && !body.to_string().contains("argon2"));
}

#[tokio::test]
async fn signup_conflicts_on_email_case_insensitively_and_on_username() {
    let app = spawn_app().await;
    assert_eq!(app.signup("alice", "alice@example.com", "password1").await.status(), 201);
    let body = assert_problem(app.signup("alice2", "ALICE@example.COM", "password1").await, 409).await;
    assert!(body["detail"].as_str().unwrap().contains("email"));
    let body = assert_problem(app.signup("Alice", "other@example.com", "password1").await, 409).await;
    assert!(body["detail"].as_str().unwrap().contains("username"));
}

#[tokio::test]
async fn signup_names_every_invalid_field() {
    let app = spawn_app().await;
    let body = assert_problem(app.signup("a b", "not-an-email", "short").await, 422).await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["username", "email", "password"]);
    assert!(!body.to_string().contains("short\""), "values are not echoed: {body}");
    let long = "x".repeat(129);
    let body = assert_problem(app.signup("bob", "bob@example.com", &long).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "password");
    let body = assert_problem(app.post_json("/v1/auth/signup", &json!({"username": "bob"})).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "email");
}

#[tokio::test]
async fn fifty_concurrent_signups_with_one_email_create_exactly_one_user() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (client, url) = (app.client.clone(), app.url("/v1/auth/signup"));
        tasks.push(tokio::spawn(async move {
            let body = json!({"username": format!("user{i}"), "email": "same@example.com", "password": "password1"});
            client.post(url).json(&body).send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 49, "{statuses:?}");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn login_returns_bearer_tokens_that_authenticate() {
    let app = spawn_app().await;
    app.signup("carol", "carol@example.com", "password1").await;
    let response = app.login("CAROL@example.com", "password1").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let me = json_of(app.authed(Method::GET, "/v1/me", body["access_token"].as_str().unwrap())).await;
    assert_eq!(me["user"]["username"], "carol");
    assert_problem(app.get("/v1/me").await, 401).await;
    assert_problem(app.authed(Method::GET, "/v1/me", "not-a-jwt").send().await.unwrap(), 401).await;
}

#[tokio::test]
async fn wrong_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.signup("dave", "dave@example.com", "password1").await;
    let wrong_password: Value = assert_problem(app.login("dave@example.com", "password2").await, 401).await;
    let unknown_email: Value = assert_problem(app.login("nobody@example.com", "password1").await, 401).await;
    assert_eq!(wrong_password, unknown_email);
}

#[tokio::test]
async fn five_failures_for_an_email_lock_it_even_with_the_right_password() {
    let app = spawn_app().await;
    app.signup("erin", "erin@example.com", "password1").await;
    for _ in 0..5 {
        assert_eq!(app.login("erin@example.com", "wrong-password").await.status(), 401);
    }
    let response = app.login("erin@example.com", "password1").await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_problem(response, 429).await;
    // Another address from the same IP is not locked by this.
    app.signup("frank", "frank@example.com", "password1").await;
    assert_eq!(app.login("frank@example.com", "password1").await.status(), 200);
}

#[tokio::test]
async fn failures_from_one_ip_across_emails_lock_the_ip_for_the_configured_window() {
    let app =
        spawn_app_with(&[("login_max_failures_per_ip", "3"), ("login_failure_window_secs", "1")], OpenApiRouter::new())
            .await;
    app.signup("gina", "gina@example.com", "password1").await;
    for i in 0..3 {
        assert_eq!(app.login(&format!("x{i}@example.com"), "nope-nope").await.status(), 401);
    }
    let response = app.login("gina@example.com", "password1").await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 429).await;
    // (That a window ends on its own is tested, with millisecond windows, in
    // the kit's attempts tests.)
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", &json!({"refresh_token": token})).await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_session() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let first = refresh(&app, &user.refresh_token).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["session_id"], user.session_id.as_str());
    let new_refresh = first["refresh_token"].as_str().unwrap();
    let new_access = first["access_token"].as_str().unwrap();
    assert_eq!(app.authed(Method::GET, "/v1/me", new_access).send().await.unwrap().status(), 200);

    // The old token is spent: presenting it again is reuse, which revokes.
    assert_problem(refresh(&app, &user.refresh_token).await, 401).await;
    assert_problem(refresh(&app, new_refresh).await, 401).await;
    assert_problem(app.authed(Method::GET, "/v1/me", new_access).send().await.unwrap(), 401).await;
    assert_problem(refresh(&app, "garbage").await, 401).await;
}

#[tokio::test]
async fn logout_rejects_the_still_unexpired_access_token_at_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let logout = app.authed(Method::POST, "/v1/auth/logout", &user.access_token).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    assert_problem(app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap(), 401).await;
    assert_problem(refresh(&app, &user.refresh_token).await, 401).await;
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked_and_only_your_own_can_be_revoked() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let second: Value = app.login(&user.email, &user.password).await.json().await.unwrap();
    let list = json_of(app.authed(Method::GET, "/v1/auth/sessions", &user.access_token)).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], user.session_id.as_str());
    assert_eq!(current[0]["ip"], "127.0.0.1");

    let other = app.new_user().await;
    let path = format!("/v1/auth/sessions/{}", other.session_id);
    assert_problem(app.authed(Method::DELETE, &path, &user.access_token).send().await.unwrap(), 404).await;
    assert_eq!(app.authed(Method::GET, "/v1/me", &other.access_token).send().await.unwrap().status(), 200);

    let path = format!("/v1/auth/sessions/{}", second["session_id"].as_str().unwrap());
    assert_eq!(app.authed(Method::DELETE, &path, &user.access_token).send().await.unwrap().status(), 204);
    let revoked = app.authed(Method::GET, "/v1/me", second["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_problem(revoked, 401).await;
}

fn six_digits(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a 6-digit code").to_owned()
}

#[tokio::test]
async fn otp_login_is_single_use_and_unknown_addresses_look_the_same() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let app = &app;
    let request = |email: &str| {
        let body = json!({"email": email});
        async move { app.post_json("/v1/auth/otp/request", &body).await }
    };
    assert_eq!(request("stranger@example.com").await.status(), 202);
    assert_eq!(request(&user.email).await.status(), 202);
    let (_, body) = app.last_mail(&user.email).await.expect("code mailed");
    let code = six_digits(&body);
    assert_eq!(app.mail_count("stranger@example.com").await, 0);

    let user = &user;
    let verify = |code: &str| {
        let body = json!({"email": user.email, "code": code});
        async move { app.post_json("/v1/auth/otp/verify", &body).await }
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_problem(verify(wrong).await, 401).await;
    let ok = verify(&code).await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    assert!(tokens["access_token"].is_string());
    assert_problem(verify(&code).await, 401).await;
    assert_problem(verify("12ab").await, 422).await;
}

#[tokio::test]
async fn five_wrong_codes_void_the_code_and_requests_are_rate_limited() {
    let app = spawn_app_with(&[("otp_requests_per_window", "2")], OpenApiRouter::new()).await;
    let user = app.new_user().await;
    assert_eq!(app.post_json("/v1/auth/otp/request", &json!({"email": user.email})).await.status(), 202);
    let (_, body) = app.last_mail(&user.email).await.unwrap();
    let code = six_digits(&body);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let r = app.post_json("/v1/auth/otp/verify", &json!({"email": user.email, "code": wrong})).await;
        assert_eq!(r.status(), 401);
    }
    let r = app.post_json("/v1/auth/otp/verify", &json!({"email": user.email, "code": code})).await;
    assert_problem(r, 401).await;

    assert_eq!(app.post_json("/v1/auth/otp/request", &json!({"email": user.email})).await.status(), 202);
    let limited = app.post_json("/v1/auth/otp/request", &json!({"email": user.email})).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429).await;
}

#[tokio::test]
async fn a_password_reset_changes_the_password_once_and_revokes_every_session() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let second: Value = app.login(&user.email, &user.password).await.json().await.unwrap();
    assert_eq!(app.post_json("/v1/auth/password/forgot", &json!({"email": "ghost@example.com"})).await.status(), 202);
    assert_eq!(app.post_json("/v1/auth/password/forgot", &json!({"email": user.email})).await.status(), 202);
    let (_, body) = app.last_mail(&user.email).await.expect("reset mailed");
    let token = body.split_whitespace().find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit())).unwrap();

    let weak = app.post_json("/v1/auth/password/reset", &json!({"token": token, "new_password": "short"})).await;
    assert_eq!(assert_problem(weak, 422).await["errors"][0]["field"], "new_password");
    let reset =
        app.post_json("/v1/auth/password/reset", &json!({"token": token, "new_password": "brand-new-pass"})).await;
    assert_eq!(reset.status(), 204);
    let again =
        app.post_json("/v1/auth/password/reset", &json!({"token": token, "new_password": "another-pass"})).await;
    assert_problem(again, 401).await;

    for access in [user.access_token.as_str(), second["access_token"].as_str().unwrap()] {
        assert_problem(app.authed(Method::GET, "/v1/me", access).send().await.unwrap(), 401).await;
    }
    assert_eq!(app.login(&user.email, &user.password).await.status(), 401);
    assert_eq!(app.login(&user.email, "brand-new-pass").await.status(), 200);
}

#[tokio::test]
async fn a_401_says_in_www_authenticate_whether_the_token_expired_or_is_invalid() {
    let app =
        crate::helpers::spawn_app_with(&[("access_token_ttl_secs", "1")], utoipa_axum::router::OpenApiRouter::new())
            .await;
    let user = app.new_user().await;
    let challenge = |response: &reqwest::Response| response.headers()["www-authenticate"].to_str().unwrap().to_owned();

    let missing = app.get("/v1/me").await;
    assert_eq!(challenge(&missing), "Bearer");
    assert_problem(missing, 401).await;

    let invalid = app.authed(Method::GET, "/v1/me", "not-a-token").send().await.unwrap();
    let header = challenge(&invalid);
    assert!(header.starts_with(r#"Bearer error="invalid_token""#) && header.contains("not valid"), "{header}");
    assert_problem(invalid, 401).await;

    // The token lives one second; the exp claim has whole-second precision.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = app.authed(Method::GET, "/v1/me", &user.access_token).send().await.unwrap();
    let header = challenge(&expired);
    assert!(header.starts_with(r#"Bearer error="invalid_token""#) && header.contains("expired"), "{header}");
    let body = assert_problem(expired, 401).await;
    assert_eq!(body["detail"], "the access token expired; refresh it");
}
