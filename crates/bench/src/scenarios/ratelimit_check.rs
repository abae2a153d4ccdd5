//! `ratelimit_check`: `POST /v1/ratelimit/check` with an API key, one
//! counter per worker (token bucket, large enough never to deny), expecting
//! 200: API-key authentication (cached in process) plus one EVALSHA.

use anyhow::Result;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::json;

use super::account::Account;
use super::{Context, Outcome, PrebuiltRequest, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct RateLimitCheck {
    /// Gets its `x-api-key` header in [`Scenario::setup`].
    request: PrebuiltRequest,
    /// The body of each worker, indexed by worker.
    bodies: Vec<Bytes>,
}

impl Scenario for RateLimitCheck {
    const NAME: &'static str = "ratelimit_check";
    const DESCRIPTION: &'static str = "POST /v1/ratelimit/check with an API key, one key per worker, expect 200";

    fn new(ctx: &Context) -> Result<Self> {
        let bodies = (0..ctx.concurrency)
            .map(|worker| {
                Bytes::from(
                    json!({"key": format!("bench-{worker}"), "algorithm": "token_bucket",
                           "capacity": 1_000_000_000u64, "refill_per_sec": 1_000_000.0})
                    .to_string(),
                )
            })
            .collect();
        let request = PrebuiltRequest::new(ctx, Method::POST, "/v1/ratelimit/check")?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self { request, bodies })
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        let key = Account::create(ctx).await?.api_key(ctx).await?;
        self.request.set_header(HeaderName::from_static("x-api-key"), HeaderValue::try_from(key)?);
        Ok(())
    }

    async fn request(&self, conn: &mut Connection, worker: usize, _seq: u64) -> Result<Outcome> {
        let body = self.bodies[worker % self.bodies.len()].clone();
        let status = conn.send(self.request.build_with_body(body)).await?;
        Ok(Outcome::expect_status(status, StatusCode::OK))
    }
}
