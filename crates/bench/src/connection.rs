//! The one HTTP/1.1 keep-alive connection each engine worker owns.
//!
//! The load generator shares the machine's cores with the server and Redis
//! during a benchmark, so every microsecond of CPU it spends per request is
//! taken from the system it measures and distorts the figures. A pooled
//! general-purpose client pays, per request, for URL parsing, a pool lock, a
//! timeout timer registration and header map building. A worker is
//! closed-loop (one request in flight at a time), so it needs none of that:
//! it owns one connection made with hyper's low-level
//! [`hyper::client::conn::http1`] API over a `TcpStream` with `TCP_NODELAY`,
//! and sends the prebuilt requests of its scenario on it.
//!
//! The connection is opened lazily by the first request and after any
//! failure (a failed request drops it, so the next one reconnects). A request
//! that finds the connection closed by the server before it was sent (e.g.
//! after a `connection: close` answer or an idle timeout) is sent on a new
//! connection instead of failing.
//!
//! The per-request timeout (connecting included) is one [`Sleep`] per
//! connection, moved forward before each request: while it has not fired,
//! moving a registered tokio timer later is a lock-free atomic update, so the
//! success path registers no timer per request.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The body type of every benchmark request.
pub type Body = Full<Bytes>;

/// Where the service is, as the hot path needs it: derived once from the
/// base URL and shared by every worker.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to (resolved at each connect).
    addr: String,
    /// Value of the `host` header of every request.
    host: HeaderValue,
    /// Path of the base URL without a trailing slash (usually empty),
    /// prepended to every scenario path.
    path_prefix: String,
}

impl Target {
    /// Parses an `http://host[:port][/prefix]` base URL.
    pub fn parse(base_url: &str) -> Result<Self> {
        let uri: Uri = base_url.parse().with_context(|| format!("invalid base URL `{base_url}`"))?;
        if uri.scheme_str() != Some("http") {
            bail!("the base URL must be an http:// URL, got `{base_url}`");
        }
        let Some(authority) = uri.authority() else {
            bail!("the base URL has no host, got `{base_url}`");
        };
        if authority.as_str().contains('@') {
            bail!("the base URL must not contain credentials, got `{base_url}`");
        }
        let host_name = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        // As a browser would: the default port is left out of `host`.
        let host = if port == 80 { host_name.to_owned() } else { format!("{host_name}:{port}") };
        Ok(Self {
            addr: format!("{host_name}:{port}"),
            host: HeaderValue::from_str(&host).with_context(|| format!("invalid host in `{base_url}`"))?,
            path_prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The `host` header value for requests to this target.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// `path` (starting with `/`, query allowed) as the origin-form URI of
    /// a request to this target.
    pub fn uri(&self, path: &str) -> Result<Uri> {
        format!("{}{path}", self.path_prefix).parse().with_context(|| format!("invalid request path `{path}`"))
    }
}

/// Why a request on a [`Connection`] got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Opening the TCP connection (or setting it up) failed.
    #[error("connecting to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// No TCP connection within the timeout.
    #[error("no connection to {addr} within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    /// No complete answer within the timeout.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The HTTP exchange failed before the response head arrived
    /// (handshake, sending, connection closed, malformed response).
    #[error("HTTP request failed")]
    Request(#[source] hyper::Error),
    /// The connection broke while the response body was read.
    #[error("reading the response body")]
    Body(#[source] hyper::Error),
}

/// One worker's keep-alive connection to the [`Target`].
pub struct Connection {
    target: Arc<Target>,
    /// `None` until the first request and after a failure.
    sender: Option<SendRequest<Body>>,
    timeout: Duration,
    /// The per-request timeout, moved forward before each request.
    timer: Pin<Box<Sleep>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.target.addr)
            .field("connected", &self.sender.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a request was doing when its timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Exchanging,
}

impl Connection {
    /// A connection to `target` whose requests (connecting included) time
    /// out after `timeout`. Connects on the first [`Connection::send`].
    ///
    /// Must be called within a tokio runtime (it creates the timer).
    pub fn new(target: Arc<Target>, timeout: Duration) -> Self {
        Self { target, sender: None, timeout, timer: Box::pin(tokio::time::sleep(timeout)) }
    }

    /// Sends `request` (origin-form URI, `host` header set), reads the
    /// response body to the end so the connection can be reused, and
    /// returns the response status.
    ///
    /// On any error the connection is dropped and the next request opens a
    /// new one; the error is a [`ConnectionError`].
    pub async fn send(&mut self, request: Request<Body>) -> Result<StatusCode> {
        Ok(self.exchange(request, false).await?.0)
    }

    /// [`Connection::send`], returning the response body too (for
    /// scenarios that act on what the server answered, such as acking the
    /// events a read returned).
    pub async fn fetch(&mut self, request: Request<Body>) -> Result<(StatusCode, Bytes)> {
        self.exchange(request, true).await
    }

    async fn exchange(&mut self, request: Request<Body>, keep_body: bool) -> Result<(StatusCode, Bytes)> {
        let Self { target, sender, timeout, timer } = self;
        timer.as_mut().reset(Instant::now() + *timeout);
        // The sender is moved into the exchange and only put back when it
        // succeeds: an error, a timeout or a cancelled `send` drops it.
        let reusable = sender.take();
        let mut phase = Phase::Exchanging;
        let result = tokio::select! {
            biased;
            result = exchange(target, reusable, request, &mut phase, keep_body) => result,
            () = timer.as_mut() => Err(match phase {
                Phase::Connecting => ConnectionError::ConnectTimeout { addr: target.addr.clone(), timeout: *timeout },
                Phase::Exchanging => ConnectionError::Timeout(*timeout),
            }),
        };
        let (ready, status, body) = result?;
        *sender = Some(ready);
        Ok((status, body))
    }
}

/// Sends `request` on `reusable` (or on a new connection if there is none,
/// or if it was closed before the request could be sent), reads the whole
/// response and returns the sender for the next request with the status
/// and, when `keep_body`, the body (otherwise empty).
async fn exchange(
    target: &Target,
    mut reusable: Option<SendRequest<Body>>,
    mut request: Request<Body>,
    phase: &mut Phase,
    keep_body: bool,
) -> Result<(SendRequest<Body>, StatusCode, Bytes), ConnectionError> {
    let (sender, response) = loop {
        let (mut sender, fresh) = match reusable.take() {
            Some(sender) if !sender.is_closed() => (sender, false),
            _ => {
                *phase = Phase::Connecting;
                let sender = connect(&target.addr).await?;
                *phase = Phase::Exchanging;
                (sender, true)
            }
        };
        if let Err(error) = sender.ready().await {
            // A reused connection the server closed in the meantime: the
            // request was not sent, so it goes on a new connection.
            if fresh {
                return Err(ConnectionError::Request(error));
            }
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => break (sender, response),
            Err(mut error) => match error.take_message() {
                // Not sent (the connection closed first): same as above.
                Some(unsent) if !fresh => request = unsent,
                _ => return Err(ConnectionError::Request(error.into_error())),
            },
        }
    };
    let status = response.status();
    let mut body = response.into_body();
    let mut kept = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ConnectionError::Body)?;
        if let (true, Some(data)) = (keep_body, frame.data_ref()) {
            kept.extend_from_slice(data);
        }
    }
    Ok((sender, status, kept.freeze()))
}

/// Opens a TCP connection with `TCP_NODELAY` to `addr`, does the HTTP/1.1
/// handshake and spawns the task that drives the connection.
async fn connect(addr: &str) -> Result<SendRequest<Body>, ConnectionError> {
    let connect_error = |source| ConnectionError::Connect { addr: addr.to_owned(), source };
    let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
    stream.set_nodelay(true).map_err(connect_error)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(ConnectionError::Request)?;
    // Ends when the connection closes: by the server, on an error, or once
    // the `SendRequest` is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncWriteExt;

    use crate::test_server::{read_request_head, serve_connections};

    /// What a test server saw.
    #[derive(Debug, Default)]
    struct Seen {
        connections: AtomicU64,
        requests: AtomicU64,
    }

    /// Serves `response` to every request on a free loopback port, and
    /// closes each connection shortly after `answers_per_connection`
    /// answers (without telling the client with `connection: close`).
    async fn serve(response: Vec<u8>, answers_per_connection: usize, seen: Arc<Seen>) -> Arc<Target> {
        let response = Arc::new(response);
        let addr = serve_connections(move |mut socket| {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let (seen, response) = (Arc::clone(&seen), Arc::clone(&response));
            async move {
                let mut pending = Vec::new();
                for _ in 0..answers_per_connection {
                    if read_request_head(&mut socket, &mut pending).await.is_none() {
                        return;
                    }
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    if socket.write_all(&response).await.is_err() {
                        return;
                    }
                }
                // Late enough for the client to have finished the
                // exchange, so it finds the connection closed while idle.
                tokio::time::sleep(Duration::from_millis(10)).await;
                let _ = socket.shutdown().await;
            }
        })
        .await;
        Arc::new(Target::parse(&format!("http://{addr}")).unwrap())
    }

    fn response_with_body(len: usize) -> Vec<u8> {
        let mut response = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n").into_bytes();
        response.resize(response.len() + len, b'x');
        response
    }

    fn get(target: &Target) -> Request<Body> {
        Request::get(target.uri("/health").unwrap())
            .header(http::header::HOST, target.host())
            .body(Body::default())
            .unwrap()
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let seen = Arc::new(Seen::default());
        let target = serve(response_with_body(2), usize::MAX, Arc::clone(&seen)).await;
        let mut conn = Connection::new(Arc::clone(&target), Duration::from_secs(5));
        for _ in 0..200 {
            assert_eq!(conn.send(get(&target)).await.unwrap(), StatusCode::OK);
        }
        assert_eq!(seen.requests.load(Ordering::SeqCst), 200);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn fetch_returns_the_body_and_send_drops_it() {
        let seen = Arc::new(Seen::default());
        let target = serve(response_with_body(3), usize::MAX, Arc::clone(&seen)).await;
        let mut conn = Connection::new(Arc::clone(&target), Duration::from_secs(5));
        let (status, body) = conn.fetch(get(&target)).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"xxx"[..]));
        assert_eq!(conn.send(get(&target)).await.unwrap(), StatusCode::OK);
        assert_eq!(conn.fetch(get(&target)).await.unwrap().1, Bytes::from_static(b"xxx"));
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn large_bodies_are_read_to_the_end() {
        let seen = Arc::new(Seen::default());
        let target = serve(response_with_body(1 << 20), usize::MAX, Arc::clone(&seen)).await;
        let mut conn = Connection::new(Arc::clone(&target), Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(conn.send(get(&target)).await.unwrap(), StatusCode::OK);
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn idle_connection_closed_by_the_server_is_replaced() {
        let seen = Arc::new(Seen::default());
        let target = serve(response_with_body(2), 1, Arc::clone(&seen)).await;
        let mut conn = Connection::new(Arc::clone(&target), Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(conn.send(get(&target)).await.unwrap(), StatusCode::OK);
            // Outlasts the server's delay, so its close arrives first.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    }
}
