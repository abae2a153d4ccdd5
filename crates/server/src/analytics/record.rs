//! One recorded request: what the recording layer captures when a
//! response leaves, and what every later stage (channel, batch, spill,
//! table, live feed, counters) carries unchanged.
//!
//! Invariant: `id` is made when the request arrives and never again, so a
//! record written twice (a retried batch, a replayed spill) is one row.
//!
//! The request path makes one record per request, so the record avoids
//! allocations where it can: a standard method is borrowed `'static`
//! text, and the address stays an [`IpAddr`] until a stage needs text.

use std::borrow::Cow;
use std::net::IpAddr;

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
    #[schema(value_type = String)]
    pub method: Cow<'static, str>,
    /// The matched route template (`/v1/leaderboards/{board}`), never the
    /// raw path; unmatched paths are recorded as `unmatched`.
    #[schema(value_type = String)]
    pub route: Cow<'static, str>,
    pub status: u16,
    /// From the request's arrival to the response head being ready.
    pub latency_us: u64,
    /// The request's `Content-Length` (0 for a chunked body).
    pub request_bytes: u64,
    /// The uncompressed response body's length; 0 for streams.
    pub response_bytes: u64,
    /// After the trusted-proxy rule.
    #[schema(value_type = Option<String>)]
    pub client_ip: Option<IpAddr>,
    /// Truncated to [`USER_AGENT_MAX_CHARS`].
    pub user_agent: Option<String>,
}

impl ActivityRecord {
    /// `errors` count responses with status 400 or above.
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// An address as text, written on the stack: IPv4 (nearly every caller)
/// digit by digit, as `Display` costs several times more.
#[derive(Clone, Copy)]
pub struct IpText {
    /// Room for the longest form (an IPv4-mapped IPv6 address).
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    pub fn new(ip: IpAddr) -> Self {
        let mut text = Self { buf: [0; 45], len: 0 };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut text.buf[..]);
                // Cannot fail: every IPv6 address fits in 45 bytes.
                let _ = write!(cursor, "{v6}");
                text.len = usize::try_from(cursor.position()).unwrap_or(0);
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, colons and hex letters are written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }
}
