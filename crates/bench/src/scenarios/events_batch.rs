//! `events_batch`: `POST /v1/events:batch` with an API key, 100 small JSON
//! events per request (the batch size producers are told to use), one
//! stream per worker, expecting 201. Events per second are the request
//! rate times [`BATCH`]; `scripts/bench-events` reports them beside raw
//! `redis-benchmark` XADD.

use anyhow::Result;
use http::StatusCode;
use serde_json::{json, Value};

use super::keyed_post::KeyedJsonPost;
use super::{Context, Outcome, Scenario};
use crate::connection::Connection;

/// Events per request.
pub const BATCH: usize = 100;

/// The body of worker `worker`'s requests: [`BATCH`] events of about the
/// size of `events_publish`'s one, on the worker's own stream.
pub fn batch_body(stream: &str, worker: usize) -> Value {
    let events: Vec<Value> = (0..BATCH)
        .map(|i| json!({"type": "user.created", "data": {"id": worker * BATCH + i, "email": "bench@example.com"}}))
        .collect();
    json!({"stream": stream, "events": events})
}

/// See the module documentation.
#[derive(Debug)]
pub struct EventsBatch(KeyedJsonPost);

impl Scenario for EventsBatch {
    const NAME: &'static str = "events_batch";
    const DESCRIPTION: &'static str =
        "POST /v1/events:batch of 100 events with an API key, one stream per worker, expect 201";

    fn new(ctx: &Context) -> Result<Self> {
        let body = |worker: usize| batch_body(&format!("batch-{worker}"), worker);
        Ok(Self(KeyedJsonPost::new(ctx, "/v1/events:batch", body, StatusCode::CREATED)?))
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        self.0.setup(ctx).await
    }

    async fn request(&self, conn: &mut Connection, worker: usize, _seq: u64) -> Result<Outcome> {
        self.0.send(conn, worker).await
    }
}
