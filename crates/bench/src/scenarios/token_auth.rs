//! `token_auth`: `GET /v1/auth/whoami` with a Bearer access token, expecting
//! 200: JWT verification plus the session check (one Lua script) that
//! makes revocation immediate.

use anyhow::Result;
use reqwest::{Client, StatusCode};

use super::account::Account;
use super::{Context, Outcome, Scenario};

/// See the module documentation.
#[derive(Debug)]
pub struct TokenAuth {
    url: String,
    token: String,
}

impl Scenario for TokenAuth {
    const NAME: &'static str = "token_auth";
    const DESCRIPTION: &'static str =
        "GET /v1/auth/whoami with a Bearer access token, expect 200 (JWT + session check)";

    fn new(ctx: &Context) -> Self {
        Self { url: ctx.url("/v1/auth/whoami"), token: String::new() }
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.token = Account::create(ctx).await?.access_token;
        Ok(())
    }

    async fn request(&self, client: &Client, _worker: usize, _seq: u64) -> Result<Outcome> {
        let response = client.get(&self.url).bearer_auth(&self.token).send().await?;
        Outcome::expect_status(response, StatusCode::OK).await
    }
}
