//! Start-up: connecting to PostgreSQL and Redis with bounded retries,
//! applying migrations, binding the listener, and serving until shutdown.
//!
//! Invariant: start-up either succeeds or fails within `STARTUP_TIMEOUT_SECS`
//! (plus one connection attempt) with one [`StartupError`] naming the
//! dependency; it never hangs and never panics.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use switchyard_kit::connection::policy_can_evict;
use switchyard_kit::{Keyspace, KitError, PubSubHub, RedisConfig, RedisConnection};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, AppState, Connections};
use crate::config::{redact_url, ConfigError, Settings};

/// Migrations embedded in the binary, from the workspace's `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("PostgreSQL at {url} is unreachable after {waited:.1?}: {source}")]
    Postgres { url: String, waited: Duration, source: sqlx::Error },
    #[error("Redis at {url} is unreachable after {waited:.1?}: {source}")]
    Redis { url: String, waited: Duration, source: KitError },
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Admin(String),
}

/// Connects to both dependencies (retrying until the start-up budget is
/// spent) and assembles the shared state. Used by `serve` and `worker`.
pub async fn connect(settings: Settings) -> Result<AppState, StartupError> {
    crate::tls::install_tls_provider();
    let budget = settings.startup_timeout;
    let db_url = settings.database_url.expose_secret().to_owned();
    let redis_url = settings.redis_url.expose_secret().to_owned();

    let pool_options =
        PgPoolOptions::new().max_connections(settings.database_max_connections).acquire_timeout(Duration::from_secs(5));
    let db = retry("PostgreSQL", budget, || pool_options.clone().connect(&db_url))
        .await
        .map_err(|(source, waited)| StartupError::Postgres { url: redact_url(&db_url), waited, source })?;

    let redis_config = RedisConfig::new(&redis_url)?;
    let redis = retry("Redis", budget, || RedisConnection::connect(&redis_config))
        .await
        .map_err(|(source, waited)| StartupError::Redis { url: redact_url(&redis_url), waited, source })?;
    warn_if_redis_may_evict(&redis).await;
    let hub = PubSubHub::connect(&redis_config).await.map_err(|source| StartupError::Redis {
        url: redact_url(&redis_url),
        waited: Duration::ZERO,
        source,
    })?;

    let keys = Keyspace::new(&settings.redis_key_prefix)
        .map_err(|e| ConfigError { setting: "REDIS_KEY_PREFIX".into(), message: e.to_string() })?;
    let connections = Connections { db, redis, redis_config, hub, keys };
    app::assemble(settings, connections)
        .map_err(|e| StartupError::Config(ConfigError { setting: e.setting.into(), message: e.message }))
}

impl From<KitError> for StartupError {
    fn from(error: KitError) -> Self {
        ConfigError { setting: "REDIS_URL".into(), message: error.to_string() }.into()
    }
}

/// Applies pending migrations; a no-op when the schema is current.
pub async fn migrate(db: &PgPool) -> Result<(), StartupError> {
    MIGRATOR.run(db).await?;
    Ok(())
}

async fn warn_if_redis_may_evict(redis: &RedisConnection) {
    match redis.maxmemory_policy().await {
        Ok(Some(policy)) if policy_can_evict(&policy) => tracing::warn!(
            policy,
            "Redis maxmemory-policy is {policy}: under memory pressure Redis may evict sessions, queues and streams; set it to noeviction"
        ),
        Ok(Some(_)) => {}
        Ok(None) => tracing::warn!("cannot read Redis maxmemory-policy (CONFIG GET refused); make sure it is noeviction"),
        Err(error) => tracing::warn!(%error, "cannot read Redis maxmemory-policy"),
    }
}

/// Calls `attempt` until it succeeds or `budget` is spent, backing off
/// exponentially from 100 ms to 2 s. Each attempt is itself bounded by the
/// remaining budget (at least one second), so an unresponsive host cannot
/// stretch start-up.
async fn retry<T, E, F, Fut>(what: &str, budget: Duration, mut attempt: F) -> Result<T, (E, Duration)>
where
    E: std::fmt::Display + From<std::io::Error>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let remaining = budget.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
        let outcome = match tokio::time::timeout(remaining, attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection attempt timed out").into()),
        };
        match outcome {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(dependency = what, tries, "connected");
                }
                return Ok(value);
            }
            Err(error) if started.elapsed() + delay >= budget => {
                return Err((error, started.elapsed()));
            }
            Err(error) => {
                tracing::warn!(dependency = what, tries, %error, retry_in = ?delay, "not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The least time the activity recorder gets to write what it holds at
/// shutdown, even when draining requests used the whole budget.
pub const RECORDER_MIN_GRACE: Duration = Duration::from_secs(1);

/// A bound, ready-to-serve HTTP application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
}

impl Application {
    /// Binds the configured address (port 0 picks a free one).
    pub async fn bind(state: AppState) -> Result<Self, StartupError> {
        let router = app::router(state.clone());
        Self::bind_router(state, router).await
    }

    /// Binds with a router built by the caller (see [`app::router_with`]).
    pub async fn bind_router(state: AppState, router: axum::Router) -> Result<Self, StartupError> {
        let address = state.settings.bind_address();
        let listener = TcpListener::bind(address).await.map_err(|source| StartupError::Bind { address, source })?;
        Ok(Self { listener, state, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| self.state.settings.bind_address())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight
    /// requests finish, stops the activity recorder (which writes what it
    /// holds) and closes the database pool, all within
    /// `SHUTDOWN_TIMEOUT_SECS` of the signal (the recorder gets at least
    /// [`RECORDER_MIN_GRACE`] when the drain used it all).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let Self { listener, state, router } = self;
        let grace = state.settings.shutdown_timeout;
        let signal = shutdown.clone();
        // Started here, not at assembly: only the serving process records.
        state.activity.start_recorder();
        // Each serving process sweeps: whichever claims a dead instance's
        // connections first announces their users offline.
        state.realtime.start_presence_sweeper();
        // Responses are written whole, in one call: Nagle's algorithm could
        // only hold them back behind an unacknowledged earlier one.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
            }
        });
        let closing = state.closing.clone();
        let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                signal.cancelled().await;
                // Long-lived responses (live streams) end now, not at the deadline.
                closing.cancel();
            });
        let began = Arc::new(OnceLock::new());
        let drain_deadline = async {
            shutdown.cancelled().await;
            began.get_or_init(Instant::now);
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            result = server => result.map_err(StartupError::Serve),
            () = drain_deadline => {
                tracing::warn!(?grace, "in-flight requests did not finish in time; closing anyway");
                Ok(())
            }
        };
        // After the drain, so the last requests are recorded too.
        let deadline = began.get().map_or_else(Instant::now, |at| *at + grace).max(Instant::now() + RECORDER_MIN_GRACE);
        state.activity.stop_recorder(deadline.into()).await;
        state.db.close().await;
        tracing::info!("HTTP server stopped");
        served?;
        Ok(())
    }
}
