//! Authentication as its own layer: before anything else looks at the
//! caller (the rate limiter, the handlers), [`AuthLayer`] resolves the
//! client's address and checks the request's credentials once, and leaves
//! both in the request's extensions. Extractors then read them:
//! [`Principal`] accepts any caller, [`CurrentUser`] a user's access token,
//! [`CurrentClient`] an API key, [`CurrentAdmin`] an admin.
//!
//! It also notes the outcome and the address for a layer outside it that
//! records who made each request (activity; see [`super::caller`]).
//!
//! Invariants: credentials are checked at most once per request; a request
//! without credentials, or with ones that are not valid, proceeds as
//! anonymous (a route that needs a caller answers 401); only a failure to
//! check them (Redis down) ends the request here, with that error. What a
//! credential means is the [`Authenticator`]'s business, which the
//! composition root provides: this module knows no capability.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::caller;
use super::client_ip::client_ip;
use super::error::ApiError;
use crate::domain::{AuthenticatedClient, AuthenticatedUser, ClientIp, ClientMeta, Principal, Rejection, Role};

/// A credential as the request carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `x-api-key: <key>`.
    ApiKey(&'a str),
    /// `Authorization: Bearer <token>`: an access token, or an API key sent
    /// as a bearer token (the authenticator tells them apart).
    Bearer(&'a str),
}

impl<'a> Credential<'a> {
    /// The request's credential, if it carries one.
    pub fn of(headers: &'a HeaderMap) -> Option<Self> {
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return Some(Credential::ApiKey(key.trim()));
        }
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|token| Credential::Bearer(token.trim()))
    }
}

/// Turns a credential into the principal it belongs to: `Ok(Err(..))` when
/// it is not accepted (expired, revoked, unknown), `Err` only when checking
/// it failed.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(
        &self,
        credential: Credential<'_>,
    ) -> impl Future<Output = Result<Result<Principal, Rejection>, ApiError>> + Send;
}

/// The outcome of authenticating this request: the principal, or `None`
/// for missing or refused credentials.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Option<Principal>);

/// Present when the request carried credentials that were refused, and why:
/// a 401 then says so in `WWW-Authenticate` (RFC 6750 `invalid_token`).
#[derive(Debug, Clone, Copy)]
pub struct Refused(pub Rejection);

/// Authenticates every request once; see the module docs.
pub struct AuthLayer<A> {
    // One reference count per request, whatever the layer holds.
    shared: Arc<Shared<A>>,
}

struct Shared<A> {
    authenticator: Arc<A>,
    trusted_proxies: Vec<ipnet::IpNet>,
}

impl<A> AuthLayer<A> {
    pub fn new(authenticator: Arc<A>, trusted_proxies: &[ipnet::IpNet]) -> Self {
        let shared = Shared { authenticator, trusted_proxies: trusted_proxies.to_vec() };
        Self { shared: Arc::new(shared) }
    }
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<A> std::fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer").field("trusted_proxies", &self.shared.trusted_proxies).finish_non_exhaustive()
    }
}

impl<S, A> Layer<S> for AuthLayer<A> {
    type Service = AuthService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, layer: self.clone() }
    }
}

/// The service [`AuthLayer`] wraps around the routes.
pub struct AuthService<S, A> {
    inner: S,
    layer: AuthLayer<A>,
}

impl<S: Clone, A> Clone for AuthService<S, A> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S, A> std::fmt::Debug for AuthService<S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S, A> Service<Request> for AuthService<S, A>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
    A: Authenticator,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The service that was polled ready serves this request; the clone
        // stays behind for the next one.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let shared = self.layer.shared.clone();
        Box::pin(async move {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
            let ip = client_ip(peer, request.headers(), &shared.trusted_proxies);
            let outcome = match Credential::of(request.headers()) {
                Some(credential) => shared.authenticator.authenticate(credential).await.map(Some),
                None => Ok(None),
            };
            let (principal, refused) = match outcome {
                Ok(Some(Ok(principal))) => (Some(principal), None),
                Ok(Some(Err(rejection))) => (None, Some(Refused(rejection))),
                Ok(None) => (None, None),
                Err(error) => {
                    caller::note(ip, None);
                    return Ok(error.into_response());
                }
            };
            caller::note(ip, principal.as_ref());
            let extensions = request.extensions_mut();
            extensions.insert(ClientIp(ip));
            extensions.insert(Authenticated(principal));
            if let Some(refused) = refused {
                extensions.insert(refused);
            }
            Ok(inner.call(request).await?.into_response())
        })
    }
}

fn unauthorized(parts: &Parts) -> ApiError {
    match parts.extensions.get::<Refused>() {
        Some(Refused(rejection)) => ApiError::InvalidToken(*rejection),
        None => ApiError::Unauthorized("a valid access token or API key is required".into()),
    }
}

fn authenticated(parts: &Parts) -> Result<Principal, ApiError> {
    match parts.extensions.get::<Authenticated>() {
        Some(Authenticated(outcome)) => outcome.clone().ok_or_else(|| unauthorized(parts)),
        // A route mounted outside the middleware stack: a wiring mistake.
        None => Err(ApiError::Internal(anyhow::anyhow!("the authentication layer did not run for this route"))),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        authenticated(parts)
    }
}

/// A signed-in user (Bearer access token).
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser(pub AuthenticatedUser);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match authenticated(parts)? {
            Principal::User(user) => Ok(CurrentUser(user)),
            Principal::Client(_) => Err(ApiError::Forbidden("this endpoint needs a user's access token".into())),
        }
    }
}

/// An API client (x-api-key, or a Bearer token carrying the key prefix).
#[derive(Debug, Clone)]
pub struct CurrentClient(pub AuthenticatedClient);

impl<S: Send + Sync> FromRequestParts<S> for CurrentClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match authenticated(parts)? {
            Principal::Client(client) => Ok(CurrentClient(client)),
            Principal::User(_) => Err(ApiError::Forbidden("this endpoint needs an API key".into())),
        }
    }
}

/// A signed-in admin.
#[derive(Debug, Clone, Copy)]
pub struct CurrentAdmin(pub AuthenticatedUser);

impl<S: Send + Sync> FromRequestParts<S> for CurrentAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role == Role::Admin {
            Ok(CurrentAdmin(user))
        } else {
            Err(ApiError::Forbidden("this endpoint is for admins".into()))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = match parts.extensions.get::<ClientIp>() {
            Some(ClientIp(ip)) => ip.to_string(),
            None => "unknown".into(),
        };
        let user_agent =
            parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().chars().take(256).collect();
        Ok(ClientMeta { ip, user_agent })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn credentials_are_read_from_the_api_key_header_first_then_bearer() {
        let mut headers = HeaderMap::new();
        assert_eq!(Credential::of(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer  abc "));
        assert_eq!(Credential::of(&headers), Some(Credential::Bearer("abc")));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(Credential::of(&headers), None);
        headers.insert("x-api-key", HeaderValue::from_static(" sy_key "));
        assert_eq!(Credential::of(&headers), Some(Credential::ApiKey("sy_key")));
    }
}
