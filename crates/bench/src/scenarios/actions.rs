//! `actions`: `POST /v1/actions` with an API key, expecting 201: the whole
//! seed-000 flow per request (rate-limit decision, one PostgreSQL insert,
//! one pipelined Redis round trip for the audit stream, two PUBLISHes, two
//! ZINCRBYs and the cache entry, then marking the row published).

use anyhow::Result;
use reqwest::{Client, StatusCode};

use super::account::Account;
use super::{Context, Outcome, Scenario};

/// See the module documentation.
#[derive(Debug)]
pub struct Actions {
    url: String,
    key: String,
}

impl Scenario for Actions {
    const NAME: &'static str = "actions";
    const DESCRIPTION: &'static str = "POST /v1/actions with an API key and every side effect on, expect 201";

    fn new(ctx: &Context) -> Self {
        Self { url: ctx.url("/v1/actions"), key: String::new() }
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.key = Account::create(ctx).await?.api_key(ctx).await?;
        Ok(())
    }

    async fn request(&self, client: &Client, worker: usize, seq: u64) -> Result<Outcome> {
        let body = format!(r#"{{"type":"UPLOAD","metadata":{{"worker":{worker},"seq":{seq}}}}}"#);
        let response = client
            .post(&self.url)
            .header("x-api-key", &self.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        Outcome::expect_status(response, StatusCode::CREATED).await
    }
}
