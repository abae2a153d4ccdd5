//! The `switchyard` binary as an operator runs it: start-up failures are
//! bounded and name the dependency, bad settings are named, `migrate`
//! migrates, and SIGTERM shuts down cleanly.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use switchyard::config::ENV_VARS;

use switchyard_kit::testing::TestPrefix;

use crate::helpers::{redis_url, test_key_prefix, TestDatabase};

pub(crate) fn switchyard(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command.args(args);
    for var in ENV_VARS {
        command.env_remove(var);
    }
    command.env_remove("SWITCHYARD_CONFIG").env("LOG_FORMAT", "json").env("RUST_LOG", "info");
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdin(Stdio::null());
    command
}

/// Runs to completion; a hang fails the test instead of stalling the suite.
pub(crate) async fn run(mut command: Command) -> Output {
    let child = tokio::task::spawn_blocking(move || command.output().expect("binary runs"));
    tokio::time::timeout(Duration::from_secs(60), child).await.expect("the binary exits instead of hanging").unwrap()
}

fn last_stderr_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default().to_owned()
}

/// A spawned process that is killed if the test ends, or panics, before
/// stopping it, so a failed test leaves no server or worker behind.
pub(crate) struct Running(pub(crate) Option<std::process::Child>);

impl Running {
    pub(crate) fn new(child: std::process::Child) -> Self {
        Self(Some(child))
    }

    /// The process, no longer killed on drop.
    pub(crate) fn take(mut self) -> std::process::Child {
        self.0.take().expect("a running process")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn unreachable_redis_fails_start_up_with_one_line_naming_it() {
    let database = TestDatabase::create().await;
    let port = switchyard_kit::testing::free_port().unwrap();
    let redis = format!("redis://127.0.0.1:{port}");
    let output = run(switchyard(
        &["serve"],
        &[("DATABASE_URL", &database.url), ("REDIS_URL", &redis), ("STARTUP_TIMEOUT_SECS", "1"), ("PORT", "0")],
    ))
    .await;
    assert_eq!(output.status.code(), Some(1));
    let line = last_stderr_line(&output);
    assert!(line.starts_with("error: Redis at redis://127.0.0.1:"), "{line}");
    assert!(line.contains("unreachable after"), "{line}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

#[tokio::test]
async fn unreachable_postgres_fails_start_up_with_one_line_naming_it() {
    let port = switchyard_kit::testing::free_port().unwrap();
    let database = format!("postgres://app:hunter2@127.0.0.1:{port}/switchyard");
    let output = run(switchyard(
        &["migrate"],
        &[("DATABASE_URL", &database), ("REDIS_URL", &redis_url()), ("STARTUP_TIMEOUT_SECS", "1")],
    ))
    .await;
    assert_eq!(output.status.code(), Some(1));
    let line = last_stderr_line(&output);
    assert!(line.starts_with("error: PostgreSQL at postgres://app:redacted@127.0.0.1:"), "{line}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"), "the password is not printed");
}

#[tokio::test]
async fn bad_settings_are_named_in_one_line() {
    let output = run(switchyard(&["serve"], &[("PORT", "eighty")])).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        last_stderr_line(&output).starts_with("error: invalid configuration: PORT:"),
        "{}",
        last_stderr_line(&output)
    );

    let output = run(switchyard(&["serve"], &[("SWITCHYARD_ENV", "production")])).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(last_stderr_line(&output).contains("JWT_SECRET"), "{}", last_stderr_line(&output));
}

#[tokio::test]
async fn migrate_applies_every_migration_once() {
    let database = TestDatabase::create().await;
    let env = [
        ("DATABASE_URL", database.url.as_str()),
        ("REDIS_URL", &redis_url()),
        ("REDIS_KEY_PREFIX", &test_key_prefix()),
    ];
    for _ in 0..2 {
        let output = run(switchyard(&["migrate"], &env)).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&pool).await.unwrap();
    assert_eq!(applied as usize, switchyard::startup::MIGRATOR.iter().count());
    pool.close().await;
}

#[tokio::test]
async fn serve_migrates_then_stops_cleanly_on_sigterm() {
    let database = TestDatabase::create().await;
    let port = switchyard_kit::testing::free_port().unwrap().to_string();
    let prefix = test_key_prefix();
    let running = Running::new(
        switchyard(
            &["serve"],
            &[
                ("DATABASE_URL", &database.url),
                ("REDIS_URL", &redis_url()),
                ("REDIS_KEY_PREFIX", &prefix),
                ("PORT", &port),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    switchyard::tls::install_tls_provider();
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("http://127.0.0.1:{port}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "serve answers /health");

    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert!(applied >= 1, "serve applied the migrations");
    pool.close().await;

    let mut child = running.take();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            child.wait().ok();
            child
        }),
    )
    .await
    .expect("serve exits after SIGTERM")
    .unwrap();
    let output = output.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("shutdown signal received"), "{logs}");
    assert!(logs.contains("HTTP server stopped"), "{logs}");
    assert!(client.get(format!("http://127.0.0.1:{port}/health")).send().await.is_err(), "the port is closed");
}

#[tokio::test]
async fn help_explains_every_command_and_flag() {
    let output = run(switchyard(&["--help"], &[])).await;
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["serve", "worker", "migrate", "openapi", "--config"] {
        assert!(help.contains(word), "{word} in --help: {help}");
    }
    let output = run(switchyard(&["serve", "--help"], &[])).await;
    assert!(String::from_utf8_lossy(&output.stdout).contains("--no-migrate"));
}

#[tokio::test]
async fn the_openapi_command_prints_the_document() {
    let output = run(switchyard(&["openapi"], &[])).await;
    assert!(output.status.success());
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(document["paths"]["/ready"].is_object());
}

/// Starts `switchyard serve` on a free port; returns the child and base URL.
/// The returned guard deletes the server's Redis keys when dropped.
pub(crate) async fn serve(database: &TestDatabase, extra: &[(&str, &str)]) -> (Running, String, TestPrefix) {
    let port = switchyard_kit::testing::free_port().unwrap().to_string();
    let guard = TestPrefix::new(&redis_url());
    let prefix = guard.keyspace().prefix().to_owned();
    let mut env = vec![
        ("DATABASE_URL", database.url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("PORT", port.as_str()),
        ("ARGON2_MEMORY_KIB", "64"),
        ("ARGON2_ITERATIONS", "1"),
    ];
    let redis = redis_url();
    env.push(("REDIS_URL", &redis));
    env.extend_from_slice(extra);
    let child =
        Running::new(switchyard(&["serve"], &env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    switchyard::tls::install_tls_provider();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            return (child, base, guard);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve did not come up");
}

pub(crate) async fn stop(running: Running) -> Output {
    let mut child = running.take();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let _ = child.wait();
            child.wait_with_output().unwrap()
        }),
    )
    .await
    .expect("serve stops")
    .unwrap()
}

#[tokio::test]
async fn secrets_never_reach_the_logs_even_at_trace_level() {
    let database = TestDatabase::create().await;
    let (child, base, _keys) = serve(&database, &[("RUST_LOG", "trace")]).await;
    switchyard::tls::install_tls_provider();
    let client = reqwest::Client::new();
    let password = "Sup3r-Secret-Passw0rd";
    let signup = serde_json::json!({"username": "logcheck", "email": "log@example.com", "password": password});
    assert_eq!(client.post(format!("{base}/v1/auth/signup")).json(&signup).send().await.unwrap().status(), 201);
    let login = serde_json::json!({"email": "log@example.com", "password": password});
    let tokens: serde_json::Value =
        client.post(format!("{base}/v1/auth/login")).json(&login).send().await.unwrap().json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let created: serde_json::Value = client
        .post(format!("{base}/v1/clients"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"name": "logs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let keyed = client
        .post(format!("{base}/v1/locks/log-probe"))
        .header("x-api-key", &key)
        .json(&serde_json::json!({"ttl_ms": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    let wrong = serde_json::json!({"email": "log@example.com", "password": "Wrong-Secret-Passw0rd"});
    client.post(format!("{base}/v1/auth/login")).json(&wrong).send().await.unwrap();

    let output = stop(child).await;
    let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(logs.len() > 1000, "trace logging produced output");
    let refresh_secret = refresh.rsplit('.').next().unwrap();
    for secret in [password, "Wrong-Secret-Passw0rd", access.as_str(), refresh_secret, key.as_str(), &key[16..]] {
        assert!(!logs.contains(secret), "a secret appeared in the logs");
    }
}

#[tokio::test]
async fn admin_create_user_reads_the_password_from_stdin() {
    use std::io::Write;
    let database = TestDatabase::create().await;
    let redis = redis_url();
    let env = [("DATABASE_URL", database.url.as_str()), ("REDIS_URL", redis.as_str()), ("ARGON2_MEMORY_KIB", "64")];
    let mut child = switchyard(
        &["admin", "create-user", "--email", "root@example.com", "--password-stdin", "--role", "admin"],
        &env,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"admin-password-1\n").unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("created admin user root"));

    let (child, base, _keys) = serve(&database, &[]).await;
    switchyard::tls::install_tls_provider();
    let client = reqwest::Client::new();
    let login = serde_json::json!({"email": "root@example.com", "password": "admin-password-1"});
    let tokens: serde_json::Value =
        client.post(format!("{base}/v1/auth/login")).json(&login).send().await.unwrap().json().await.unwrap();
    let me: serde_json::Value = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["role"], "admin");
    stop(child).await;

    let output = run(switchyard(&["admin", "create-user", "--email", "bad", "--password-stdin"], &env)).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(last_stderr_line(&output).contains("email"), "{}", last_stderr_line(&output));
}

#[tokio::test]
async fn the_worker_process_runs_jobs_and_stops_cleanly() {
    let database = TestDatabase::create().await;
    let prefix = test_key_prefix();
    let redis = redis_url();
    let env =
        [("DATABASE_URL", database.url.as_str()), ("REDIS_URL", redis.as_str()), ("REDIS_KEY_PREFIX", prefix.as_str())];
    let migrate = run(switchyard(&["migrate"], &env)).await;
    assert!(migrate.status.success());
    let running = Running::new(
        switchyard(&["worker", "--queues", "default,mail", "--concurrency", "2"], &env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    let conn =
        switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis).unwrap()).await.unwrap();
    let keys = switchyard_kit::Keyspace::new(&prefix).unwrap();
    let mail = switchyard_kit::Queue::new(conn.clone(), keys.clone(), "mail");
    let (id, _) = mail.enqueue(&switchyard_kit::NewJob::new("noop", "{}")).await.unwrap();
    let mut state = String::new();
    for _ in 0..200 {
        state = mail.job(&id).await.unwrap().and_then(|mut r| r.remove("state")).unwrap_or_default();
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state, "succeeded", "the worker process ran the job");

    let mut child = running.take();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status =
        tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(move || child.wait().unwrap()))
            .await
            .expect("the worker stops after SIGTERM")
            .unwrap();
    assert!(status.success());
    crate::helpers::delete_keys(&conn, &keys).await;
}

#[tokio::test]
async fn a_job_of_a_killed_worker_finishes_on_another_after_its_lease() {
    let database = TestDatabase::create().await;
    let prefix = test_key_prefix();
    let redis = redis_url();
    let env = [
        ("DATABASE_URL", database.url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("JOB_LEASE_MS", "300"),
    ];
    assert!(run(switchyard(&["migrate"], &env)).await.status.success());
    let spawn_worker = || {
        Running::new(
            switchyard(&["worker", "--concurrency", "1"], &env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };

    let conn =
        switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis).unwrap()).await.unwrap();
    let keys = switchyard_kit::Keyspace::new(&prefix).unwrap();
    let queue = switchyard_kit::Queue::new(conn.clone(), keys.clone(), "default");
    queue.register().await.unwrap(); // workers without --queues work every registered queue
    let (id, _) = queue.enqueue(&switchyard_kit::NewJob::new("sleep", r#"{"ms": 600}"#)).await.unwrap();
    let state = |queue: switchyard_kit::Queue, id: String| async move {
        queue.job(&id).await.unwrap().map(|r| (r["state"].clone(), r["attempts"].clone())).unwrap_or_default()
    };

    let first = spawn_worker();
    let mut running = false;
    for _ in 0..200 {
        if state(queue.clone(), id.clone()).await.0 == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running, "the first worker took the job");
    drop(first); // SIGKILL: no clean-up, no ack

    let second = spawn_worker();
    let mut outcome = Default::default();
    for _ in 0..400 {
        outcome = state(queue.clone(), id.clone()).await;
        if outcome.0 == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(second);
    assert_eq!(outcome, ("succeeded".to_owned(), "2".to_owned()), "finished by the second worker on attempt 2");
    let record = queue.job(&id).await.unwrap().unwrap();
    assert!(record["errors"].contains("lease expired"));
    crate::helpers::delete_keys(&conn, &keys).await;
}

#[tokio::test]
async fn three_worker_processes_enqueue_each_cron_tick_once() {
    let database = TestDatabase::create().await;
    let prefix = TestPrefix::new(&redis_url());
    let redis = redis_url();
    let config = std::env::temp_dir().join(format!("switchyard-cron-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &config,
        "[[cron]]\nname = \"tick\"\nschedule = \"* * * * * *\"\nqueue = \"cron\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let config_path = config.to_str().unwrap().to_owned();
    let key_prefix = prefix.keyspace().prefix().to_owned();
    let env = [
        ("DATABASE_URL", database.url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", key_prefix.as_str()),
        ("SWITCHYARD_CONFIG", config_path.as_str()),
    ];
    assert!(run(switchyard(&["migrate"], &env)).await.status.success());
    let workers: Vec<_> = (0..3)
        .map(|_| {
            Running::new(
                switchyard(&["worker", "--queues", "cron", "--concurrency", "2"], &env)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let conn =
        switchyard_kit::RedisConnection::connect(&switchyard_kit::RedisConfig::new(&redis).unwrap()).await.unwrap();
    let keys = prefix.keyspace();
    let mut c = conn.clone();
    let scan = |pattern: String| {
        let mut c = conn.clone();
        async move {
            let found: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut c).await.unwrap();
            found
        }
    };
    // Until the schedulers have fired a few ticks, however slowly three
    // processes start on a loaded machine.
    for _ in 0..300 {
        if scan(format!("{}*", keys.tagged("q:cron", &["once", ""]))).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in workers {
        let output = stop(worker).await;
        assert!(output.status.success(), "a worker stops cleanly");
    }
    let _ = std::fs::remove_file(&config);

    let ticks = scan(format!("{}*", keys.tagged("q:cron", &["once", ""]))).await;
    let jobs = scan(format!("{}*", keys.tagged("q:cron", &["job", ""]))).await;
    assert!(ticks.len() >= 2, "the schedulers ran for several ticks: {ticks:?}");
    assert_eq!(jobs.len(), ticks.len(), "one job per tick, however many workers: {jobs:?} {ticks:?}");
    let mut ids = std::collections::HashSet::new();
    for tick in &ticks {
        let id: String = redis::cmd("GET").arg(tick).query_async(&mut c).await.unwrap();
        ids.insert(id);
    }
    assert_eq!(ids.len(), ticks.len(), "every tick made its own job");
}
