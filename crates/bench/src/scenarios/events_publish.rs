//! `events_publish`: `POST /v1/events` with an API key, one stream per
//! worker, a small JSON event, expecting 201: authentication (cached in
//! process), the route's rate limit (one EVALSHA) and one `XADD ... MAXLEN ~`.

use anyhow::Result;
use http::StatusCode;
use serde_json::json;

use super::keyed_post::KeyedJsonPost;
use super::{Context, Outcome, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct EventsPublish(KeyedJsonPost);

impl Scenario for EventsPublish {
    const NAME: &'static str = "events_publish";
    const DESCRIPTION: &'static str = "POST /v1/events with an API key, one stream per worker, expect 201";

    fn new(ctx: &Context) -> Result<Self> {
        let body = |worker: usize| {
            json!({"stream": format!("bench-{worker}"), "type": "user.created",
                   "data": {"id": worker, "email": "bench@example.com"}})
        };
        Ok(Self(KeyedJsonPost::new(ctx, "/v1/events", body, StatusCode::CREATED)?))
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.0.setup(ctx).await
    }

    async fn request(&self, conn: &mut Connection, worker: usize, _seq: u64) -> Result<Outcome> {
        self.0.send(conn, worker).await
    }
}
