//! Rate-limit policies: which limits apply to which requests, and what to
//! do when Redis cannot be asked.
//!
//! A policy applies to one route group (`auth`: the anonymous sign-in
//! endpoints; `service`: the rate-limit check API; `api`: everything else
//! under /v1) and one principal kind
//! (`anonymous`, keyed by client IP; `user`; `client`). Policies are
//! configured in the TOML file (`[[rate_limit_policies]]`); without one the
//! built-in defaults below apply.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_kit::Limit;

/// Where a request belongs, for policy lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RouteGroup {
    /// Sign-up, login, refresh, one-time codes, password reset.
    Auth,
    /// Every other /v1 route.
    Api,
    /// Recording actions (`POST /v1/actions`).
    Actions,
    /// The rate-limit check service (`/v1/ratelimit/*`): infrastructure
    /// called at high rates, unlimited unless a policy names this group.
    Service,
}

impl RouteGroup {
    /// The group of a request path; `None` for unlimited routes (health,
    /// metrics, documentation).
    pub fn of(method: &axum::http::Method, path: &str) -> Option<Self> {
        if method == axum::http::Method::POST && path == "/v1/actions" {
            return Some(Self::Actions);
        }
        Self::of_path(path)
    }

    fn of_path(path: &str) -> Option<Self> {
        const AUTH: &[&str] =
            &["/v1/auth/signup", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/otp/", "/v1/auth/password/"];
        if AUTH.iter().any(|p| path.starts_with(p)) {
            Some(Self::Auth)
        } else if path.starts_with("/v1/ratelimit/") {
            Some(Self::Service)
        } else if path.starts_with("/v1/") {
            Some(Self::Api)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Anonymous,
    User,
    Client,
}

/// What a policy does when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Allow the request.
    FailOpen,
    /// Refuse it (503).
    FailClosed,
    /// Decide in this process, with the policy's limits divided by
    /// `RATE_LIMIT_INSTANCES`.
    #[default]
    Local,
}

/// One limit of a policy, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case", deny_unknown_fields)]
pub enum LimitSetting {
    FixedWindow { limit: u64, window_ms: u64 },
    SlidingWindow { limit: u64, window_ms: u64 },
    SlidingWindowApprox { limit: u64, window_ms: u64 },
    TokenBucket { capacity: u64, refill_per_sec: f64 },
    Gcra { rate: f64, burst: u64 },
}

impl LimitSetting {
    pub fn to_limit(self) -> Limit {
        let ms = Duration::from_millis;
        match self {
            Self::FixedWindow { limit, window_ms } => Limit::FixedWindow { limit, window: ms(window_ms) },
            Self::SlidingWindow { limit, window_ms } => Limit::SlidingWindowLog { limit, window: ms(window_ms) },
            Self::SlidingWindowApprox { limit, window_ms } => {
                Limit::SlidingWindowCounter { limit, window: ms(window_ms) }
            }
            Self::TokenBucket { capacity, refill_per_sec } => Limit::TokenBucket { capacity, refill_per_sec },
            Self::Gcra { rate, burst } => Limit::Gcra { rate, burst },
        }
    }
}

/// A named set of limits for one route group and principal kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySetting {
    pub name: String,
    pub group: RouteGroup,
    pub principal: PrincipalKind,
    /// Each limit gets a name for headers and metrics: `<policy>-<index>`
    /// unless `limit_names` gives them.
    pub limits: Vec<LimitSetting>,
    #[serde(default)]
    pub limit_names: Vec<String>,
    /// Decide and count, but never deny (to try a limit on live traffic).
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub on_redis_error: FailMode,
}

impl PolicySetting {
    pub fn limit_name(&self, index: usize) -> String {
        self.limit_names.get(index).cloned().unwrap_or_else(|| format!("{}-{index}", self.name))
    }

    /// Whether the settings make sense; a message naming the problem if not.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("a policy name must be non-empty [A-Za-z0-9_-]".into());
        }
        if self.limits.is_empty() {
            return Err(format!("policy {} has no limits", self.name));
        }
        for limit in &self.limits {
            let ok = match *limit {
                LimitSetting::FixedWindow { limit, window_ms }
                | LimitSetting::SlidingWindow { limit, window_ms }
                | LimitSetting::SlidingWindowApprox { limit, window_ms } => limit > 0 && window_ms > 0,
                LimitSetting::TokenBucket { capacity, refill_per_sec } => {
                    capacity > 0 && refill_per_sec.is_finite() && refill_per_sec > 0.0
                }
                LimitSetting::Gcra { rate, .. } => rate.is_finite() && rate > 0.0,
            };
            if !ok {
                return Err(format!("policy {} has a limit with zero or negative parameters", self.name));
            }
        }
        Ok(())
    }
}

/// The built-in policies.
pub fn defaults() -> Vec<PolicySetting> {
    let policy = |name: &str, group, principal, limits: Vec<LimitSetting>, names: &[&str]| PolicySetting {
        name: name.into(),
        group,
        principal,
        limits,
        limit_names: names.iter().map(|n| (*n).to_owned()).collect(),
        shadow: false,
        on_redis_error: FailMode::Local,
    };
    let mut policies = vec![
        policy(
            "auth-ip",
            RouteGroup::Auth,
            PrincipalKind::Anonymous,
            vec![LimitSetting::FixedWindow { limit: 60, window_ms: 60_000 }],
            &["auth-ip-minute"],
        ),
        policy(
            "api-ip",
            RouteGroup::Api,
            PrincipalKind::Anonymous,
            vec![LimitSetting::SlidingWindowApprox { limit: 300, window_ms: 60_000 }],
            &["api-ip-minute"],
        ),
        policy(
            "api-user",
            RouteGroup::Api,
            PrincipalKind::User,
            vec![
                LimitSetting::Gcra { rate: 20.0, burst: 40 },
                LimitSetting::SlidingWindowApprox { limit: 10_000, window_ms: 3_600_000 },
            ],
            &["api-user-burst", "api-user-hour"],
        ),
        policy(
            "api-client",
            RouteGroup::Api,
            PrincipalKind::Client,
            vec![LimitSetting::SlidingWindowApprox { limit: 6_000, window_ms: 60_000 }],
            &["api-client-minute"],
        ),
    ];
    // Seed 000's action limits, per actor, for users and clients alike.
    for (name, principal) in [("actions-user", PrincipalKind::User), ("actions-client", PrincipalKind::Client)] {
        policies.push(policy(
            name,
            RouteGroup::Actions,
            principal,
            vec![
                LimitSetting::FixedWindow { limit: 100, window_ms: 60_000 },
                LimitSetting::TokenBucket { capacity: 10, refill_per_sec: 1.0 },
            ],
            &["actions-minute", "actions-burst"],
        ));
    }
    policies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_groups() {
        assert_eq!(RouteGroup::of_path("/v1/auth/login"), Some(RouteGroup::Auth));
        assert_eq!(RouteGroup::of_path("/v1/auth/otp/verify"), Some(RouteGroup::Auth));
        assert_eq!(RouteGroup::of_path("/v1/auth/sessions"), Some(RouteGroup::Api));
        assert_eq!(RouteGroup::of_path("/v1/locks/x"), Some(RouteGroup::Api));
        assert_eq!(RouteGroup::of_path("/v1/ratelimit/check:batch"), Some(RouteGroup::Service));
        assert_eq!(RouteGroup::of_path("/health"), None);
        assert_eq!(RouteGroup::of(&axum::http::Method::POST, "/v1/actions"), Some(RouteGroup::Actions));
        assert_eq!(RouteGroup::of(&axum::http::Method::GET, "/v1/actions"), Some(RouteGroup::Api));
        assert_eq!(RouteGroup::of_path("/api-docs/openapi.json"), None);
    }

    #[test]
    fn defaults_are_valid_and_policies_parse_from_toml() {
        for p in defaults() {
            p.validate().unwrap();
        }
        let parsed: PolicySetting = toml_like(
            r#"{"name":"x","group":"api","principal":"user","limits":[{"algorithm":"token_bucket","capacity":5,"refill_per_sec":1.5}],"shadow":true,"on_redis_error":"fail_closed"}"#,
        );
        assert_eq!(parsed.limits[0].to_limit(), Limit::TokenBucket { capacity: 5, refill_per_sec: 1.5 });
        assert_eq!(parsed.limit_name(0), "x-0");
        assert!(parsed.shadow);
    }

    fn toml_like(json: &str) -> PolicySetting {
        serde_json::from_str(json).unwrap()
    }
}
