//! One recorded request: what the recording layer captures when a
//! response leaves, and what every later stage (channel, batch, spill,
//! table, live feed, counters) carries unchanged.
//!
//! Invariant: `id` is made when the request arrives and never again, so a
//! record written twice (a retried batch, a replayed spill) is one row.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Anonymous,
    User,
    Client,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Anonymous => "anonymous",
            PrincipalKind::User => "user",
            PrincipalKind::Client => "client",
        }
    }
}

/// Longest user agent kept, in characters.
pub const USER_AGENT_MAX_CHARS: usize = 256;

/// One request under `/v1`, as recorded. Also the entry of
/// `GET /v1/activity` and of the live feed: one shape from the channel to
/// the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivityRecord {
    /// Made by the server when the request arrived (UUIDv7): the row's key.
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The caller's `x-request-id` when it sent one, else the server's; may
    /// repeat across requests, kept for correlation only.
    pub request_id: String,
    pub principal_kind: PrincipalKind,
    /// The user, for a user's request.
    pub user_id: Option<Uuid>,
    /// The API client, for a client's request.
    pub client_id: Option<Uuid>,
    /// The account the caller acts for (a user's own id, or its client's
    /// owner); none for anonymous requests.
    pub account_id: Option<Uuid>,
    pub method: String,
    /// The matched route template (`/v1/leaderboards/{board}`), never the
    /// raw path; unmatched paths are recorded as `unmatched`.
    pub route: String,
    pub status: u16,
    /// From the request's arrival to the response head being ready.
    pub latency_us: u64,
    /// The request's `Content-Length` (0 for a chunked body).
    pub request_bytes: u64,
    /// The uncompressed response body's length; 0 for streams.
    pub response_bytes: u64,
    /// After the trusted-proxy rule.
    pub client_ip: Option<String>,
    /// Truncated to [`USER_AGENT_MAX_CHARS`].
    pub user_agent: Option<String>,
}

impl ActivityRecord {
    /// `errors` count responses with status 400 or above.
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}
