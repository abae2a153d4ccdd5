//! `apikey_auth`: `GET /v1/auth/whoami` with `x-api-key`, expecting 200.
//!
//! The route does nothing but authenticate, so comparing it with `health`
//! gives what API-key authentication costs (a cached key is one Redis GET).

use anyhow::Result;
use reqwest::{Client, StatusCode};

use super::account::Account;
use super::{Context, Outcome, Scenario};

/// See the module documentation.
#[derive(Debug)]
pub struct ApiKeyAuth {
    url: String,
    key: String,
}

impl Scenario for ApiKeyAuth {
    const NAME: &'static str = "apikey_auth";
    const DESCRIPTION: &'static str = "GET /v1/auth/whoami with an API key, expect 200 (cost of key authentication)";

    fn new(ctx: &Context) -> Self {
        Self { url: ctx.url("/v1/auth/whoami"), key: String::new() }
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.key = Account::create(ctx).await?.api_key(ctx).await?;
        Ok(())
    }

    async fn request(&self, client: &Client, _worker: usize, _seq: u64) -> Result<Outcome> {
        let response = client.get(&self.url).header("x-api-key", &self.key).send().await?;
        Outcome::expect_status(response, StatusCode::OK).await
    }
}
