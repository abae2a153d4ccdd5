//! `ratelimit_check`: `POST /v1/ratelimit/check` with an API key, one
//! counter per worker (token bucket, large enough never to deny), expecting
//! 200: API-key authentication (cached in process) plus one EVALSHA.

use anyhow::Result;
use http::StatusCode;
use serde_json::json;

use super::keyed_post::KeyedJsonPost;
use super::{Context, Outcome, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct RateLimitCheck(KeyedJsonPost);

impl Scenario for RateLimitCheck {
    const NAME: &'static str = "ratelimit_check";
    const DESCRIPTION: &'static str = "POST /v1/ratelimit/check with an API key, one key per worker, expect 200";

    fn new(ctx: &Context) -> Result<Self> {
        let body = |worker: usize| {
            json!({"key": format!("bench-{worker}"), "algorithm": "token_bucket",
                   "capacity": 1_000_000_000u64, "refill_per_sec": 1_000_000.0})
        };
        Ok(Self(KeyedJsonPost::new(ctx, "/v1/ratelimit/check", body, StatusCode::OK)?))
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.0.setup(ctx).await
    }

    async fn request(&self, conn: &mut Connection, worker: usize, _seq: u64) -> Result<Outcome> {
        self.0.send(conn, worker).await
    }
}
