//! `apikey_auth`: `GET /v1/auth/whoami` with `x-api-key`, expecting 200.
//!
//! The route does nothing but authenticate, so comparing it with `health`
//! gives what API-key authentication and the route's rate limit cost: the
//! key is cached in process, and the client's limit is one EVALSHA (this is
//! the "limited route" of `scripts/bench-ratelimit`).

use anyhow::Result;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::account::Account;
use super::{Context, Outcome, PrebuiltRequest, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct ApiKeyAuth {
    /// Gets its `x-api-key` header in [`Scenario::setup`].
    request: PrebuiltRequest,
}

impl Scenario for ApiKeyAuth {
    const NAME: &'static str = "apikey_auth";
    const DESCRIPTION: &'static str = "GET /v1/auth/whoami with an API key, expect 200 (cost of key authentication)";

    fn new(ctx: &Context) -> Result<Self> {
        Ok(Self { request: PrebuiltRequest::new(ctx, Method::GET, "/v1/auth/whoami")? })
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        let key = Account::create(ctx).await?.api_key(ctx).await?;
        self.request.set_header(HeaderName::from_static("x-api-key"), HeaderValue::try_from(key)?);
        Ok(())
    }

    async fn request(&self, conn: &mut Connection, _worker: usize, _seq: u64) -> Result<Outcome> {
        let status = conn.send(self.request.build()).await?;
        Ok(Outcome::expect_status(status, StatusCode::OK))
    }
}
