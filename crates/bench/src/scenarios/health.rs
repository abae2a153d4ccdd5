//! `health`: `GET /health`, expecting `200 OK`.
//!
//! The cheapest request the service answers, so it measures the HTTP stack
//! itself (connection handling, routing, middleware) and gives the baseline
//! the heavier scenarios are compared against.

use anyhow::Result;
use reqwest::{Client, StatusCode};

use super::{Context, Outcome, Scenario};

/// See the module documentation.
#[derive(Debug)]
pub struct Health {
    url: String,
}

impl Scenario for Health {
    const NAME: &'static str = "health";
    const DESCRIPTION: &'static str = "GET /health, expect 200 (baseline: HTTP stack only)";

    fn new(ctx: &Context) -> Self {
        Self { url: ctx.url("/health") }
    }

    async fn request(&self, client: &Client, _worker: usize, _seq: u64) -> Result<Outcome> {
        let response = client.get(&self.url).send().await?;
        Outcome::expect_status(response, StatusCode::OK).await
    }
}
