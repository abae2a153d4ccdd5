//! The recording layer: every request under `/v1` becomes one
//! [`ActivityRecord`], handed to the recorder through a bounded channel
//! when its response is ready.
//!
//! It sits inside the compression layer and outside the timeout and
//! authentication layers (`app::routes`), so it sees the final status
//! (timeouts, refusals by the auth layer included) and uncompressed
//! bodies. The caller and the client address come from the response's
//! extensions, where the authentication layer copies them.
//!
//! What is counted:
//! - `latency_us`: from this layer receiving the request to the response
//!   head being ready (the body's transfer is not included);
//! - `request_bytes`: the request's `Content-Length` (or its body's exact
//!   size); 0 for a chunked body of unknown length;
//! - `response_bytes`: the uncompressed body's exact size (every JSON
//!   answer), else its `Content-Length`; 0 for streamed bodies of unknown
//!   length (the live event streams), which are not counted.
//!
//! Responses made outside this layer (a panic's 500) and requests whose
//! client goes away before the answer are not recorded; a timeout's 408
//! is recorded without its caller (the auth layer's work was cancelled).
//!
//! Invariant: the request path does no I/O here — one `try_send`; a full
//! channel drops the record and counts it, it never waits.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::MatchedPath;
use axum::http::header::{CONTENT_LENGTH, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response};
use chrono::{DateTime, Utc};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use uuid::Uuid;

use super::record::USER_AGENT_MAX_CHARS;
use super::recorder::ActivitySink;
use super::{ActivityRecord, PrincipalKind};
use crate::domain::{ClientIp, Principal};
use crate::http::auth::Authenticated;
use crate::http::REQUEST_ID;

/// Records requests under `/v1`; see the module docs.
#[derive(Clone, Debug)]
pub struct RecordingLayer {
    sink: ActivitySink,
}

impl RecordingLayer {
    pub fn new(sink: ActivitySink) -> Self {
        Self { sink }
    }
}

impl<S> Layer<S> for RecordingLayer {
    type Service = Recording<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recording { inner, sink: self.sink.clone() }
    }
}

/// See [`RecordingLayer`].
#[derive(Clone, Debug)]
pub struct Recording<S> {
    inner: S,
    sink: ActivitySink,
}

/// Whether a path is recorded: the API, not health checks, metrics or docs.
fn is_recorded(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// What is known of a request when it arrives.
#[derive(Debug)]
struct Arrival {
    sink: ActivitySink,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    started: Instant,
    request_id: Option<HeaderValue>,
    method: Method,
    route: Option<MatchedPath>,
    user_agent: Option<HeaderValue>,
    request_bytes: u64,
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

impl Arrival {
    fn of<B: HttpBody>(request: &Request<B>, sink: &ActivitySink) -> Self {
        let headers = request.headers();
        Self {
            sink: sink.clone(),
            id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            started: Instant::now(),
            request_id: headers.get(&REQUEST_ID).cloned(),
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            user_agent: headers.get(USER_AGENT).cloned(),
            request_bytes: content_length(headers).or_else(|| request.body().size_hint().exact()).unwrap_or(0),
        }
    }

    fn record<B: HttpBody>(&self, response: &Response<B>) -> ActivityRecord {
        let extensions = response.extensions();
        let principal = extensions.get::<Authenticated>().and_then(|Authenticated(p)| p.as_ref());
        let (principal_kind, user_id, client_id) = match principal {
            None => (PrincipalKind::Anonymous, None, None),
            Some(Principal::User(user)) => (PrincipalKind::User, Some(user.user_id), None),
            Some(Principal::Client(client)) => (PrincipalKind::Client, None, Some(client.client_id)),
        };
        let account_id = principal.map(|p| p.account().uuid());
        ActivityRecord {
            id: self.id,
            occurred_at: self.occurred_at,
            request_id: self.request_id.as_ref().map(text).unwrap_or_default(),
            principal_kind,
            user_id,
            client_id,
            account_id,
            method: self.method.as_str().to_owned(),
            route: self.route.as_ref().map_or("unmatched", MatchedPath::as_str).to_owned(),
            status: response.status().as_u16(),
            latency_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_bytes: self.request_bytes,
            response_bytes: response
                .body()
                .size_hint()
                .exact()
                .or_else(|| content_length(response.headers()))
                .unwrap_or(0),
            client_ip: extensions.get::<ClientIp>().map(|ClientIp(ip)| ip.to_string()),
            user_agent: self.user_agent.as_ref().map(|ua| text(ua).chars().take(USER_AGENT_MAX_CHARS).collect()),
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for Recording<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: HttpBody,
    ResBody: HttpBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RecordingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let arrival = is_recorded(request.uri().path()).then(|| Arrival::of(&request, &self.sink));
        RecordingFuture { inner: self.inner.call(request), arrival }
    }
}

pin_project! {
    /// The response future of [`Recording`]: hands the record over once
    /// the response is ready.
    pub struct RecordingFuture<F> {
        #[pin]
        inner: F,
        arrival: Option<Arrival>,
    }
}

impl<F, ResBody, E> Future for RecordingFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(arrival)) = (&result, this.arrival.take()) {
            arrival.sink.send(arrival.record(response));
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_is_recorded() {
        for path in ["/v1", "/v1/activity", "/v1/notifications:read-all"] {
            assert!(is_recorded(path), "{path}");
        }
        for path in ["/", "/health", "/metrics", "/v10/x", "/docs/openapi.json"] {
            assert!(!is_recorded(path), "{path}");
        }
    }
}
