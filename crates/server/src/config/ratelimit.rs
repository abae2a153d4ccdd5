//! Rate-limit settings: the policies (which limits apply to which route
//! group and principal kind, and what to do when Redis cannot be asked),
//! the trusted proxies, the allow- and deny-lists, and the instance count.
//!
//! A policy applies to one route group (`auth`: the anonymous sign-in
//! endpoints; `actions`: recording actions; `service`: the rate-limit check
//! API; `api`: everything else under /v1) and one principal kind
//! (`anonymous`, keyed by client IP; `user`; `client`). Policies are
//! configured in the TOML file (`[[rate_limit_policies]]`); without one the
//! built-in [`defaults`] apply. Which group a request belongs to is decided
//! where limits are enforced (`ratelimit::policy`), not here.
//!
//! Invariants: every validated policy has a well-formed name and at least
//! one limit, each with positive parameters; `instances` is at least 1.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_kit::Limit;

use super::ConfigError;

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

/// The `RATE_LIMIT_*` settings as written.
pub(super) struct RawRateLimit {
    pub(super) rate_limit_policies: Vec<PolicySetting>,
    pub(super) rate_limit_trusted_proxies: String,
    pub(super) rate_limit_allow: String,
    pub(super) rate_limit_deny: String,
    pub(super) rate_limit_instances: u32,
}

/// Checks, in order: `RATE_LIMIT_TRUSTED_PROXIES`, `RATE_LIMIT_POLICIES`,
/// `RATE_LIMIT_INSTANCES`.
pub(super) fn validate(raw: RawRateLimit) -> Result<RateLimitSettings, ConfigError> {
    let mut trusted_proxies = Vec::new();
    for entry in split_list(&raw.rate_limit_trusted_proxies) {
        let net = entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| ConfigError::new("rate_limit_trusted_proxies", "must be IP addresses or CIDR ranges"))?;
        trusted_proxies.push(net);
    }
    for policy in &raw.rate_limit_policies {
        policy.validate().map_err(|message| ConfigError::new("rate_limit_policies", message))?;
    }
    if raw.rate_limit_instances == 0 {
        return Err(ConfigError::new("rate_limit_instances", "must be at least 1"));
    }
    Ok(RateLimitSettings {
        policies: raw.rate_limit_policies,
        trusted_proxies,
        allow: split_list(&raw.rate_limit_allow).map(String::from).collect(),
        deny: split_list(&raw.rate_limit_deny).map(String::from).collect(),
        instances: raw.rate_limit_instances,
    })
}

/// The non-empty entries of a comma-separated list, trimmed.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::RawSettings;
    use super::*;

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

    fn raw() -> RawRateLimit {
        RawSettings::default().into_sections().rate_limit
    }

    #[test]
    fn lists_are_split_on_commas_and_proxies_may_be_addresses_or_ranges() {
        let s = validate(RawRateLimit {
            rate_limit_trusted_proxies: "10.0.0.0/8, 192.168.1.7".into(),
            rate_limit_allow: "ip:10.0.0.1, ,user:7".into(),
            ..raw()
        })
        .unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(s.trusted_proxies[1].contains(&"192.168.1.7".parse::<IpAddr>().unwrap()));
        assert_eq!(s.allow, HashSet::from(["ip:10.0.0.1".to_owned(), "user:7".to_owned()]));
        assert!(s.deny.is_empty());
        assert_eq!(s.policies, defaults());
    }

    #[test]
    fn refusals_name_the_setting() {
        let err = validate(RawRateLimit { rate_limit_trusted_proxies: "10.0.0.0/8, proxy".into(), ..raw() });
        assert_eq!(err.unwrap_err().setting, "RATE_LIMIT_TRUSTED_PROXIES");

        let mut empty = defaults().remove(0);
        empty.limits.clear();
        let err = validate(RawRateLimit { rate_limit_policies: vec![empty], ..raw() }).unwrap_err();
        assert_eq!(err, ConfigError::new("rate_limit_policies", "policy auth-ip has no limits"));

        let err = validate(RawRateLimit { rate_limit_instances: 0, ..raw() }).unwrap_err();
        assert_eq!(err.setting, "RATE_LIMIT_INSTANCES");
    }
}
