//! `events_publish`: `POST /v1/events` with an API key, one stream per
//! worker, a small JSON event, expecting 201: authentication (cached in
//! process), the route's rate limit (one EVALSHA) and one `XADD ... MAXLEN ~`.

use anyhow::Result;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::json;

use super::account::Account;
use super::{Context, Outcome, PrebuiltRequest, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct EventsPublish {
    /// Gets its `x-api-key` header in [`Scenario::setup`].
    request: PrebuiltRequest,
    /// The body of each worker, indexed by worker.
    bodies: Vec<Bytes>,
}

impl Scenario for EventsPublish {
    const NAME: &'static str = "events_publish";
    const DESCRIPTION: &'static str = "POST /v1/events with an API key, one stream per worker, expect 201";

    fn new(ctx: &Context) -> Result<Self> {
        let bodies = (0..ctx.concurrency)
            .map(|worker| {
                Bytes::from(
                    json!({"stream": format!("bench-{worker}"), "type": "user.created",
                           "data": {"id": worker, "email": "bench@example.com"}})
                    .to_string(),
                )
            })
            .collect();
        let request = PrebuiltRequest::new(ctx, Method::POST, "/v1/events")?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self { request, bodies })
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        let key = Account::create(ctx).await?.api_key(ctx).await?;
        self.request.set_header(HeaderName::from_static("x-api-key"), HeaderValue::try_from(key)?);
        Ok(())
    }

    async fn request(&self, conn: &mut Connection, worker: usize, _seq: u64) -> Result<Outcome> {
        let body = self.bodies[worker % self.bodies.len()].clone();
        let status = conn.send(self.request.build_with_body(body)).await?;
        Ok(Outcome::expect_status(status, StatusCode::CREATED))
    }
}
