//! [`KeyedJsonPost`]: the shape shared by scenarios that POST a JSON body
//! of their own per worker with an API key and expect one status (the
//! rate-limit check, event publishing).

use anyhow::Result;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;

use super::account::Account;
use super::{Context, Outcome, PrebuiltRequest};
use crate::connection::Connection;

/// `POST path` with `x-api-key` (created in [`KeyedJsonPost::setup`]) and
/// worker `i`'s prebuilt body.
#[derive(Debug)]
pub struct KeyedJsonPost {
    request: PrebuiltRequest,
    /// The body of each worker, indexed by worker.
    bodies: Vec<Bytes>,
    expect: StatusCode,
}

impl KeyedJsonPost {
    pub fn new(ctx: &Context, path: &str, body_of: impl Fn(usize) -> Value, expect: StatusCode) -> Result<Self> {
        let bodies = (0..ctx.concurrency).map(|worker| Bytes::from(body_of(worker).to_string())).collect();
        let request = PrebuiltRequest::new(ctx, Method::POST, path)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self { request, bodies, expect })
    }

    /// Creates the user, the API client and its key the requests carry.
    pub async fn setup(&mut self, ctx: &Context) -> Result<()> {
        let key = Account::create(ctx).await?.api_key(ctx).await?;
        self.request.set_header(HeaderName::from_static("x-api-key"), HeaderValue::try_from(key)?);
        Ok(())
    }

    pub async fn send(&self, conn: &mut Connection, worker: usize) -> Result<Outcome> {
        let body = self.bodies[worker % self.bodies.len()].clone();
        let status = conn.send(self.request.build_with_body(body)).await?;
        Ok(Outcome::expect_status(status, self.expect))
    }
}
