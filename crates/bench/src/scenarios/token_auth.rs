//! `token_auth`: `GET /v1/auth/whoami` with a Bearer access token, expecting
//! 200: JWT verification plus the session check (one Lua script) that
//! makes revocation immediate.

use anyhow::Result;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, StatusCode};

use super::account::Account;
use super::{Context, Outcome, PrebuiltRequest, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct TokenAuth {
    /// Gets its `authorization` header in [`Scenario::setup`].
    request: PrebuiltRequest,
}

impl Scenario for TokenAuth {
    const NAME: &'static str = "token_auth";
    const DESCRIPTION: &'static str =
        "GET /v1/auth/whoami with a Bearer access token, expect 200 (JWT + session check)";

    fn new(ctx: &Context) -> Result<Self> {
        Ok(Self { request: PrebuiltRequest::new(ctx, Method::GET, "/v1/auth/whoami")? })
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        let token = Account::create(ctx).await?.access_token;
        let mut authorization = HeaderValue::try_from(format!("Bearer {token}"))?;
        authorization.set_sensitive(true);
        self.request.set_header(AUTHORIZATION, authorization);
        Ok(())
    }

    async fn request(&self, conn: &mut Connection, _worker: usize, _seq: u64) -> Result<Outcome> {
        let status = conn.send(self.request.build()).await?;
        Ok(Outcome::expect_status(status, StatusCode::OK))
    }
}
