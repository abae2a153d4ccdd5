//! [`PrebuiltRequest`]: a scenario's request built once, so that sending it
//! costs the load generator (which shares the cores with the server it
//! measures) as little CPU as possible.
//!
//! Everything constant is parsed and validated once: the method, the path
//! as an origin-form `http::Uri` and the header names and values (a
//! constant body is kept by the scenario as `Bytes`). Per request,
//! [`PrebuiltRequest::build`] only clones them (reference counts, plus the
//! header map's two small allocations) into a new `http::Request`.

use anyhow::Result;
use bytes::Bytes;
use http::header::{ACCEPT, HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

use super::Context;
use crate::connection::Body;

/// `user-agent` of every measured request.
const BENCH_USER_AGENT: &str = concat!("switchyard-bench/", env!("CARGO_PKG_VERSION"));

/// A request template: see the module documentation.
#[derive(Debug, Clone)]
pub struct PrebuiltRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl PrebuiltRequest {
    /// A `method` request to `path` (starting with `/`, resolved against the
    /// base URL's path) with the headers every request
    /// carries: `host` (hyper's connection-level client does not add it),
    /// and the `user-agent` and `accept: */*` the setup client also sends.
    pub fn new(ctx: &Context, method: Method, path: &str) -> Result<Self> {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(HOST, ctx.target.host().clone());
        headers.insert(USER_AGENT, HeaderValue::from_static(BENCH_USER_AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        Ok(Self { method, uri: ctx.target.uri(path)?, headers })
    }

    /// Sets header `name` to `value` (replacing any previous value).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.set_header(name, value);
        self
    }

    /// Sets header `name` to `value` in place, e.g. once the setup has
    /// created the API key the requests carry.
    pub fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }

    /// The request, with an empty body.
    pub fn build(&self) -> Request<Body> {
        self.build_with_body(Bytes::new())
    }

    /// The request, with `body` (cloning a prebuilt `Bytes` is a reference
    /// count).
    pub fn build_with_body(&self, body: Bytes) -> Request<Body> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}
