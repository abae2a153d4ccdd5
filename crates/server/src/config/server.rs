//! The settings that sit directly on `Settings` rather than in a section
//! of their own: where the server listens, the PostgreSQL and Redis it uses,
//! how it logs, its timeouts, the HTTP edge (body limit, CORS) and the JWT
//! secret.
//!
//! Invariants: `host` is an IP address; the store URLs are well-formed but
//! stay secrets (they may carry a password) and are never echoed in an
//! error; the Redis key prefix is a valid keyspace; every timeout is
//! non-zero; CORS origins are bare `http(s)://host[:port]` origins usable
//! as a header value; the JWT secret is at least 32 characters (required in
//! production).

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{secret_or_generated, ConfigError, Profile};

/// How log lines are written: JSON for machines, pretty for people, or
/// `auto` (pretty when stdout is a terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
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

/// These settings as written.
pub(super) struct RawServer {
    pub(super) database_url: String,
    pub(super) database_max_connections: u32,
    pub(super) redis_url: String,
    pub(super) redis_key_prefix: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) jwt_secret: Option<String>,
    pub(super) rust_log: String,
    pub(super) log_format: LogFormat,
    pub(super) request_timeout_secs: u64,
    pub(super) body_limit_bytes: usize,
    pub(super) cors_allowed_origins: String,
    pub(super) startup_timeout_secs: u64,
    pub(super) shutdown_timeout_secs: u64,
    pub(super) ready_check_timeout_ms: u64,
    pub(super) worker_heartbeat_secs: u64,
    pub(super) actions_audit_maxlen: u64,
}

/// These settings validated, for `RawSettings::validate` to place on
/// `Settings` (see there for what each means).
pub(super) struct ServerSettings {
    pub(super) database_url: SecretString,
    pub(super) database_max_connections: u32,
    pub(super) redis_url: SecretString,
    pub(super) redis_key_prefix: String,
    pub(super) host: IpAddr,
    pub(super) port: u16,
    pub(super) jwt_secret: SecretString,
    pub(super) jwt_secret_generated: bool,
    pub(super) rust_log: String,
    pub(super) log_format: LogFormat,
    pub(super) request_timeout: Duration,
    pub(super) body_limit_bytes: usize,
    pub(super) cors_allowed_origins: CorsOrigins,
    pub(super) startup_timeout: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) ready_check_timeout: Duration,
    pub(super) worker_heartbeat: Duration,
    pub(super) actions_audit_maxlen: u64,
}

/// Checks, in order: `HOST`, `DATABASE_URL`, `REDIS_URL`,
/// `REDIS_KEY_PREFIX`, `DATABASE_MAX_CONNECTIONS`, `RUST_LOG`, the timeouts
/// (non-zero), `BODY_LIMIT_BYTES`, `CORS_ALLOWED_ORIGINS`, `JWT_SECRET`.
pub(super) fn validate(raw: RawServer, profile: Profile) -> Result<ServerSettings, ConfigError> {
    let host: IpAddr =
        raw.host.parse().map_err(|_| ConfigError::new("host", "must be an IP address such as 127.0.0.1 or 0.0.0.0"))?;
    check_url("database_url", &raw.database_url, &["postgres://", "postgresql://"])?;
    switchyard_kit::RedisTopology::parse(&raw.redis_url).map_err(|e| ConfigError::new("redis_url", e.to_string()))?;
    switchyard_kit::Keyspace::new(&raw.redis_key_prefix)
        .map_err(|_| ConfigError::new("redis_key_prefix", "must be 1-64 characters of [A-Za-z0-9_.-]"))?;
    if raw.database_max_connections == 0 {
        return Err(ConfigError::new("database_max_connections", "must be at least 1"));
    }
    tracing_subscriber::EnvFilter::try_new(&raw.rust_log)
        .map_err(|_| ConfigError::new("rust_log", "is not a valid tracing filter (e.g. info,switchyard=debug)"))?;
    for (name, value) in [
        ("request_timeout_secs", raw.request_timeout_secs),
        ("startup_timeout_secs", raw.startup_timeout_secs),
        ("worker_heartbeat_secs", raw.worker_heartbeat_secs),
        ("ready_check_timeout_ms", raw.ready_check_timeout_ms),
    ] {
        if value == 0 {
            return Err(ConfigError::new(name, "must be greater than 0"));
        }
    }
    if raw.body_limit_bytes < 1024 {
        return Err(ConfigError::new("body_limit_bytes", "must be at least 1024"));
    }
    let cors_allowed_origins = parse_cors(&raw.cors_allowed_origins)?;
    let (jwt_secret, jwt_secret_generated) = secret_or_generated("jwt_secret", raw.jwt_secret, profile)?;
    Ok(ServerSettings {
        database_url: raw.database_url.into(),
        database_max_connections: raw.database_max_connections,
        redis_url: raw.redis_url.into(),
        redis_key_prefix: raw.redis_key_prefix,
        host,
        port: raw.port,
        jwt_secret,
        jwt_secret_generated,
        rust_log: raw.rust_log,
        log_format: raw.log_format,
        request_timeout: Duration::from_secs(raw.request_timeout_secs),
        body_limit_bytes: raw.body_limit_bytes,
        cors_allowed_origins,
        startup_timeout: Duration::from_secs(raw.startup_timeout_secs),
        shutdown_timeout: Duration::from_secs(raw.shutdown_timeout_secs),
        ready_check_timeout: Duration::from_millis(raw.ready_check_timeout_ms),
        worker_heartbeat: Duration::from_secs(raw.worker_heartbeat_secs),
        actions_audit_maxlen: raw.actions_audit_maxlen.max(1),
    })
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::RawSettings;
    use super::*;

    fn raw() -> RawServer {
        RawSettings::default().into_sections().server
    }

    fn cors(value: &str) -> Result<CorsOrigins, ConfigError> {
        validate(RawServer { cors_allowed_origins: value.into(), ..raw() }, Profile::Dev)
            .map(|s| s.cors_allowed_origins)
    }

    #[test]
    fn cors_origins_parse_as_none_any_or_a_list() {
        assert_eq!(
            cors("https://a.example.com, http://localhost:3000").unwrap(),
            CorsOrigins::List(vec!["https://a.example.com".into(), "http://localhost:3000".into()])
        );
        assert_eq!(cors("*").unwrap(), CorsOrigins::Any);
        assert_eq!(cors(" , ").unwrap(), CorsOrigins::None);
        for bad in ["https://a.example.com/", "https://a.example.com/app", "ftp://a.example.com", "*, https://a.b"] {
            assert_eq!(cors(bad).unwrap_err().setting, "CORS_ALLOWED_ORIGINS", "{bad}");
        }
    }

    /// The error `validate` refuses `raw` with.
    fn refusal(raw: RawServer, profile: Profile) -> ConfigError {
        validate(raw, profile).err().expect("refused")
    }

    #[test]
    fn refusals_name_the_setting() {
        let err = refusal(RawServer { host: "localhost".into(), ..raw() }, Profile::Dev);
        assert_eq!(err, ConfigError::new("host", "must be an IP address such as 127.0.0.1 or 0.0.0.0"));
        let err = refusal(RawServer { database_url: "postgres://[".into(), ..raw() }, Profile::Dev);
        assert_eq!(err, ConfigError::new("database_url", "must be a URL starting with postgres://"));
        let err = refusal(RawServer { database_max_connections: 0, ..raw() }, Profile::Dev);
        assert_eq!(err.setting, "DATABASE_MAX_CONNECTIONS");
        let err = refusal(RawServer { ready_check_timeout_ms: 0, ..raw() }, Profile::Dev);
        assert_eq!(err.setting, "READY_CHECK_TIMEOUT_MS");
        assert_eq!(refusal(raw(), Profile::Production).setting, "JWT_SECRET");
    }

    #[test]
    fn a_given_jwt_secret_is_kept_and_the_audit_cap_is_at_least_one() {
        let secret = "k".repeat(40);
        let s =
            validate(RawServer { jwt_secret: Some(secret.clone()), actions_audit_maxlen: 0, ..raw() }, Profile::Dev)
                .unwrap();
        assert_eq!((s.jwt_secret.expose_secret(), s.jwt_secret_generated), (secret.as_str(), false));
        assert_eq!(s.actions_audit_maxlen, 1);
    }
}
