//! `ratelimit_check`: `POST /v1/ratelimit/check` with an API key, one
//! counter per worker (token bucket, large enough never to deny), expecting
//! 200: API-key authentication (cached, one Redis GET) plus one EVALSHA.

use anyhow::Result;
use reqwest::{Client, StatusCode};
use serde_json::json;

use super::account::Account;
use super::{Context, Outcome, Scenario};

/// See the module documentation.
#[derive(Debug)]
pub struct RateLimitCheck {
    url: String,
    key: String,
    bodies: Vec<String>,
}

impl Scenario for RateLimitCheck {
    const NAME: &'static str = "ratelimit_check";
    const DESCRIPTION: &'static str = "POST /v1/ratelimit/check with an API key, one key per worker, expect 200";

    fn new(ctx: &Context) -> Self {
        let bodies = (0..ctx.concurrency)
            .map(|worker| {
                json!({"key": format!("bench-{worker}"), "algorithm": "token_bucket",
                       "capacity": 1_000_000_000u64, "refill_per_sec": 1_000_000.0})
                .to_string()
            })
            .collect();
        Self { url: ctx.url("/v1/ratelimit/check"), key: String::new(), bodies }
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.key = Account::create(ctx).await?.api_key(ctx).await?;
        Ok(())
    }

    async fn request(&self, client: &Client, worker: usize, _seq: u64) -> Result<Outcome> {
        let response = client
            .post(&self.url)
            .header("x-api-key", &self.key)
            .header("content-type", "application/json")
            .body(self.bodies[worker % self.bodies.len()].clone())
            .send()
            .await?;
        Outcome::expect_status(response, StatusCode::OK).await
    }
}
