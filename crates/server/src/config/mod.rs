//! Configuration: typed settings, loaded once at start-up from defaults, an
//! optional TOML file and the environment (in rising precedence), then
//! validated so a bad value stops the process with one line naming it.
//!
//! This module is a leaf: it depends on external crates only, never on the
//! rest of the server, so the server's parts can depend on it freely. Each
//! section of [`Settings`] has a file holding its types and its validator
//! (`server`: the settings directly on `Settings`; `identity`, `mail`, `outbox`,
//! `ratelimit`, `jobs`); `RawSettings::validate` runs them.
//!
//! Invariants: secrets (the JWT secret, URLs that may carry a password) are
//! wrapped in [`SecretString`] and never printed; `Debug` shows them redacted.
//! Every refusal is a [`ConfigError`] naming the setting by its environment
//! variable, and the checks run in a fixed order, so several bad settings
//! always report the same one first.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod analytics;
mod eventlog;
mod identity;
mod jobs;
mod mail;
mod outbox;
mod ratelimit;
mod realtime;
mod server;

pub use analytics::AnalyticsSettings;
pub use eventlog::EventLogSettings;
pub use identity::IdentitySettings;
pub use jobs::{parse_schedule, CronSetting, JobSettings, MAX_CRON_CATCH_UP_SECS};
pub use mail::{MailConfig, MailTransportSetting};
pub use outbox::OutboxSettings;
pub use ratelimit::{FailMode, LimitSetting, PolicySetting, PrincipalKind, RateLimitSettings, RouteGroup};
pub use realtime::RealtimeSettings;
pub use server::{CorsOrigins, LogFormat};

/// The environment variables switchyard reads, each the upper-case name of a
/// settings field (`SWITCHYARD_ENV` sets `profile`).
pub const ENV_VARS: &[&str] = &[
    "SWITCHYARD_ENV",
    "RT_HISTORY_MAX",
    "RT_HISTORY_SECS",
    "RT_MAX_BAD_FRAMES",
    "RT_OUTBOUND_BUFFER",
    "PRESENCE_TTL_SECS",
    "OUTBOX_RETENTION_SECS",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "HOST",
    "PORT",
    "JWT_SECRET",
    "RUST_LOG",
    "LOG_FORMAT",
    "REQUEST_TIMEOUT_SECS",
    "BODY_LIMIT_BYTES",
    "CORS_ALLOWED_ORIGINS",
    "STARTUP_TIMEOUT_SECS",
    "SHUTDOWN_TIMEOUT_SECS",
    "READY_CHECK_TIMEOUT_MS",
    "WORKER_HEARTBEAT_SECS",
    "ACCESS_TOKEN_TTL_SECS",
    "REFRESH_TOKEN_TTL_SECS",
    "LOGIN_MAX_FAILURES_PER_EMAIL",
    "LOGIN_MAX_FAILURES_PER_IP",
    "LOGIN_FAILURE_WINDOW_SECS",
    "OTP_TTL_SECS",
    "OTP_MAX_ATTEMPTS",
    "OTP_REQUESTS_PER_WINDOW",
    "OTP_REQUEST_WINDOW_SECS",
    "PASSWORD_RESET_TTL_SECS",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "API_KEY_GRACE_PERIOD_SECONDS",
    "API_KEY_RETENTION",
    "API_KEY_CACHE_TTL_SECS",
    "API_KEY_LOCAL_CACHE_MS",
    "API_KEY_PEPPER",
    "MAIL_TRANSPORT",
    "SMTP_URL",
    "MAIL_FROM",
    "RATE_LIMIT_TRUSTED_PROXIES",
    "RATE_LIMIT_ALLOW",
    "RATE_LIMIT_DENY",
    "RATE_LIMIT_INSTANCES",
    "ACTIONS_AUDIT_MAXLEN",
    "JOB_LEASE_MS",
    "JOB_DEFAULT_TIMEOUT_MS",
    "JOB_SUCCEEDED_RETENTION_SECS",
    "JOB_DEAD_RETENTION_SECS",
    "JOB_SHUTDOWN_GRACE_SECS",
    "JOB_PREFETCH_PER_SLOT",
    "WEBHOOK_SECRET",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
    "ACTIVITY_ENABLED",
    "ACTIVITY_BATCH_SIZE",
    "ACTIVITY_FLUSH_INTERVAL_MS",
    "ACTIVITY_CHANNEL_CAPACITY",
    "ACTIVITY_MEMORY_MAX_RECORDS",
    "ACTIVITY_SPILL_MAXLEN",
    "ACTIVITY_RETENTION_DAYS",
    "ACTIVITY_PARTITIONS_AHEAD_DAYS",
    "CACHE_TTL_USAGE_DAILY",
    "CACHE_TTL_USAGE_TOP",
    "CACHE_VERSION",
    "CACHE_HIT_TRACKING_ENABLED",
    "CACHE_PREWARM_ENABLED",
    "CACHE_PREWARM_CRON_ENABLED",
    "EVENTS_MAX_STREAMS_PER_ACCOUNT",
    "LEADERBOARDS_MAX_PER_ACCOUNT",
    "EVENTS_RECLAIM_IDLE_MS",
    "EVENTS_MAX_DELIVERIES",
    "LOG_ERROR_ALERT_PER_MINUTE",
];

/// Deployment profile. `dev` tolerates missing secrets (and says so loudly);
/// `production` refuses to start without them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Dev,
    Test,
    Production,
}

/// The settings as written by a person: every field optional-with-default.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    profile: Profile,
    database_url: String,
    database_max_connections: u32,
    redis_url: String,
    redis_key_prefix: String,
    host: String,
    port: u16,
    jwt_secret: Option<String>,
    rust_log: String,
    log_format: LogFormat,
    request_timeout_secs: u64,
    body_limit_bytes: usize,
    cors_allowed_origins: String,
    startup_timeout_secs: u64,
    shutdown_timeout_secs: u64,
    ready_check_timeout_ms: u64,
    worker_heartbeat_secs: u64,
    access_token_ttl_secs: u64,
    refresh_token_ttl_secs: u64,
    login_max_failures_per_email: u32,
    login_max_failures_per_ip: u32,
    login_failure_window_secs: u64,
    otp_ttl_secs: u64,
    otp_max_attempts: u32,
    otp_requests_per_window: u32,
    otp_request_window_secs: u64,
    password_reset_ttl_secs: u64,
    argon2_memory_kib: u32,
    argon2_iterations: u32,
    argon2_parallelism: u32,
    api_key_grace_period_seconds: f64,
    api_key_retention: u32,
    api_key_cache_ttl_secs: u64,
    api_key_local_cache_ms: u64,
    api_key_pepper: Option<String>,
    mail_transport: MailTransportSetting,
    smtp_url: Option<String>,
    mail_from: String,
    rate_limit_policies: Vec<PolicySetting>,
    rate_limit_trusted_proxies: String,
    rate_limit_allow: String,
    rate_limit_deny: String,
    rate_limit_instances: u32,
    actions_audit_maxlen: u64,
    job_lease_ms: u64,
    job_default_timeout_ms: u64,
    job_succeeded_retention_secs: u64,
    job_dead_retention_secs: u64,
    job_shutdown_grace_secs: u64,
    job_prefetch_per_slot: usize,
    webhook_secret: Option<String>,
    webhook_allow_private_networks: bool,
    cron: Vec<CronSetting>,
    activity_enabled: bool,
    activity_batch_size: usize,
    activity_flush_interval_ms: u64,
    activity_channel_capacity: usize,
    activity_memory_max_records: usize,
    activity_spill_maxlen: u64,
    activity_retention_days: u32,
    activity_partitions_ahead_days: u32,
    cache_ttl_usage_daily: u64,
    cache_ttl_usage_top: u64,
    cache_version: String,
    cache_hit_tracking_enabled: bool,
    cache_prewarm_enabled: bool,
    cache_prewarm_cron_enabled: bool,
    rt_history_max: u64,
    rt_history_secs: u64,
    rt_max_bad_frames: u32,
    rt_outbound_buffer: usize,
    presence_ttl_secs: u64,
    outbox_retention_secs: u64,
    events_max_streams_per_account: u64,
    leaderboards_max_per_account: u64,
    events_reclaim_idle_ms: u64,
    events_max_deliveries: u64,
    log_error_alert_per_minute: u64,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            profile: Profile::Dev,
            database_url: "postgres://postgres@127.0.0.1:5432/switchyard".into(),
            database_max_connections: 20,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_key_prefix: "sy".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            jwt_secret: None,
            rust_log: "info,sqlx::postgres::notice=warn".into(),
            log_format: LogFormat::Auto,
            request_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            cors_allowed_origins: String::new(),
            startup_timeout_secs: 30,
            shutdown_timeout_secs: 20,
            ready_check_timeout_ms: 1000,
            worker_heartbeat_secs: 5,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            login_max_failures_per_email: 5,
            login_max_failures_per_ip: 20,
            login_failure_window_secs: 15 * 60,
            otp_ttl_secs: 10 * 60,
            otp_max_attempts: 5,
            otp_requests_per_window: 3,
            otp_request_window_secs: 15 * 60,
            password_reset_ttl_secs: 30 * 60,
            // OWASP's recommended Argon2id floor: 19 MiB, 2 passes, 1 lane.
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            api_key_grace_period_seconds: 7.0 * 24.0 * 3600.0,
            api_key_retention: 2,
            api_key_cache_ttl_secs: 60,
            api_key_local_cache_ms: 1000,
            api_key_pepper: None,
            mail_transport: MailTransportSetting::Outbox,
            smtp_url: None,
            mail_from: "switchyard <no-reply@localhost>".into(),
            rate_limit_policies: ratelimit::defaults(),
            rate_limit_trusted_proxies: String::new(),
            rate_limit_allow: String::new(),
            rate_limit_deny: String::new(),
            rate_limit_instances: 1,
            actions_audit_maxlen: 100_000,
            job_lease_ms: 30_000,
            job_default_timeout_ms: 5 * 60 * 1000,
            job_succeeded_retention_secs: 24 * 3600,
            job_dead_retention_secs: 7 * 24 * 3600,
            job_shutdown_grace_secs: 15,
            job_prefetch_per_slot: 4,
            webhook_secret: None,
            webhook_allow_private_networks: false,
            cron: Vec::new(),
            activity_enabled: true,
            activity_batch_size: 100,
            activity_flush_interval_ms: 5000,
            activity_channel_capacity: 65_536,
            activity_memory_max_records: 100_000,
            activity_spill_maxlen: 100_000,
            activity_retention_days: 30,
            activity_partitions_ahead_days: 3,
            cache_ttl_usage_daily: 3600,
            cache_ttl_usage_top: 3600,
            cache_version: "1".into(),
            cache_hit_tracking_enabled: true,
            cache_prewarm_enabled: true,
            cache_prewarm_cron_enabled: true,
            rt_history_max: 1000,
            rt_history_secs: 86_400,
            rt_max_bad_frames: 10,
            rt_outbound_buffer: 256,
            presence_ttl_secs: 30,
            outbox_retention_secs: 86_400,
            events_max_streams_per_account: 1000,
            leaderboards_max_per_account: 1000,
            events_reclaim_idle_ms: 30_000,
            events_max_deliveries: 5,
            log_error_alert_per_minute: 60,
        }
    }
}

/// Validated settings, loaded once and shared read-only.
#[derive(Clone)]
pub struct Settings {
    pub profile: Profile,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub redis_url: SecretString,
    pub redis_key_prefix: String,
    pub host: IpAddr,
    pub port: u16,
    pub jwt_secret: SecretString,
    /// True when no JWT_SECRET was given and a random one was made (dev only):
    /// tokens then do not survive a restart.
    pub jwt_secret_generated: bool,
    pub rust_log: String,
    pub log_format: LogFormat,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub cors_allowed_origins: CorsOrigins,
    pub startup_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub ready_check_timeout: Duration,
    pub worker_heartbeat: Duration,
    pub identity: IdentitySettings,
    pub mail: MailConfig,
    pub rate_limit: RateLimitSettings,
    /// Approximate cap of the audit stream (XADD MAXLEN ~).
    pub actions_audit_maxlen: u64,
    pub jobs: JobSettings,
    pub analytics: AnalyticsSettings,
    pub realtime: RealtimeSettings,
    pub outbox: OutboxSettings,
    pub event_log: EventLogSettings,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("profile", &self.profile)
            .field("database_url", &redact_url(self.database_url.expose_secret()))
            .field("redis_url", &redact_url(self.redis_url.expose_secret()))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("jwt_secret", &"[redacted]")
            .field("log_format", &self.log_format)
            .field("request_timeout", &self.request_timeout)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .finish_non_exhaustive()
    }
}

/// A setting that cannot be used, named by its environment variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        Self { setting: setting.to_uppercase(), message: message.into() }
    }
}

impl Settings {
    /// Defaults, then `config_file` (TOML, keys as the lower-case variable
    /// names) when given, then the environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Self::defaults();
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(ConfigError::new("config file", format!("{} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env =
            Env::raw().only(ENV_VARS).map(|key| if key == "switchyard_env" { "profile".into() } else { key.into() });
        Self::from_figment(figment.merge(env))
    }

    /// The built-in defaults as a figment, for callers (tests) that layer
    /// their own values on top before [`Settings::from_figment`].
    pub fn defaults() -> Figment {
        Figment::from(Serialized::defaults(RawSettings::default()))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(describe_figment_error)?;
        raw.validate()
    }

    /// The address the HTTP server binds.
    pub fn bind_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

impl RawSettings {
    /// Runs the section validators in the order the checks have always run
    /// in, so the first error reported for several bad settings stays the
    /// same. That order puts the bound on `API_KEY_LOCAL_CACHE_MS` (an
    /// identity setting) after the `JOB_*` settings and before `[[cron]]`,
    /// hence the two separate steps before `jobs::validate`.
    fn validate(self) -> Result<Settings, ConfigError> {
        let profile = self.profile;
        let raw = self.into_sections();
        let server = server::validate(raw.server, profile)?;
        let identity = identity::validate(raw.identity, profile)?;
        let mail = mail::validate(raw.mail)?;
        let rate_limit = ratelimit::validate(raw.rate_limit)?;
        let jobs = jobs::validate(raw.jobs, profile)?;
        let analytics = analytics::validate(raw.analytics)?;
        let realtime = realtime::validate(raw.realtime)?;
        let outbox = outbox::validate(raw.outbox)?;
        let event_log = eventlog::validate(raw.event_log)?;

        Ok(Settings {
            profile,
            database_url: server.database_url,
            database_max_connections: server.database_max_connections,
            redis_url: server.redis_url,
            redis_key_prefix: server.redis_key_prefix,
            host: server.host,
            port: server.port,
            jwt_secret: server.jwt_secret,
            jwt_secret_generated: server.jwt_secret_generated,
            rust_log: server.rust_log,
            log_format: server.log_format,
            request_timeout: server.request_timeout,
            body_limit_bytes: server.body_limit_bytes,
            cors_allowed_origins: server.cors_allowed_origins,
            startup_timeout: server.startup_timeout,
            shutdown_timeout: server.shutdown_timeout,
            ready_check_timeout: server.ready_check_timeout,
            worker_heartbeat: server.worker_heartbeat,
            identity,
            mail,
            rate_limit,
            actions_audit_maxlen: server.actions_audit_maxlen,
            jobs,
            analytics,
            realtime,
            outbox,
            event_log,
        })
    }

    /// The raw values, each handed to the section that checks it.
    fn into_sections(self) -> RawSections {
        RawSections {
            server: server::RawServer {
                database_url: self.database_url,
                database_max_connections: self.database_max_connections,
                redis_url: self.redis_url,
                redis_key_prefix: self.redis_key_prefix,
                host: self.host,
                port: self.port,
                jwt_secret: self.jwt_secret,
                rust_log: self.rust_log,
                log_format: self.log_format,
                request_timeout_secs: self.request_timeout_secs,
                body_limit_bytes: self.body_limit_bytes,
                cors_allowed_origins: self.cors_allowed_origins,
                startup_timeout_secs: self.startup_timeout_secs,
                shutdown_timeout_secs: self.shutdown_timeout_secs,
                ready_check_timeout_ms: self.ready_check_timeout_ms,
                worker_heartbeat_secs: self.worker_heartbeat_secs,
                actions_audit_maxlen: self.actions_audit_maxlen,
            },
            identity: identity::RawIdentity {
                access_token_ttl_secs: self.access_token_ttl_secs,
                refresh_token_ttl_secs: self.refresh_token_ttl_secs,
                login_max_failures_per_email: self.login_max_failures_per_email,
                login_max_failures_per_ip: self.login_max_failures_per_ip,
                login_failure_window_secs: self.login_failure_window_secs,
                otp_ttl_secs: self.otp_ttl_secs,
                otp_max_attempts: self.otp_max_attempts,
                otp_requests_per_window: self.otp_requests_per_window,
                otp_request_window_secs: self.otp_request_window_secs,
                password_reset_ttl_secs: self.password_reset_ttl_secs,
                argon2_memory_kib: self.argon2_memory_kib,
                argon2_iterations: self.argon2_iterations,
                argon2_parallelism: self.argon2_parallelism,
                api_key_grace_period_seconds: self.api_key_grace_period_seconds,
                api_key_retention: self.api_key_retention,
                api_key_cache_ttl_secs: self.api_key_cache_ttl_secs,
                api_key_local_cache_ms: self.api_key_local_cache_ms,
                api_key_pepper: self.api_key_pepper,
            },
            mail: mail::RawMail {
                mail_transport: self.mail_transport,
                smtp_url: self.smtp_url,
                mail_from: self.mail_from,
            },
            rate_limit: ratelimit::RawRateLimit {
                rate_limit_policies: self.rate_limit_policies,
                rate_limit_trusted_proxies: self.rate_limit_trusted_proxies,
                rate_limit_allow: self.rate_limit_allow,
                rate_limit_deny: self.rate_limit_deny,
                rate_limit_instances: self.rate_limit_instances,
            },
            jobs: jobs::RawJobs {
                job_lease_ms: self.job_lease_ms,
                job_default_timeout_ms: self.job_default_timeout_ms,
                job_succeeded_retention_secs: self.job_succeeded_retention_secs,
                job_dead_retention_secs: self.job_dead_retention_secs,
                job_shutdown_grace_secs: self.job_shutdown_grace_secs,
                job_prefetch_per_slot: self.job_prefetch_per_slot,
                webhook_secret: self.webhook_secret,
                webhook_allow_private_networks: self.webhook_allow_private_networks,
                cron: self.cron,
            },
            analytics: analytics::RawAnalytics {
                activity_enabled: self.activity_enabled,
                activity_batch_size: self.activity_batch_size,
                activity_flush_interval_ms: self.activity_flush_interval_ms,
                activity_channel_capacity: self.activity_channel_capacity,
                activity_memory_max_records: self.activity_memory_max_records,
                activity_spill_maxlen: self.activity_spill_maxlen,
                activity_retention_days: self.activity_retention_days,
                activity_partitions_ahead_days: self.activity_partitions_ahead_days,
                cache_ttl_usage_daily: self.cache_ttl_usage_daily,
                cache_ttl_usage_top: self.cache_ttl_usage_top,
                cache_version: self.cache_version,
                cache_hit_tracking_enabled: self.cache_hit_tracking_enabled,
                cache_prewarm_enabled: self.cache_prewarm_enabled,
                cache_prewarm_cron_enabled: self.cache_prewarm_cron_enabled,
            },
            realtime: realtime::RawRealtime {
                rt_history_max: self.rt_history_max,
                rt_history_secs: self.rt_history_secs,
                rt_max_bad_frames: self.rt_max_bad_frames,
                rt_outbound_buffer: self.rt_outbound_buffer,
                presence_ttl_secs: self.presence_ttl_secs,
            },
            outbox: outbox::RawOutbox { outbox_retention_secs: self.outbox_retention_secs },
            event_log: eventlog::RawEventLog {
                events_max_streams_per_account: self.events_max_streams_per_account,
                leaderboards_max_per_account: self.leaderboards_max_per_account,
                events_reclaim_idle_ms: self.events_reclaim_idle_ms,
                events_max_deliveries: self.events_max_deliveries,
                log_error_alert_per_minute: self.log_error_alert_per_minute,
            },
        }
    }
}

/// [`RawSettings`] split by section.
struct RawSections {
    server: server::RawServer,
    identity: identity::RawIdentity,
    mail: mail::RawMail,
    rate_limit: ratelimit::RawRateLimit,
    jobs: jobs::RawJobs,
    analytics: analytics::RawAnalytics,
    realtime: realtime::RawRealtime,
    outbox: outbox::RawOutbox,
    event_log: eventlog::RawEventLog,
}

/// A secret setting: at least 32 characters when given; required in
/// production; generated at random (and flagged) otherwise.
fn secret_or_generated(
    setting: &str,
    value: Option<String>,
    profile: Profile,
) -> Result<(SecretString, bool), ConfigError> {
    match value.filter(|s| !s.is_empty()) {
        Some(secret) if secret.len() < 32 => Err(ConfigError::new(setting, "must be at least 32 characters")),
        Some(secret) => Ok((SecretString::from(secret), false)),
        None if profile == Profile::Production => {
            Err(ConfigError::new(setting, "is required when SWITCHYARD_ENV=production (at least 32 random characters)"))
        }
        None => Ok((SecretString::from(random_secret()), true)),
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns figment's error into one line naming the variable, without echoing
/// the value (it might be a secret).
fn describe_figment_error(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let setting = error.path.last().cloned().unwrap_or_else(|| "configuration".into());
    let message = match &error.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => format!("expected {expected}"),
        Kind::UnknownVariant(_, expected) => format!("expected one of {}", expected.join(", ")),
        Kind::UnknownField(field, _) => {
            return ConfigError::new(field, "is not a known setting");
        }
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    ConfigError::new(&setting, message)
}

/// A URL with its password (if any) replaced, for log lines and errors.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) => "[unparseable url]".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut figment = Settings::defaults();
        for (k, v) in pairs {
            // Parsed the way environment variables are ("8080" is a number).
            let v: figment::value::Value = v.parse().unwrap();
            figment = figment.merge((*k, v));
        }
        Settings::from_figment(figment)
    }

    #[test]
    fn defaults_are_a_working_dev_setup_with_a_generated_secret() {
        let s = with(&[]).unwrap();
        assert_eq!(s.profile, Profile::Dev);
        assert_eq!(s.bind_address().to_string(), "127.0.0.1:8080");
        assert!(s.jwt_secret_generated);
        assert_eq!(s.jwt_secret.expose_secret().len(), 64);
        assert_eq!(s.body_limit_bytes, 1024 * 1024);
        assert_eq!(s.cors_allowed_origins, CorsOrigins::None);
    }

    #[test]
    fn production_requires_a_long_jwt_secret() {
        let err = with(&[("profile", "production")]).unwrap_err();
        assert_eq!(err.setting, "JWT_SECRET");
        let err = with(&[("profile", "production"), ("jwt_secret", "short")]).unwrap_err();
        assert_eq!(err.setting, "JWT_SECRET");
        assert!(!err.to_string().contains("short"), "the value is not echoed");
        let err = with(&[("profile", "production"), ("jwt_secret", &"k".repeat(40))]).unwrap_err();
        assert_eq!(err.setting, "API_KEY_PEPPER", "production needs the API key pepper too");
        let err =
            with(&[("profile", "production"), ("jwt_secret", &"k".repeat(40)), ("api_key_pepper", &"p".repeat(40))])
                .unwrap_err();
        assert_eq!(err.setting, "WEBHOOK_SECRET", "and the webhook signing secret");
        let ok = with(&[
            ("profile", "production"),
            ("jwt_secret", &"k".repeat(40)),
            ("api_key_pepper", &"p".repeat(40)),
            ("webhook_secret", &"w".repeat(40)),
        ])
        .unwrap();
        assert!(!ok.jwt_secret_generated);
    }

    #[test]
    fn bad_values_are_named_by_their_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("port", "eighty", "PORT"),
            ("port", "70000", "PORT"),
            ("host", "not an ip", "HOST"),
            ("database_url", "mysql://x", "DATABASE_URL"),
            ("redis_url", "http://x", "REDIS_URL"),
            ("redis_key_prefix", "a b", "REDIS_KEY_PREFIX"),
            ("profile", "staging", "PROFILE"),
            ("rust_log", "info,[", "RUST_LOG"),
            ("cors_allowed_origins", "not-an-origin", "CORS_ALLOWED_ORIGINS"),
            ("request_timeout_secs", "0", "REQUEST_TIMEOUT_SECS"),
            ("body_limit_bytes", "12", "BODY_LIMIT_BYTES"),
            ("job_prefetch_per_slot", "17", "JOB_PREFETCH_PER_SLOT"),
            ("api_key_local_cache_ms", "70000", "API_KEY_LOCAL_CACHE_MS"),
            ("job_lease_ms", "0", "JOB_LEASE_MS"),
        ];
        for (key, value, setting) in cases {
            let err = with(&[(key, value)]).unwrap_err();
            assert_eq!(&err.setting, setting, "{key}={value}: {err}");
        }
    }

    #[test]
    fn of_several_bad_settings_the_first_checked_is_reported() {
        // Sections run in order: server, identity, mail, rate limiting, jobs.
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("body_limit_bytes", "12"), ("host", "nowhere"), ("otp_ttl_secs", "0")], "HOST"),
            (&[("rate_limit_instances", "0"), ("jwt_secret", "short"), ("otp_ttl_secs", "0")], "JWT_SECRET"),
            (&[("rate_limit_instances", "0"), ("mail_transport", "smtp"), ("job_lease_ms", "0")], "SMTP_URL"),
            (&[("api_key_local_cache_ms", "70000"), ("rate_limit_instances", "0")], "API_KEY_LOCAL_CACHE_MS"),
            (&[("rate_limit_instances", "0"), ("job_prefetch_per_slot", "17")], "RATE_LIMIT_INSTANCES"),
            (&[("api_key_local_cache_ms", "70000"), ("profile", "production")], "JWT_SECRET"),
            (&[("webhook_secret", "short"), ("api_key_local_cache_ms", "70000")], "API_KEY_LOCAL_CACHE_MS"),
        ];
        for (pairs, setting) in cases {
            assert_eq!(&with(pairs).unwrap_err().setting, setting, "{pairs:?}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn environment_overrides_the_toml_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("switchyard.toml", "port = 9000\nhost = \"0.0.0.0\"\nredis_key_prefix = \"fromfile\"")?;
            jail.set_env("PORT", "9100");
            jail.set_env("SWITCHYARD_ENV", "test");
            let s = Settings::load(Some(Path::new("switchyard.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.port, 9100);
            assert_eq!(s.host.to_string(), "0.0.0.0");
            assert_eq!(s.redis_key_prefix, "fromfile");
            assert_eq!(s.profile, Profile::Test);
            jail.create_file(
                "policies.toml",
                r#"
[[rate_limit_policies]]
name = "api-user"
group = "api"
principal = "user"
on_redis_error = "fail_closed"
limits = [{ algorithm = "gcra", rate = 20.0, burst = 40 }, { algorithm = "fixed_window", limit = 5, window_ms = 1000 }]
"#,
            )?;
            let s = Settings::load(Some(Path::new("policies.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.rate_limit.policies.len(), 1);
            assert_eq!(s.rate_limit.policies[0].limits.len(), 2);
            let cron = |catch_up: u64| {
                format!("[[cron]]\nname = \"nightly\"\nschedule = \"0 0 3 * * *\"\ntype = \"noop\"\ncatch_up_secs = {catch_up}\n")
            };
            jail.create_file("cron.toml", &cron(3600))?;
            let s = Settings::load(Some(Path::new("cron.toml"))).map_err(|e| e.to_string())?;
            assert_eq!((s.jobs.cron[0].catch_up_secs, s.jobs.cron[0].queue.as_str()), (3600, "default"));
            jail.create_file("cron.toml", &cron(MAX_CRON_CATCH_UP_SECS + 1))?;
            let err = Settings::load(Some(Path::new("cron.toml"))).unwrap_err();
            assert_eq!(err.setting, "CRON");
            jail.create_file("bad.toml", "prot = 1")?;
            let err = Settings::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert_eq!(err.setting, "PROT");
            Ok(())
        });
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let s = with(&[
            ("jwt_secret", "super-secret-value-that-is-long-enough"),
            ("database_url", "postgres://app:hunter2@db/app"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret"));
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("redacted"));
    }
}
