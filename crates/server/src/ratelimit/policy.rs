//! Which rate-limit policies a request falls under: its route group, from
//! its method and path. The policies themselves (`RouteGroup`,
//! `PolicySetting` and the built-in defaults) are configuration and live
//! in `config`; this is the enforcement side.
//!
//! Invariant: routes outside /v1 (health, metrics, documentation) have no
//! group and are never limited.

use axum::http::Method;

use crate::config::RouteGroup;

/// The group of a request; `None` for unlimited routes (health, metrics,
/// documentation).
pub fn route_group(method: &Method, path: &str) -> Option<RouteGroup> {
    if method == Method::POST && path == "/v1/actions" {
        return Some(RouteGroup::Actions);
    }
    group_of_path(path)
}

fn group_of_path(path: &str) -> Option<RouteGroup> {
    const AUTH: &[&str] =
        &["/v1/auth/signup", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/otp/", "/v1/auth/password/"];
    if AUTH.iter().any(|p| path.starts_with(p)) {
        Some(RouteGroup::Auth)
    } else if path.starts_with("/v1/ratelimit/") {
        Some(RouteGroup::Service)
    } else if path.starts_with("/v1/") {
        Some(RouteGroup::Api)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_groups() {
        assert_eq!(group_of_path("/v1/auth/login"), Some(RouteGroup::Auth));
        assert_eq!(group_of_path("/v1/auth/otp/verify"), Some(RouteGroup::Auth));
        assert_eq!(group_of_path("/v1/auth/sessions"), Some(RouteGroup::Api));
        assert_eq!(group_of_path("/v1/locks/x"), Some(RouteGroup::Api));
        assert_eq!(group_of_path("/v1/ratelimit/check:batch"), Some(RouteGroup::Service));
        assert_eq!(group_of_path("/health"), None);
        assert_eq!(route_group(&Method::POST, "/v1/actions"), Some(RouteGroup::Actions));
        assert_eq!(route_group(&Method::GET, "/v1/actions"), Some(RouteGroup::Api));
        assert_eq!(group_of_path("/api-docs/openapi.json"), None);
    }
}
