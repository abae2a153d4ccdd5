//! The HTTP side of rate limiting: the policy decision for the caller the
//! authentication layer resolved, and the standard headers.
//!
//! Headers follow the IETF httpapi RateLimit draft (`RateLimit-Policy`,
//! `RateLimit`) plus the widely used `RateLimit-Limit` / `-Remaining` /
//! `-Reset` trio, on every limited response; `Retry-After` on 429.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchyard_kit::{Decision, Limit};

use super::enforcement::{Applied, Enforcement, RateLimits, Subject, SubjectId};
use super::policy::route_group;
use crate::domain::{ClientIp, Principal, PrincipalId};
use crate::http::auth::Authenticated;
use crate::http::ApiError;

/// Decides the request's policy and sets the headers. Reads the caller
/// the authentication layer resolved; a request it did not see is limited
/// as anonymous from an unknown address.
pub async fn limit(State(limits): State<Arc<RateLimits>>, request: Request, next: Next) -> Response {
    let Some(group) = route_group(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let ip = request.extensions().get::<ClientIp>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ClientIp(ip)| *ip);
    let subject = match request.extensions().get::<Authenticated>().and_then(|a| a.0.as_ref()) {
        Some(Principal::User(user)) => {
            Subject { id: SubjectId::Principal(PrincipalId::User(user.user_id)), client_limit: None }
        }
        Some(Principal::Client(client)) => Subject {
            id: SubjectId::Principal(PrincipalId::Client(client.client_id)),
            client_limit: client.rate_limit.and_then(|n| u64::try_from(n).ok()),
        },
        None => Subject { id: SubjectId::Ip(ip), client_limit: None },
    };
    match limits.enforce(group, &subject, ip).await {
        Enforcement::Unlimited => next.run(request).await,
        Enforcement::Allowed(applied) => {
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), &applied);
            response
        }
        Enforcement::Denied(applied) => {
            // Retry-After, RateLimit-Reset and the binding limit's `t` are one number.
            let retry_after = std::time::Duration::from_secs(applied.binding().map_or(1, reset_secs));
            let detail = format!("rate limit exceeded (policy {})", applied.policy);
            let mut response = ApiError::TooManyRequests { detail, retry_after }.into_response();
            set_headers(response.headers_mut(), &applied);
            response
        }
        Enforcement::Banned => ApiError::Forbidden("this caller is blocked".into()).into_response(),
        Enforcement::Unavailable { policy } => {
            ApiError::Unavailable(format!("rate limiting is unavailable (policy {policy}); try again later"))
                .into_response()
        }
    }
}

/// The window a limit is measured over, in whole seconds (at least 1).
fn window_secs(limit: &Limit) -> u64 {
    let secs = match *limit {
        Limit::FixedWindow { window, .. }
        | Limit::SlidingWindowLog { window, .. }
        | Limit::SlidingWindowCounter { window, .. } => window.as_secs_f64(),
        Limit::TokenBucket { capacity, refill_per_sec } => capacity as f64 / refill_per_sec,
        Limit::Gcra { rate, burst } => (burst + 1) as f64 / rate,
    };
    (secs.ceil() as u64).max(1)
}

fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// The seconds a decision reports as its reset: until the limit is whole
/// again when allowed; when denied, until this request could pass (at least
/// 1), which is also the response's `Retry-After`.
fn reset_secs(decision: &Decision) -> u64 {
    if decision.allowed {
        ceil_secs(decision.reset_after)
    } else {
        ceil_secs(decision.retry_after.unwrap_or(decision.reset_after)).max(1)
    }
}

pub fn set_headers(headers: &mut HeaderMap, applied: &Applied) {
    let policy = applied
        .names
        .iter()
        .zip(&applied.limits)
        .map(|(name, limit)| format!("\"{name}\";q={};w={}", limit.max_cost(), window_secs(limit)))
        .collect::<Vec<_>>()
        .join(", ");
    let state = applied
        .names
        .iter()
        .zip(&applied.decisions)
        .map(|(name, d)| format!("\"{name}\";r={};t={}", d.remaining, reset_secs(d)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("ratelimit-policy", policy);
    put("ratelimit", state);
    if let Some(binding) = applied.binding() {
        put("ratelimit-limit", binding.limit.to_string());
        put("ratelimit-remaining", binding.remaining.to_string());
        put("ratelimit-reset", reset_secs(binding).to_string());
    }
}
