//! Configuration: typed settings, loaded once at start-up from defaults, an
//! optional TOML file and the environment (in rising precedence), then
//! validated so a bad value stops the process with one line naming it.
//!
//! Invariant: secrets (the JWT secret, URLs that may carry a password) are
//! wrapped in [`SecretString`] and never printed; `Debug` shows them redacted.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::ratelimit::policy::PolicySetting;

/// The environment variables switchyard reads, each the upper-case name of a
/// settings field (`SWITCHYARD_ENV` sets `profile`).
pub const ENV_VARS: &[&str] = &[
    "SWITCHYARD_ENV",
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

/// How log lines are written: JSON for machines, pretty for people, or
/// `auto` (pretty when stdout is a terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
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
}

/// `MAIL_TRANSPORT`: where mail goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportSetting {
    /// Stored in the `email_outbox` table (dev and tests).
    Outbox,
    /// Sent through `SMTP_URL`.
    Smtp,
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
            rate_limit_policies: crate::ratelimit::policy::defaults(),
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
        }
    }
}

/// Which origins may call the API from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers: browsers on other origins are refused.
    None,
    /// `*`: any origin, without credentials.
    Any,
    /// An explicit list of origins (`https://app.example.com`).
    List(Vec<String>),
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
}

/// The job queue and its worker (`JOB_*`, `WEBHOOK_*`, `[[cron]]`).
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// How long a worker holds a job without a heartbeat before it is
    /// given to another worker.
    pub lease: Duration,
    /// The run-time limit of one attempt when the job sets no `timeout_ms`.
    pub default_timeout: Duration,
    /// How long finished jobs stay readable: succeeded or cancelled ones,
    /// and dead ones (kept longer: someone has to look at them).
    pub succeeded_retention: Duration,
    pub dead_retention: Duration,
    /// On shutdown, how long in-flight jobs may run before they are
    /// released back to their queue.
    pub shutdown_grace: Duration,
    /// Jobs a worker leases ahead of its free slots, per slot.
    pub prefetch_per_slot: usize,
    /// Signs webhook deliveries (HMAC-SHA256).
    pub webhook_secret: SecretString,
    /// Lets webhooks reach loopback and private addresses (off: SSRF guard).
    pub webhook_allow_private_networks: bool,
    pub cron: Vec<CronSetting>,
}

/// One recurring job: `[[cron]]` in the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CronSetting {
    /// Unique among cron entries: names the per-tick dedupe key.
    pub name: String,
    /// A cron expression with seconds: `0 */5 * * * *` (every 5 minutes).
    pub schedule: String,
    #[serde(default = "default_queue")]
    pub queue: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    /// A tick missed while no worker ran (a deploy, an outage) is still
    /// enqueued, once, by the first scheduler that starts within this many
    /// seconds after it; only the latest missed tick runs. 0 (the default):
    /// missed ticks are skipped. At most 86400.
    #[serde(default)]
    pub catch_up_secs: u64,
}

/// The longest `catch_up_secs`: every tick's dedupe key lives that long.
pub const MAX_CRON_CATCH_UP_SECS: u64 = 86_400;

fn default_queue() -> String {
    "default".into()
}

/// Rate-limit policies and who is exempt or banned.
#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    pub policies: Vec<PolicySetting>,
    /// Peers whose X-Forwarded-For is believed (none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Subjects never limited: IPs (`ip:10.0.0.1`), `user:<id>`, `client:<id>`.
    pub allow: HashSet<String>,
    /// Subjects always refused, checked before any counter.
    pub deny: HashSet<String>,
    /// How many instances share the load: the local fallback divides each
    /// limit by this.
    pub instances: u32,
}

/// Where mail goes (`MAIL_TRANSPORT`, `SMTP_URL`, `MAIL_FROM`).
#[derive(Clone, Debug)]
pub struct MailConfig {
    pub transport: MailTransportSetting,
    pub smtp_url: Option<SecretString>,
    pub from: String,
}

/// Lifetimes, thresholds and hashing parameters of the identity layer.
#[derive(Clone)]
pub struct IdentitySettings {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub login_max_failures_per_email: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    pub otp_ttl: Duration,
    pub otp_max_attempts: u32,
    pub otp_requests_per_window: u32,
    pub otp_request_window: Duration,
    pub password_reset_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub api_key_grace_period: Duration,
    pub api_key_retention: u32,
    pub api_key_cache_ttl: Duration,
    /// How long a process keeps a resolved key in memory (0: off). Another
    /// instance's revocation reaches this one within this long; this
    /// instance's own revocations take effect at once.
    pub api_key_local_cache: Duration,
    /// Key of the HMAC that API keys and one-time codes are hashed with.
    pub api_key_pepper: SecretString,
}

impl std::fmt::Debug for IdentitySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySettings")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("api_key_pepper", &"[redacted]")
            .finish_non_exhaustive()
    }
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
    fn validate(self) -> Result<Settings, ConfigError> {
        let host: IpAddr = self
            .host
            .parse()
            .map_err(|_| ConfigError::new("host", "must be an IP address such as 127.0.0.1 or 0.0.0.0"))?;
        check_url("database_url", &self.database_url, &["postgres://", "postgresql://"])?;
        switchyard_kit::RedisTopology::parse(&self.redis_url)
            .map_err(|e| ConfigError::new("redis_url", e.to_string()))?;
        switchyard_kit::Keyspace::new(&self.redis_key_prefix)
            .map_err(|_| ConfigError::new("redis_key_prefix", "must be 1-64 characters of [A-Za-z0-9_.-]"))?;
        if self.database_max_connections == 0 {
            return Err(ConfigError::new("database_max_connections", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.rust_log)
            .map_err(|_| ConfigError::new("rust_log", "is not a valid tracing filter (e.g. info,switchyard=debug)"))?;
        for (name, value) in [
            ("request_timeout_secs", self.request_timeout_secs),
            ("startup_timeout_secs", self.startup_timeout_secs),
            ("worker_heartbeat_secs", self.worker_heartbeat_secs),
            ("ready_check_timeout_ms", self.ready_check_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, "must be greater than 0"));
            }
        }
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::new("body_limit_bytes", "must be at least 1024"));
        }
        let cors_allowed_origins = parse_cors(&self.cors_allowed_origins)?;
        let (jwt_secret, jwt_secret_generated) = secret_or_generated("jwt_secret", self.jwt_secret, self.profile)?;
        for (name, value) in [
            ("access_token_ttl_secs", self.access_token_ttl_secs),
            ("refresh_token_ttl_secs", self.refresh_token_ttl_secs),
            ("login_failure_window_secs", self.login_failure_window_secs),
            ("otp_ttl_secs", self.otp_ttl_secs),
            ("otp_request_window_secs", self.otp_request_window_secs),
            ("password_reset_ttl_secs", self.password_reset_ttl_secs),
            ("api_key_cache_ttl_secs", self.api_key_cache_ttl_secs),
            ("login_max_failures_per_email", self.login_max_failures_per_email.into()),
            ("login_max_failures_per_ip", self.login_max_failures_per_ip.into()),
            ("otp_max_attempts", self.otp_max_attempts.into()),
            ("otp_requests_per_window", self.otp_requests_per_window.into()),
            ("api_key_retention", self.api_key_retention.into()),
            ("argon2_iterations", self.argon2_iterations.into()),
            ("argon2_parallelism", self.argon2_parallelism.into()),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, "must be greater than 0"));
            }
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism {
            return Err(ConfigError::new("argon2_memory_kib", "must be at least 8 x ARGON2_PARALLELISM"));
        }
        if !(self.api_key_grace_period_seconds.is_finite() && self.api_key_grace_period_seconds >= 0.0) {
            return Err(ConfigError::new("api_key_grace_period_seconds", "must be a non-negative number of seconds"));
        }
        let api_key_pepper = secret_or_generated("api_key_pepper", self.api_key_pepper, self.profile)?;
        if self.mail_transport == MailTransportSetting::Smtp {
            match &self.smtp_url {
                Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {}
                _ => {
                    return Err(ConfigError::new(
                        "smtp_url",
                        "must be an smtp:// or smtps:// URL when MAIL_TRANSPORT=smtp",
                    ))
                }
            }
        }
        let identity = IdentitySettings {
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl_secs),
            login_max_failures_per_email: self.login_max_failures_per_email,
            login_max_failures_per_ip: self.login_max_failures_per_ip,
            login_failure_window: Duration::from_secs(self.login_failure_window_secs),
            otp_ttl: Duration::from_secs(self.otp_ttl_secs),
            otp_max_attempts: self.otp_max_attempts,
            otp_requests_per_window: self.otp_requests_per_window,
            otp_request_window: Duration::from_secs(self.otp_request_window_secs),
            password_reset_ttl: Duration::from_secs(self.password_reset_ttl_secs),
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            argon2_parallelism: self.argon2_parallelism,
            api_key_grace_period: Duration::from_secs_f64(self.api_key_grace_period_seconds),
            api_key_retention: self.api_key_retention,
            api_key_cache_ttl: Duration::from_secs(self.api_key_cache_ttl_secs),
            api_key_local_cache: Duration::from_millis(self.api_key_local_cache_ms),
            api_key_pepper: api_key_pepper.0,
        };
        let mut trusted_proxies = Vec::new();
        for entry in split_list(&self.rate_limit_trusted_proxies) {
            let net = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::new("rate_limit_trusted_proxies", "must be IP addresses or CIDR ranges"))?;
            trusted_proxies.push(net);
        }
        for policy in &self.rate_limit_policies {
            policy.validate().map_err(|message| ConfigError::new("rate_limit_policies", message))?;
        }
        if self.rate_limit_instances == 0 {
            return Err(ConfigError::new("rate_limit_instances", "must be at least 1"));
        }
        let rate_limit = RateLimitSettings {
            policies: self.rate_limit_policies,
            trusted_proxies,
            allow: split_list(&self.rate_limit_allow).map(String::from).collect(),
            deny: split_list(&self.rate_limit_deny).map(String::from).collect(),
            instances: self.rate_limit_instances,
        };
        for (name, value) in [
            ("job_lease_ms", self.job_lease_ms),
            ("job_default_timeout_ms", self.job_default_timeout_ms),
            ("job_succeeded_retention_secs", self.job_succeeded_retention_secs),
            ("job_dead_retention_secs", self.job_dead_retention_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, "must be greater than 0"));
            }
        }
        if self.job_prefetch_per_slot > 16 {
            return Err(ConfigError::new("job_prefetch_per_slot", "must be between 0 and 16"));
        }
        if self.api_key_local_cache_ms > 60_000 {
            return Err(ConfigError::new("api_key_local_cache_ms", "must be at most 60000 (0 turns it off)"));
        }
        let mut cron_names = HashSet::new();
        for entry in &self.cron {
            if !cron_names.insert(entry.name.as_str()) {
                return Err(ConfigError::new("cron", format!("the name {} is used twice", entry.name)));
            }
            crate::jobs::cron::parse_schedule(&entry.schedule).map_err(|message| ConfigError::new("cron", message))?;
            if entry.catch_up_secs > MAX_CRON_CATCH_UP_SECS {
                let message = format!("catch_up_secs of {} must be at most {MAX_CRON_CATCH_UP_SECS}", entry.name);
                return Err(ConfigError::new("cron", message));
            }
        }
        let (webhook_secret, _) = secret_or_generated("webhook_secret", self.webhook_secret, self.profile)?;
        let jobs = JobSettings {
            lease: Duration::from_millis(self.job_lease_ms.max(50)),
            default_timeout: Duration::from_millis(self.job_default_timeout_ms),
            succeeded_retention: Duration::from_secs(self.job_succeeded_retention_secs),
            dead_retention: Duration::from_secs(self.job_dead_retention_secs),
            shutdown_grace: Duration::from_secs(self.job_shutdown_grace_secs),
            prefetch_per_slot: self.job_prefetch_per_slot,
            webhook_secret,
            webhook_allow_private_networks: self.webhook_allow_private_networks,
            cron: self.cron,
        };
        let mail = MailConfig {
            transport: self.mail_transport,
            smtp_url: self.smtp_url.map(SecretString::from),
            from: self.mail_from,
        };

        Ok(Settings {
            profile: self.profile,
            database_url: self.database_url.into(),
            database_max_connections: self.database_max_connections,
            redis_url: self.redis_url.into(),
            redis_key_prefix: self.redis_key_prefix,
            host,
            port: self.port,
            jwt_secret,
            jwt_secret_generated,
            rust_log: self.rust_log,
            log_format: self.log_format,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            body_limit_bytes: self.body_limit_bytes,
            cors_allowed_origins,
            startup_timeout: Duration::from_secs(self.startup_timeout_secs),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            ready_check_timeout: Duration::from_millis(self.ready_check_timeout_ms),
            worker_heartbeat: Duration::from_secs(self.worker_heartbeat_secs),
            identity,
            mail,
            rate_limit,
            actions_audit_maxlen: self.actions_audit_maxlen.max(1),
            jobs,
        })
    }
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

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn check_url(setting: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let scheme_ok = schemes.iter().any(|s| value.starts_with(s));
    if !scheme_ok || url::Url::parse(value).is_err() {
        return Err(ConfigError::new(setting, format!("must be a URL starting with {}", schemes[0])));
    }
    Ok(())
}

fn parse_cors(value: &str) -> Result<CorsOrigins, ConfigError> {
    let origins: Vec<&str> = value.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return Ok(CorsOrigins::None);
    }
    if origins == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    for origin in &origins {
        let parsed = url::Url::parse(origin).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/" && !origin.ends_with('/')
        });
        if parsed.is_none() || http::HeaderValue::from_str(origin).is_err() {
            return Err(ConfigError::new(
                "cors_allowed_origins",
                "must be `*` or a comma-separated list of origins like https://app.example.com",
            ));
        }
    }
    Ok(CorsOrigins::List(origins.into_iter().map(String::from).collect()))
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
    fn cors_origins_parse_as_none_any_or_a_list() {
        let s = with(&[("cors_allowed_origins", "https://a.example.com, http://localhost:3000")]).unwrap();
        assert_eq!(
            s.cors_allowed_origins,
            CorsOrigins::List(vec!["https://a.example.com".into(), "http://localhost:3000".into()])
        );
        assert_eq!(with(&[("cors_allowed_origins", "*")]).unwrap().cors_allowed_origins, CorsOrigins::Any);
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
