//! `spawn_app()` and the test client every capability test reuses.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use figment::Figment;
use reqwest::{Method, Response};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use switchyard::app::AppState;
use switchyard::app::MAIL_QUEUE;
use switchyard::config::Settings;
use switchyard::jobs::runner::Runner;
use switchyard::startup::{self, Application};
use switchyard_kit::{Keyspace, RedisConnection};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

pub fn admin_database_url() -> String {
    std::env::var("SWITCHYARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A running application, its own database and key prefix. Dropping it
/// stops the server and deletes the database and every key under the prefix.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub redis: RedisConnection,
    pub keys: Keyspace,
    pub state: AppState,
    shutdown: CancellationToken,
    // Declared last: dropped after the server has been told to stop.
    _database: TestDatabase,
}

/// A database of one test's own, dropped (with its connections) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("sy_test_{}_{}", uuid::Uuid::new_v4().simple(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::connect(&admin_database_url()).await.expect("test PostgreSQL reachable");
        admin.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.expect("create test database");
        let mut url = url::Url::parse(&admin_database_url()).expect("admin URL");
        url.set_path(&name);
        Self { name, url: url.into() }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        run_detached(async move {
            if let Ok(mut admin) = PgConnection::connect(&admin_database_url()).await {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)))
                    .await;
            }
        });
    }
}

/// Runs async clean-up to completion from `Drop`, which cannot await and may
/// run while the test's runtime shuts down: on a thread of its own.
fn run_detached(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            runtime.block_on(work);
        }
    });
    let _ = thread.join();
}

/// A key prefix of one test's own.
pub fn test_key_prefix() -> String {
    format!("sy-test-{}", uuid::Uuid::new_v4().simple())
}

/// Settings for a test: its own database and key prefix, port 0.
/// `overrides` are (setting, value) pairs applied on top; `policies`
/// replaces the rate-limit policies (JSON, as in the TOML file).
pub async fn test_settings_with(overrides: &[(&str, &str)], policies: Option<Value>) -> (Settings, TestDatabase) {
    let database = TestDatabase::create().await;
    let mut figment: Figment = Settings::defaults()
        .merge(("profile", "test"))
        .merge(("database_url", database.url.as_str()))
        .merge(("database_max_connections", 5))
        .merge(("redis_url", redis_url()))
        .merge(("redis_key_prefix", test_key_prefix()))
        .merge(("port", 0))
        .merge(("startup_timeout_secs", 5))
        // Cheap password hashing: tests check behaviour, not hashing cost.
        .merge(("argon2_memory_kib", 64))
        .merge(("argon2_iterations", 1));
    for (key, value) in overrides {
        // Parsed the way environment variables are ("2048" is a number).
        let value: figment::value::Value = value.parse().expect("parses");
        figment = figment.merge((*key, value));
    }
    if let Some(policies) = policies {
        figment = figment.merge(figment::providers::Serialized::default("rate_limit_policies", policies));
    }
    (Settings::from_figment(figment).expect("valid test settings"), database)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], OpenApiRouter::new()).await
}

/// Starts the app with setting overrides and extra routes mounted under
/// the real middleware stack.
pub async fn spawn_app_with(overrides: &[(&str, &str)], extra_routes: OpenApiRouter<AppState>) -> TestApp {
    spawn_app_full(overrides, None, extra_routes).await
}

/// Starts the app with these rate-limit policies (JSON, as in the TOML file).
pub async fn spawn_app_with_policies(overrides: &[(&str, &str)], policies: Value) -> TestApp {
    spawn_app_full(overrides, Some(policies), OpenApiRouter::new()).await
}

async fn spawn_app_full(
    overrides: &[(&str, &str)],
    policies: Option<Value>,
    extra_routes: OpenApiRouter<AppState>,
) -> TestApp {
    let (settings, database) = test_settings_with(overrides, policies).await;
    let state = startup::connect(settings).await.expect("connect to test services");
    startup::migrate(&state.db).await.expect("migrations apply");
    let router = switchyard::app::router_with(state.clone(), switchyard::app::api_routes().merge(extra_routes));
    let app = Application::bind_router(state.clone(), router).await.expect("bind");
    let address = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    // Mail goes through the queue: a worker runs it, as in production.
    tokio::spawn(job_runner(&state, MAIL_QUEUE).run(waiter_connection().await, 2, shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        db: state.db.clone(),
        redis: state.redis.clone(),
        keys: state.keys.clone(),
        state,
        shutdown,
        _database: database,
    }
}

/// A runner of `queue` with the built-in handlers and the app's settings.
pub fn job_runner(state: &AppState, queue: &str) -> Runner {
    Runner::new(
        state.jobs.queue(queue),
        Arc::new(switchyard::app::job_handlers(state)),
        switchyard::worker::jobs::runner_options(state),
    )
}

/// A Redis connection of its own (for a runner's blocking waits).
pub async fn waiter_connection() -> RedisConnection {
    RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis_url()).unwrap()).await.unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    /// A runner of `queue`, to step with `run_one`.
    pub fn runner(&self, queue: &str) -> Runner {
        job_runner(&self.state, queue)
    }

    /// Runs jobs of `queue` until none is ready (waiting out short back-offs).
    pub async fn drain_jobs(&self, queue: &str) {
        let runner = self.runner(queue);
        let mut idle = 0;
        while idle < 20 {
            if runner.run_one().await.expect("Redis answers") {
                idle = 0;
            } else {
                idle += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }

    /// Starts the server's graceful shutdown, as SIGTERM would.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// Keys currently under this test's prefix.
    pub async fn redis_keys(&self) -> Vec<String> {
        scan_keys(&self.redis, &self.keys).await
    }
}

async fn scan_keys(redis: &RedisConnection, keys: &Keyspace) -> Vec<String> {
    let mut conn = redis.clone();
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(keys.pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// Deletes every key under `keys`' prefix (a test's leftovers).
pub async fn delete_keys(redis: &RedisConnection, keys: &Keyspace) {
    let leftover = scan_keys(redis, keys).await;
    let mut conn = redis.clone();
    for chunk in leftover.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let keys = self.keys.clone();
        run_detached(async move {
            let config = switchyard_kit::RedisConfig::new(&redis_url()).expect("redis url");
            if let Ok(redis) = RedisConnection::connect(&config).await {
                delete_keys(&redis, &keys).await;
            }
        });
    }
}

/// Asserts that `response` is a problem document with `status`, and returns it.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(content_type, "application/problem+json", "content type");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "status field: {body}");
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "type: {body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "title/detail: {body}");
    body
}

/// A signed-up, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: String,
}

impl TestApp {
    pub async fn signup(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/signup",
            &serde_json::json!({"username": username, "email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json("/v1/auth/login", &serde_json::json!({"email": email, "password": password})).await
    }

    /// Signs up a fresh user and logs in.
    pub async fn new_user(&self) -> TestUser {
        let n = uuid::Uuid::new_v4().simple().to_string();
        let (username, email, password) =
            (format!("u{}", &n[..12]), format!("{}@example.com", &n[..12]), format!("pw-{n}"));
        let created = self.signup(&username, &email, &password).await;
        assert_eq!(created.status(), 201, "signup");
        let id = created.json::<Value>().await.unwrap()["user"]["id"].as_str().unwrap().to_owned();
        let tokens: Value = self.login(&email, &password).await.json().await.unwrap();
        TestUser {
            id,
            email,
            password,
            access_token: tokens["access_token"].as_str().expect("access token").to_owned(),
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
            session_id: tokens["session_id"].as_str().unwrap().to_owned(),
        }
    }

    /// A fresh user with the admin role (its token carries the role).
    pub async fn new_admin(&self) -> TestUser {
        let user = self.new_user().await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1::uuid")
            .bind(&user.id)
            .execute(&self.db)
            .await
            .unwrap();
        let tokens: Value = self.login(&user.email, &user.password).await.json().await.unwrap();
        TestUser { access_token: tokens["access_token"].as_str().unwrap().to_owned(), ..user }
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn authed(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// A request with `x-api-key: <key>`.
    pub fn keyed(&self, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).header("x-api-key", key)
    }

    /// The newest message in the mail outbox for `recipient` (delivery runs
    /// beside the request, so this waits briefly for it).
    pub async fn last_mail(&self, recipient: &str) -> Option<(String, String)> {
        for _ in 0..100 {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT subject, body FROM email_outbox WHERE recipient = $1 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(recipient)
            .fetch_optional(&self.db)
            .await
            .unwrap();
            if row.is_some() {
                return row;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }

    pub async fn mail_count(&self, recipient: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE recipient = $1")
            .bind(recipient)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

/// Reads a server-sent event stream until `needle` appears; everything read so far.
pub async fn read_until(response: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("`{needle}` within 10 s; got {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before `{needle}`; got {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// Sends `request` and returns its JSON body.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("request sent").json().await.expect("a JSON body")
}

impl TestApp {
    /// Registers an API client for `user` (201 expected); the response body.
    pub async fn create_client(&self, user: &TestUser, body: Value) -> Value {
        let response = self.authed(Method::POST, "/v1/clients", &user.access_token).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201, "client created");
        response.json().await.unwrap()
    }
}
