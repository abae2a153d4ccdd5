//! Test support shared by the kit's and the server's integration tests:
//! private, throw-away `redis-server` processes for tests that must stop,
//! restart or starve Redis without touching the shared instance.
//! Compiled only with the `testing` feature.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` owned by one test, killed when dropped.
#[derive(Debug)]
pub struct RedisProcess {
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts a redis-server on a free loopback port, persisting nothing.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a redis-server with extra arguments (e.g. `--cluster-enabled yes`).
    pub fn start_with(extra_args: &[&str]) -> std::io::Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("sy-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        let mut process = Self { port, dir, extra_args, child: None };
        process.restart()?;
        Ok(process)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`stop`](Self::stop)).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let child = Command::new(redis_server_binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("redis-server did not listen on port {port}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A key prefix of one test's own; every key under it is deleted when the
/// guard drops, so tests leave nothing behind in the shared Redis.
#[derive(Debug)]
pub struct TestPrefix {
    keyspace: crate::Keyspace,
    url: String,
}

impl TestPrefix {
    /// A fresh `sy-test-<random>` keyspace on the Redis at `url`.
    pub fn new(url: &str) -> Self {
        let unique = format!("sy-test-{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let keyspace = crate::Keyspace::new(&unique).expect("a generated test prefix is a valid prefix");
        Self { keyspace, url: url.to_owned() }
    }

    pub fn keyspace(&self) -> crate::Keyspace {
        self.keyspace.clone()
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else { return };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else { return };
        let keys: Vec<String> = match redis::cmd("KEYS").arg(self.keyspace.pattern()).query(&mut conn) {
            Ok(keys) => keys,
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// The shared Redis the tests use (`SWITCHYARD_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}
