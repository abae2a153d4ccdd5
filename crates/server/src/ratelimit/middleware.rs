//! The HTTP side of rate limiting: who is calling (client IP, principal),
//! the policy decision, and the standard headers.
//!
//! Headers follow the IETF httpapi RateLimit draft (`RateLimit-Policy`,
//! `RateLimit`) plus the widely used `RateLimit-Limit` / `-Remaining` /
//! `-Reset` trio, on every limited response; `Retry-After` on 429.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchyard_kit::Limit;

use super::policy::route_group;
use super::service::{Applied, Enforcement, Subject, SubjectId};
use crate::http::ApiError;
use crate::identity::domain::PrincipalId;
use crate::identity::extract::{authenticate_headers, Authenticated};
use crate::identity::Principal;
use crate::state::AppState;

/// The caller's address, as far as it can be trusted.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The socket peer, or the first untrusted hop of X-Forwarded-For when the
/// peer is a trusted proxy (never by default). Walking from the right skips
/// every trusted proxy, so a client cannot spoof its address by sending its
/// own X-Forwarded-For.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer)
}

pub async fn limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = client_ip(peer.ip(), request.headers(), state.rate_limits.trusted_proxies());
    request.extensions_mut().insert(ClientIp(ip));
    let Some(group) = route_group(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    // Authenticate once here; the handler's extractor reuses the result.
    let principal = match authenticate_headers(request.headers(), &state).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let subject = match &principal {
        Some(Principal::User(user)) => {
            Subject { id: SubjectId::Principal(PrincipalId::User(user.user_id)), client_limit: None }
        }
        Some(Principal::Client(client)) => Subject {
            id: SubjectId::Principal(PrincipalId::Client(client.client_id)),
            client_limit: client.rate_limit.and_then(|n| u64::try_from(n).ok()),
        },
        None => Subject { id: SubjectId::Ip(ip), client_limit: None },
    };
    request.extensions_mut().insert(Authenticated(principal));
    match state.rate_limits.enforce(group, &subject, ip).await {
        Enforcement::Unlimited => next.run(request).await,
        Enforcement::Allowed(applied) => {
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), &applied);
            response
        }
        Enforcement::Denied(applied) => {
            let retry_after = applied.binding().and_then(|d| d.retry_after.or(Some(d.reset_after))).unwrap_or_default();
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
        .map(|(name, d)| format!("\"{name}\";r={};t={}", d.remaining, ceil_secs(d.reset_after)))
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
        put("ratelimit-reset", ceil_secs(binding.reset_after).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"));
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[]), peer, "untrusted by default");
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(peer, &headers, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(outsider, &headers, &trusted), outsider);
    }
}
