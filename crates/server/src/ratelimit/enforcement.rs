//! Policy enforcement: given a request's route group and caller, decide
//! every applicable limit in one Redis round trip; fall back as the policy
//! says when Redis does not answer.
//!
//! Order of checks: deny-list, allow-list, then counters. A shadow policy
//! decides and counts but never denies. Per-client overrides (the
//! `rate_limit` of an API client, requests per minute) replace the client
//! policy's limits; they travel with the cached key lookup, so they cost
//! nothing extra.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use switchyard_kit::{Check, Decision, Limit, RateLimiter, Verdict};

use crate::config::{FailMode, PolicySetting, PrincipalKind, RateLimitSettings, RouteGroup};
use crate::domain::PrincipalId;

/// Who is being limited.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub id: SubjectId,
    /// A client's own requests-per-minute limit, when it has one.
    pub client_limit: Option<u64>,
}

/// The caller a limit counts against. Its key (`ip:<addr>`, `user:<id>`,
/// `client:<id>`, as written in the allow and deny lists) is only formatted
/// when a list or a policy needs it: the check API's own group has no policy,
/// and formatting a UUID was a few percent of a check's CPU.
#[derive(Debug, Clone, Copy)]
pub enum SubjectId {
    Ip(IpAddr),
    Principal(PrincipalId),
}

impl SubjectId {
    pub fn kind(&self) -> PrincipalKind {
        match self {
            SubjectId::Ip(_) => PrincipalKind::Anonymous,
            SubjectId::Principal(PrincipalId::User(_)) => PrincipalKind::User,
            SubjectId::Principal(PrincipalId::Client(_)) => PrincipalKind::Client,
        }
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectId::Ip(ip) => write!(f, "ip:{ip}"),
            SubjectId::Principal(id) => id.fmt(f),
        }
    }
}

/// The limits that applied, for the RateLimit headers.
#[derive(Debug, Clone)]
pub struct Applied {
    pub policy: String,
    pub names: Vec<String>,
    pub limits: Vec<Limit>,
    pub decisions: Vec<Decision>,
}

impl Applied {
    /// The decision the single-value headers report: the first denying
    /// limit, else the one with the fewest remaining.
    pub fn binding(&self) -> Option<&Decision> {
        self.decisions.iter().find(|d| !d.allowed).or_else(|| self.decisions.iter().min_by_key(|d| d.remaining))
    }
}

#[derive(Debug, Clone)]
pub enum Enforcement {
    /// No policy applies, or the subject is allow-listed.
    Unlimited,
    Allowed(Applied),
    Denied(Applied),
    /// The subject is deny-listed.
    Banned,
    /// Redis did not answer and the policy fails closed.
    Unavailable {
        policy: String,
    },
}

struct Compiled {
    setting: PolicySetting,
    limits: Vec<Limit>,
    names: Vec<String>,
    /// In-process limiters used when Redis is unreachable (mode `local`).
    local: Vec<DefaultKeyedRateLimiter<String>>,
}

/// The rate-limit policies of this instance.
pub struct RateLimits {
    limiter: RateLimiter,
    policies: HashMap<(RouteGroup, PrincipalKind), Arc<Compiled>>,
    settings: RateLimitSettings,
    /// Unix ms of the last fallback decision (0 = never).
    last_fallback_ms: AtomicI64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").field("policies", &self.policies.len()).finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn new(limiter: RateLimiter, settings: &RateLimitSettings) -> Self {
        let policies = settings
            .policies
            .iter()
            .map(|setting| {
                let limits: Vec<Limit> = setting.limits.iter().map(|l| l.to_limit()).collect();
                let names = (0..limits.len()).map(|i| setting.limit_name(i)).collect();
                let local =
                    limits.iter().map(|l| DefaultKeyedRateLimiter::keyed(local_quota(l, settings.instances))).collect();
                (
                    (setting.group, setting.principal),
                    Arc::new(Compiled { setting: setting.clone(), limits, names, local }),
                )
            })
            .collect();
        Self { limiter, policies, settings: settings.clone(), last_fallback_ms: AtomicI64::new(0) }
    }

    /// True when a decision fell back to its failure mode in the last minute.
    pub fn degraded(&self) -> bool {
        let last = self.last_fallback_ms.load(Ordering::Relaxed);
        last > 0 && chrono::Utc::now().timestamp_millis() - last < 60_000
    }

    pub async fn enforce(&self, group: RouteGroup, subject: &Subject, ip: IpAddr) -> Enforcement {
        let (deny, allow) = (&self.settings.deny, &self.settings.allow);
        if !(deny.is_empty() && allow.is_empty()) {
            let (subject_key, ip_key) = (subject.id.to_string(), format!("ip:{ip}"));
            if deny.contains(&subject_key) || deny.contains(&ip_key) {
                metrics::counter!("ratelimit_decisions_total", "policy" => "deny-list", "outcome" => "denied")
                    .increment(1);
                return Enforcement::Banned;
            }
            if allow.contains(&subject_key) || allow.contains(&ip_key) {
                return Enforcement::Unlimited;
            }
        }
        let Some(policy) = self.policies.get(&(group, subject.id.kind())) else {
            return Enforcement::Unlimited;
        };
        let subject_key = subject.id.to_string();
        let (limits, names) = match subject.client_limit {
            Some(per_minute) if subject.id.kind() == PrincipalKind::Client => (
                vec![Limit::SlidingWindowCounter { limit: per_minute, window: Duration::from_secs(60) }],
                vec![format!("{}-client-override", policy.setting.name)],
            ),
            _ => (policy.limits.clone(), policy.names.clone()),
        };
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let check = Check { subject: &subject_key, names: &name_refs, limits: &limits, cost: 1 };
        let name = policy.setting.name.clone();
        match self.limiter.check(&check).await {
            Ok(verdict) => self.conclude(policy, name, names, limits, verdict),
            Err(error) => {
                self.last_fallback_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                let mode = policy.setting.on_redis_error;
                let mode_label = match mode {
                    FailMode::FailOpen => "fail_open",
                    FailMode::FailClosed => "fail_closed",
                    FailMode::Local => "local",
                };
                metrics::counter!("ratelimit_fallbacks_total", "policy" => name.clone(), "mode" => mode_label)
                    .increment(1);
                tracing::warn!(policy = %name, mode = mode_label, %error, "rate limit fell back: Redis did not answer");
                match mode {
                    FailMode::FailOpen => Enforcement::Unlimited,
                    FailMode::FailClosed => Enforcement::Unavailable { policy: name },
                    FailMode::Local => {
                        let verdict = local_verdict(policy, &subject_key);
                        self.conclude(policy, name, policy.names.clone(), policy.limits.clone(), verdict)
                    }
                }
            }
        }
    }

    fn conclude(
        &self,
        policy: &Compiled,
        name: String,
        names: Vec<String>,
        limits: Vec<Limit>,
        verdict: Verdict,
    ) -> Enforcement {
        let outcome = match (verdict.allowed, policy.setting.shadow) {
            (true, _) => "allowed",
            (false, true) => "shadow_denied",
            (false, false) => "denied",
        };
        metrics::counter!("ratelimit_decisions_total", "policy" => name.clone(), "outcome" => outcome).increment(1);
        let applied = Applied { policy: name, names, limits, decisions: verdict.decisions };
        if policy.setting.shadow {
            if !verdict.allowed {
                tracing::info!(policy = %applied.policy, "shadow rate limit would have denied this request");
            }
            // A shadow policy is invisible to callers: no headers, no 429.
            return Enforcement::Unlimited;
        }
        if verdict.allowed {
            Enforcement::Allowed(applied)
        } else {
            Enforcement::Denied(applied)
        }
    }
}

/// Decides in this process with governor (GCRA), one limiter per limit.
fn local_verdict(policy: &Compiled, subject: &str) -> Verdict {
    let key = subject.to_owned();
    let decisions: Vec<Decision> = policy
        .local
        .iter()
        .zip(&policy.limits)
        .map(|(limiter, limit)| {
            if limiter.len() > 100_000 {
                limiter.retain_recent();
            }
            let allowed = limiter.check_key(&key).is_ok();
            Decision {
                allowed,
                limit: limit.max_cost(),
                remaining: 0,
                reset_after: Duration::from_secs(1),
                retry_after: (!allowed).then(|| Duration::from_secs(1)),
            }
        })
        .collect();
    Verdict { allowed: decisions.iter().all(|d| d.allowed), decisions }
}

/// The governor quota matching `limit`, with this instance's share of it.
fn local_quota(limit: &Limit, instances: u32) -> Quota {
    let instances = f64::from(instances.max(1));
    let share = |n: u64| NonZeroU32::new(((n as f64 / instances).floor() as u32).max(1)).unwrap_or(NonZeroU32::MIN);
    let per = |burst: NonZeroU32, period: Duration| {
        let replenish = period / burst.get();
        Quota::with_period(replenish.max(Duration::from_nanos(1))).map(|q| q.allow_burst(burst))
    };
    let quota = match *limit {
        Limit::FixedWindow { limit, window }
        | Limit::SlidingWindowLog { limit, window }
        | Limit::SlidingWindowCounter { limit, window } => per(share(limit), window),
        Limit::TokenBucket { capacity, refill_per_sec } => {
            let burst = share(capacity);
            Quota::with_period(Duration::from_secs_f64(instances / refill_per_sec)).map(|q| q.allow_burst(burst))
        }
        Limit::Gcra { rate, burst } => {
            let burst = share(burst + 1);
            Quota::with_period(Duration::from_secs_f64(instances / rate)).map(|q| q.allow_burst(burst))
        }
    };
    quota.unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn subject_keys_are_written_as_the_allow_and_deny_lists_name_them() {
        let id = Uuid::parse_str("7d3c0a52-1c1e-4b7e-9f0e-2b8f0c2d1e3f").unwrap();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(SubjectId::Ip(ip).to_string(), "ip:2001:db8::1");
        assert_eq!(
            SubjectId::Principal(PrincipalId::User(id)).to_string(),
            "user:7d3c0a52-1c1e-4b7e-9f0e-2b8f0c2d1e3f"
        );
        assert_eq!(
            SubjectId::Principal(PrincipalId::Client(id)).to_string(),
            "client:7d3c0a52-1c1e-4b7e-9f0e-2b8f0c2d1e3f"
        );
        assert_eq!(SubjectId::Principal(PrincipalId::Client(id)).kind(), PrincipalKind::Client);
    }
}
