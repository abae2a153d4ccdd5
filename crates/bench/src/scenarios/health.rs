//! `health`: `GET /health`, expecting `200 OK`.
//!
//! The cheapest request the service answers, so it measures the HTTP stack
//! itself (connection handling, routing, middleware) and gives the baseline
//! the heavier scenarios are compared against.

use anyhow::Result;
use http::{Method, StatusCode};

use super::{Context, Outcome, PrebuiltRequest, Scenario};
use crate::connection::Connection;

/// See the module documentation.
#[derive(Debug)]
pub struct Health {
    request: PrebuiltRequest,
}

impl Scenario for Health {
    const NAME: &'static str = "health";
    const DESCRIPTION: &'static str = "GET /health, expect 200 (baseline: HTTP stack only)";

    fn new(ctx: &Context) -> Result<Self> {
        Ok(Self { request: PrebuiltRequest::new(ctx, Method::GET, "/health")? })
    }

    async fn request(&self, conn: &mut Connection, _worker: usize, _seq: u64) -> Result<Outcome> {
        let status = conn.send(self.request.build()).await?;
        Ok(Outcome::expect_status(status, StatusCode::OK))
    }
}
