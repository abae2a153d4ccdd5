//! The recording layer: every request under `/v1` becomes one
//! [`ActivityRecord`], handed to the recorder through a bounded channel
//! when its response is ready.
//!
//! It sits inside the compression layer and outside the timeout and
//! authentication layers (`app::routes`), so it sees the final status
//! (timeouts, refusals by the auth layer included) and uncompressed
//! bodies. The caller and the client address are what the authentication
//! layer noted for it (`http::caller`).
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
//! is recorded with its caller when authentication had finished, else
//! without.
//!
//! Invariant: the request path does no I/O here — one `try_send`; a full
//! channel drops the record and counts it, it never waits.

use std::borrow::Cow;
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
use uuid::{NoContext, Timestamp, Uuid};

use super::record::USER_AGENT_MAX_CHARS;
use super::recorder::ActivitySink;
use super::{ActivityRecord, PrincipalKind};
use crate::domain::Principal;
use crate::http::caller::{self, Caller};
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

const STANDARD_METHODS: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];

/// A method's text, borrowed for the standard ones.
fn method_text(method: &Method) -> Cow<'static, str> {
    let text = method.as_str();
    STANDARD_METHODS
        .iter()
        .find(|standard| **standard == text)
        .map_or_else(|| Cow::Owned(text.to_owned()), |standard| Cow::Borrowed(*standard))
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
    method: Cow<'static, str>,
    route: Option<MatchedPath>,
    user_agent: Option<HeaderValue>,
    request_bytes: u64,
}

/// A UUIDv7 of the arrival time: one clock read for both, and no shared
/// counter (74 random bits keep ids of the same millisecond apart; their
/// order within it does not matter, pages sort by `occurred_at` first).
fn id_at(at: DateTime<Utc>) -> Uuid {
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(NoContext, secs, at.timestamp_subsec_nanos()))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A header's text (invalid UTF-8 replaced); borrowed when it is visible
/// ASCII, as nearly every header is.
fn text(value: &HeaderValue) -> Cow<'_, str> {
    value.to_str().map_or_else(|_| String::from_utf8_lossy(value.as_bytes()), Cow::Borrowed)
}

/// The first `max` characters of `text` (no character is counted when
/// its bytes are already few enough).
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    text.char_indices().nth(max).map_or(text, |(end, _)| &text[..end])
}

impl Arrival {
    fn of<B: HttpBody>(request: &Request<B>, sink: &ActivitySink) -> Self {
        let headers = request.headers();
        let occurred_at = Utc::now();
        Self {
            sink: sink.clone(),
            id: id_at(occurred_at),
            occurred_at,
            started: Instant::now(),
            request_id: headers.get(&REQUEST_ID).cloned(),
            method: method_text(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
            user_agent: headers.get(USER_AGENT).cloned(),
            request_bytes: content_length(headers).or_else(|| request.body().size_hint().exact()).unwrap_or(0),
        }
    }

    /// Hands the request's record to the recorder.
    fn send<B: HttpBody>(self, response: &Response<B>, caller: Option<Caller>) {
        let (principal, client_ip) = caller.map_or((None, None), |c| (c.principal, Some(c.ip)));
        let principal = principal.as_ref();
        let (principal_kind, user_id, client_id) = match principal {
            None => (PrincipalKind::Anonymous, None, None),
            Some(Principal::User(user)) => (PrincipalKind::User, Some(user.user_id), None),
            Some(Principal::Client(client)) => (PrincipalKind::Client, None, Some(client.client_id)),
        };
        let account_id = principal.map(|p| p.account().uuid());
        let record = ActivityRecord {
            id: self.id,
            occurred_at: self.occurred_at,
            request_id: self.request_id.as_ref().map(|id| text(id).into_owned()).unwrap_or_default(),
            principal_kind,
            user_id,
            client_id,
            account_id,
            method: self.method,
            route: self.route.as_ref().map_or(Cow::Borrowed("unmatched"), |path| Cow::Owned(path.as_str().to_owned())),
            status: response.status().as_u16(),
            latency_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_bytes: self.request_bytes,
            response_bytes: response
                .body()
                .size_hint()
                .exact()
                .or_else(|| content_length(response.headers()))
                .unwrap_or(0),
            client_ip,
            user_agent: self.user_agent.as_ref().map(|ua| truncated(&text(ua), USER_AGENT_MAX_CHARS).to_owned()),
        };
        self.sink.send(record);
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
        RecordingFuture { inner: caller::observe(self.inner.call(request)), arrival }
    }
}

pin_project! {
    /// The response future of [`Recording`]: hands the record over once
    /// the response is ready.
    pub struct RecordingFuture<F> {
        #[pin]
        inner: caller::Observed<F>,
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
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll(cx));
        if let (Ok(response), Some(arrival)) = (&result, this.arrival.take()) {
            arrival.send(response, caller::noted(this.inner));
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_truncated_by_characters() {
        assert_eq!(truncated("héllo", 2), "hé");
        assert_eq!(truncated("héllo", 5), "héllo");
        assert_eq!(truncated("", 3), "");
        assert_eq!(truncated("ééé", 4), "ééé", "6 bytes, 3 characters");
        assert_eq!(text(&HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap()), "café \u{fffd}");
        assert_eq!(text(&HeaderValue::from_static("probe/1.0")), "probe/1.0");
    }

    #[test]
    fn ids_are_version_7_of_the_arrival_time() {
        let at = Utc::now();
        let id = id_at(at);
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, u64::try_from(at.timestamp_millis()).unwrap());
        assert_ne!(id_at(at), id, "ids of the same instant differ");
    }

    #[test]
    fn standard_methods_are_borrowed_text() {
        for method in [Method::GET, Method::POST, Method::DELETE, Method::PATCH] {
            assert!(matches!(method_text(&method), Cow::Borrowed(text) if text == method.as_str()));
        }
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_text(&custom), "PURGE");
    }

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
