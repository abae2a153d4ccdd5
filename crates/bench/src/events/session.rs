//! The admin the events benchmark acts as: its session (chat is for users'
//! sessions), an API key of its own (an admin's client is an operator, so
//! it reads the operator streams' events), and small JSON helpers for the
//! untimed or lightly loaded requests. Timed hot paths use prebuilt
//! requests on a [`Connection`](crate::connection::Connection) instead.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use reqwest::RequestBuilder;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::scenarios::account::Account;
use crate::scenarios::{Context, PrebuiltRequest};

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (signup).
    None,
    /// The admin's access token.
    Session,
    /// The admin's API key.
    Key,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub ctx: Context,
    token: String,
    api_key: String,
    /// The admin's user id: the account the API key's streams belong to.
    pub account: Uuid,
}

impl Session {
    /// Logs in as the admin and creates an API key for it.
    pub async fn sign_in(base_url: &str, email: &str, password: &str) -> Result<Self> {
        switchyard::tls::install_tls_provider();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).tcp_nodelay(true).build()?;
        let ctx = Context::new(client, base_url, 1)?;
        let account = Account::log_in(&ctx, email, password)
            .await
            .context("logging in as the admin (--admin-email, --admin-password)")?;
        let token = account.access_token.clone();
        let api_key = account.api_key(&ctx).await.context("creating the admin's API key")?;
        let mut session = Self { ctx, token, api_key, account: Uuid::nil() };
        let (status, me) = session.call(Method::GET, "/v1/auth/whoami", Auth::Session, None).await?;
        if status != StatusCode::OK || me["kind"] != "user" {
            bail!("whoami answered {status}: {me}");
        }
        session.account = me["id"].as_str().and_then(|id| Uuid::try_parse(id).ok()).context("whoami gave no id")?;
        Ok(session)
    }

    fn authorize(&self, request: RequestBuilder, auth: Auth) -> RequestBuilder {
        match auth {
            Auth::None => request,
            Auth::Session => request.bearer_auth(&self.token),
            Auth::Key => request.header("x-api-key", &self.api_key),
        }
    }

    /// Sends a request with an optional JSON body; the status and the JSON
    /// answered (`null` when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self.authorize(self.ctx.client.request(method, self.ctx.url(path)), auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("calling {path}"))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// [`Session::call`] that must answer `expect`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        auth: Auth,
        body: Option<&Value>,
        expect: StatusCode,
    ) -> Result<Value> {
        let (status, answer) = self.call(method, path, auth, body).await?;
        if status != expect {
            bail!("{path} answered {status} (expected {expect}): {answer}");
        }
        Ok(answer)
    }

    /// A JSON request to `path` carrying the API key, for the timed paths.
    pub fn keyed(&self, method: Method, path: &str) -> Result<PrebuiltRequest> {
        Ok(PrebuiltRequest::new(&self.ctx, method, path)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(HeaderName::from_static("x-api-key"), HeaderValue::try_from(self.api_key.as_str())?))
    }

    /// The event log's name of the account's stream `name`.
    pub fn log_stream(&self, name: &str) -> String {
        format!("user:{}/{name}", self.account)
    }

    /// Marks the account's stream `name` persistent: the worker's
    /// `event-log` group stores its events.
    pub async fn persist(&self, name: &str) -> Result<()> {
        let path = format!("/v1/events/{name}");
        self.expect(Method::PUT, &path, Auth::Key, Some(&json!({"persist": true})), StatusCode::OK).await?;
        Ok(())
    }
}
