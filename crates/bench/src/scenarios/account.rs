//! Setup shared by the authenticated scenarios: a fresh user (signed up and
//! logged in) and, when asked, an API client with its key.

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::Context;

/// A signed-in bench user.
#[derive(Debug, Clone)]
pub struct Account {
    pub access_token: String,
}

impl Account {
    /// Signs up a unique user and logs in.
    pub async fn create(ctx: &Context) -> Result<Self> {
        let unique = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos());
        let email = format!("bench-{unique}@example.com");
        let password = format!("bench-password-{unique}");
        let signup = json!({"username": format!("bench-{}", &unique[unique.len().saturating_sub(20)..]), "email": email, "password": password});
        let response = ctx.client.post(ctx.url("/v1/auth/signup")).json(&signup).send().await?;
        if response.status() != 201 {
            bail!("signup failed with {}", response.status());
        }
        Self::log_in(ctx, &email, &password).await
    }

    /// Logs in an existing user.
    pub async fn log_in(ctx: &Context, email: &str, password: &str) -> Result<Self> {
        let login: Value = ctx
            .client
            .post(ctx.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let access_token = login["access_token"].as_str().context("login returned no access token")?.to_owned();
        Ok(Self { access_token })
    }

    /// Registers an API client and returns its key. The client gets its
    /// own very high rate limit, so a benchmark measures the work of
    /// limiting, not a stream of 429s.
    pub async fn api_key(&self, ctx: &Context) -> Result<String> {
        let created: Value = ctx
            .client
            .post(ctx.url("/v1/clients"))
            .bearer_auth(&self.access_token)
            .json(&json!({"name": "switchyard-bench", "rate_limit": 1_000_000_000}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(created["api_key"].as_str().context("no api_key in the response")?.to_owned())
    }
}
