//! `actions`: `POST /v1/actions` with an API key, expecting 201: the whole
//! seed-000 flow per request (rate-limit decision, one PostgreSQL insert,
//! one pipelined Redis round trip for the audit stream, two PUBLISHes, two
//! ZINCRBYs and the cache entry, then marking the row published).

use std::fmt::Write as _;

use anyhow::Result;
use bytes::BytesMut;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::account::Account;
use super::{Context, Outcome, PrebuiltRequest, Scenario};
use crate::connection::Connection;

/// Room for the largest body (`worker` and `seq` at their widest).
const BODY_CAPACITY: usize = 96;

/// See the module documentation.
#[derive(Debug)]
pub struct Actions {
    /// Gets its `x-api-key` header in [`Scenario::setup`].
    request: PrebuiltRequest,
}

impl Scenario for Actions {
    const NAME: &'static str = "actions";
    const DESCRIPTION: &'static str = "POST /v1/actions with an API key and every side effect on, expect 201";

    fn new(ctx: &Context) -> Result<Self> {
        let request = PrebuiltRequest::new(ctx, Method::POST, "/v1/actions")?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self { request })
    }

    async fn setup(&mut self, ctx: &Context) -> Result<()> {
        let key = Account::create(ctx).await?.api_key(ctx).await?;
        self.request.set_header(HeaderName::from_static("x-api-key"), HeaderValue::try_from(key)?);
        Ok(())
    }

    async fn request(&self, conn: &mut Connection, worker: usize, seq: u64) -> Result<Outcome> {
        // The only per-request work: each action carries who sent it.
        let mut body = BytesMut::with_capacity(BODY_CAPACITY);
        write!(body, r#"{{"type":"UPLOAD","metadata":{{"worker":{worker},"seq":{seq}}}}}"#)?;
        let status = conn.send(self.request.build_with_body(body.freeze())).await?;
        Ok(Outcome::expect_status(status, StatusCode::CREATED))
    }
}
