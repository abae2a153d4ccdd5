//! The composition root: the one place that knows every capability. It
//! builds each capability's service once (`assemble`), holds them in
//! [`AppState`], wires capabilities to each other through the ports they
//! declare (`adapters`), and assembles the router, the middleware stack and
//! the OpenAPI document (`routes`).
//!
//! Invariant: nothing below this module imports it. A capability's router
//! is generic over the state and takes only its own service (through
//! axum's `FromRef`), so the state's shape is this module's business.

mod adapters;
mod routes;

use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use switchyard_kit::{Keyspace, Leaderboards, Locks, PubSubHub, Quota, RateLimiter, RedisConfig, RedisConnection};
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::analytics::Activity;
use crate::analytics::Reports;
use crate::chat::{Chat, Membership};
use crate::clients::Clients;
use crate::config::{CronSetting, Settings};
use crate::eventlog::service::GroupSettings;
use crate::eventlog::EventLog;
use crate::events::Events;
use crate::identity::Identity;
use crate::jobs::handlers::Handlers;
use crate::jobs::Jobs;
use crate::leaderboards::BoardService;
use crate::locks::LockService;
use crate::mail::Mailer;
use crate::notifications::Notifications;
use crate::ops::Ops;
use crate::ratelimit::{CheckService, RateLimits};
use crate::realtime::Realtime;
use crate::syslog::SystemLogs;
use crate::tasks::Tasks;

pub use adapters::MAIL_QUEUE;

/// The registry of every account's event streams (the quota, and how the
/// worker finds each account's `tasks` and `logs` streams).
pub const STREAM_REGISTRY: &str = "streams";
pub use routes::{api_routes, document, router, router_with};

/// The shared state, behind one `Arc`: axum clones the state for every
/// request, so a clone must be one reference-count increment, not a copy
/// of every handle (which showed up as a third of the CPU of an
/// authenticated request).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Every capability's service, built once at start-up, and the handles
/// the processes around them (server, worker) need.
#[derive(Debug)]
pub struct Services {
    pub db: PgPool,
    pub redis: RedisConnection,
    /// The deployment's Redis key namespace (`REDIS_KEY_PREFIX`).
    pub keys: Keyspace,
    pub settings: Arc<Settings>,
    /// Cancelled when the server starts shutting down: long-lived responses
    /// (live streams) end then instead of holding the drain open.
    pub closing: CancellationToken,
    /// Used by the worker's `mail` handler.
    pub mailer: Mailer,
    pub ops: Arc<Ops>,
    pub identity: Arc<Identity>,
    pub clients: Arc<Clients>,
    pub rate_limits: Arc<RateLimits>,
    pub checks: Arc<CheckService>,
    pub locks: Arc<LockService>,
    pub boards: Arc<BoardService>,
    pub actions: Arc<Actions>,
    pub jobs: Arc<Jobs>,
    pub events: Arc<Events>,
    /// The event log, the built-in consumer groups' work and its queries.
    pub event_log: Arc<EventLog>,
    pub notifications: Arc<Notifications>,
    /// Usage reports, the live usage counters and the daily roll-up.
    pub reports: Arc<Reports>,
    /// Activity recording (the recorder's handle) and its queries.
    pub activity: Arc<Activity>,
    /// The real-time gateway (WebSocket, SSE, channel history, presence).
    pub realtime: Arc<Realtime>,
    pub tasks: Arc<Tasks>,
    pub logs: Arc<SystemLogs>,
    /// Chat rooms, messages and read receipts.
    pub chat: Arc<Chat>,
}

/// What `assemble` could not build, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct AssembleError {
    pub setting: &'static str,
    pub message: String,
}

/// The connections a process has opened, from which [`assemble`] builds
/// the services.
#[derive(Debug)]
pub struct Connections {
    pub db: PgPool,
    pub redis: RedisConnection,
    pub redis_config: RedisConfig,
    pub hub: PubSubHub,
    pub keys: Keyspace,
}

/// Builds every capability's service over the opened connections.
pub fn assemble(settings: Settings, connections: Connections) -> Result<AppState, AssembleError> {
    let Connections { db, redis, redis_config, hub, keys } = connections;
    let mailer = Mailer::new(&adapters::mail_settings(&settings), db.clone())
        .map_err(|e| AssembleError { setting: "MAIL_TRANSPORT", message: e.to_string() })?;
    let jobs = Arc::new(Jobs::new(redis.clone(), keys.clone(), &settings.jobs));
    let outbox = Arc::new(adapters::JobsMailOutbox(jobs.clone()));
    // API keys are hashed under the same pepper identity hashes its codes with.
    let hasher = crate::secrets::KeyedHasher::new(settings.identity.api_key_pepper.clone());
    let clients = Arc::new(Clients::new(db.clone(), redis.clone(), keys.clone(), hasher, &settings.identity));
    let account_keys = Arc::new(adapters::ClientKeys(clients.clone()));
    let identity = Identity::new(&settings, db.clone(), redis.clone(), keys.clone(), outbox, account_keys)
        .map_err(|e| AssembleError { setting: "ARGON2_MEMORY_KIB", message: e.to_string() })?;
    let limiter = RateLimiter::new(redis.clone(), keys.clone());
    let rate_limits = Arc::new(RateLimits::new(limiter.clone(), &settings.rate_limit));
    let closing = CancellationToken::new();
    let metrics: PrometheusHandle = crate::telemetry::metrics::recorder();
    let signals = adapters::OpsSignals {
        db: db.clone(),
        max_connections: settings.database_max_connections,
        redis: redis.clone(),
        keys: keys.clone(),
        jobs: jobs.clone(),
        rate_limits: rate_limits.clone(),
    };
    let ops = Ops::new(db.clone(), redis.clone(), metrics, settings.ready_check_timeout, Arc::new(signals));
    let reports = Arc::new(Reports::new(db.clone(), redis.clone(), keys.clone(), &settings.analytics));
    let activity = Arc::new(Activity::new(
        db.clone(),
        redis.clone(),
        hub.clone(),
        keys.clone(),
        &settings.analytics,
        Arc::new(adapters::ClientDirectory(clients.clone())),
        // Observers of each batch besides the live feed (which it adds):
        // the live usage counters the reports read for today.
        vec![reports.counters() as Arc<dyn crate::analytics::BatchObserver>],
        closing.clone(),
    ));
    let actions = Arc::new(Actions::new(db.clone(), redis.clone(), keys.clone(), settings.actions_audit_maxlen));
    let notifications =
        Arc::new(Notifications::new(db.clone(), redis.clone(), hub.clone(), keys.clone(), closing.clone()));
    let event_settings = &settings.event_log;
    let event_log = Arc::new(EventLog::new(
        db.clone(),
        redis.clone(),
        keys.clone(),
        Quota::new(redis.clone(), keys.clone(), STREAM_REGISTRY),
        GroupSettings {
            reclaim_idle: event_settings.reclaim_idle,
            max_deliveries: event_settings.max_deliveries,
            error_alert_per_minute: event_settings.error_alert_per_minute,
        },
        Arc::new(adapters::NotificationAlerts(notifications.clone())),
    ));
    let events = Events::new(
        redis.clone(),
        keys.clone(),
        &redis_config,
        settings.request_timeout,
        Quota::new(redis.clone(), keys.clone(), STREAM_REGISTRY),
        event_settings.max_streams_per_account,
        Arc::new(adapters::EventLogMarks(event_log.clone())),
    );
    let boards = BoardService::new(
        redis.clone(),
        Leaderboards::new(redis.clone(), keys.clone()),
        Quota::new(redis.clone(), keys.clone(), "boards"),
        event_settings.max_boards_per_account,
    );
    let directory = adapters::GatewayDirectory {
        keys: keys.clone(),
        actions: actions.channel(None),
        clients: clients.clone(),
        rooms: Membership::new(db.clone()),
    };
    let realtime = Arc::new(Realtime::new(
        redis.clone(),
        hub,
        keys.clone(),
        settings.realtime.clone(),
        Arc::new(directory),
        closing.clone(),
    ));
    let room_feed = adapters::ChatFeed { realtime: realtime.clone(), notifications: notifications.clone() };
    let chat = Arc::new(Chat::new(db.clone(), Arc::new(room_feed)));
    Ok(AppState(Arc::new(Services {
        ops: Arc::new(ops),
        identity: Arc::new(identity),
        clients,
        checks: Arc::new(CheckService::new(limiter)),
        rate_limits,
        locks: Arc::new(LockService::new(Locks::new(redis.clone(), keys.clone()), settings.request_timeout)),
        boards: Arc::new(boards),
        actions,
        events: Arc::new(events),
        event_log,
        notifications: notifications.clone(),
        realtime,
        tasks: Arc::new(Tasks::new(db.clone())),
        logs: Arc::new(SystemLogs::new(
            redis.clone(),
            keys.clone(),
            Quota::new(redis.clone(), keys.clone(), STREAM_REGISTRY),
        )),
        chat,
        reports,
        activity,
        jobs,
        mailer,
        closing,
        db,
        redis,
        keys,
        settings: Arc::new(settings),
    })))
}

/// The job handlers a worker runs, wired to this process's services.
pub fn job_handlers(state: &AppState) -> Handlers {
    let handlers = Handlers::builtin(state.mailer.clone(), &state.settings.jobs, state.notifications.clone());
    adapters::with_analytics_jobs(handlers, state.reports.clone())
}

/// The recurring jobs a worker schedules: the configured `[[cron]]`
/// entries, then the built-in analytics ones (the hourly usage roll-up;
/// the report warm-up every 5 minutes with `CACHE_PREWARM_CRON_ENABLED`)
/// unless an entry of the same name replaces them.
pub fn cron_entries(settings: &Settings) -> Vec<CronSetting> {
    let mut entries = settings.jobs.cron.clone();
    for entry in adapters::analytics_cron(&settings.analytics) {
        if !entries.iter().any(|e| e.name == entry.name) {
            entries.push(entry);
        }
    }
    entries
}

/// Each capability's router asks for its own service by type.
macro_rules! substates {
    ($($field:ident: $service:ty),* $(,)?) => {$(
        impl FromRef<AppState> for Arc<$service> {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    )*};
}

substates! {
    ops: Ops,
    identity: Identity,
    clients: Clients,
    rate_limits: RateLimits,
    checks: CheckService,
    locks: LockService,
    boards: BoardService,
    actions: Actions,
    jobs: Jobs,
    events: Events,
    event_log: EventLog,
    notifications: Notifications,
    reports: Reports,
    activity: Activity,
    realtime: Realtime,
    tasks: Tasks,
    logs: SystemLogs,
    chat: Chat,
}
