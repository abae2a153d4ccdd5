//! Shared domain types: who is calling and where from. Every layer above
//! may use them; they import nothing of the server but validation.
//!
//! A [`Principal`] is the caller a request authenticated as: a user with a
//! session, or an API client by key. Its [`PrincipalId`] names it wherever
//! something belongs to it or counts against it. The authentication layer
//! builds principals; capabilities only read them.
//!
//! [`PageCursor`] is the opaque cursor of every list paged newest first on
//! (time, id): one encoding, so no capability parses another's by accident
//! and none keeps a copy of the code; [`PageRequest`] is one page's
//! checked parameters and the trimming of what the store fetched.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A principal as it is named wherever something belongs to it or counts
/// against it: `user:<id>` or `client:<id>`, in account namespaces (an
/// account is always a user's), job owners, session key tags and the rate limiter's allow and deny lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalId {
    User(Uuid),
    Client(Uuid),
}

impl PrincipalId {
    /// The user's or the client's id, whichever this names.
    pub fn uuid(self) -> Uuid {
        match self {
            PrincipalId::User(id) | PrincipalId::Client(id) => id,
        }
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalId::User(id) => write!(f, "user:{id}"),
            PrincipalId::Client(id) => write!(f, "client:{id}"),
        }
    }
}

impl PrincipalId {
    pub fn id(self) -> Uuid {
        match self {
            PrincipalId::User(id) | PrincipalId::Client(id) => id,
        }
    }
}

/// `user` or `admin`.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn from_stored(value: &str) -> Self {
        if value == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// An authenticated user's identity for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
}

/// A caller authenticated by API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatedClient {
    pub client_id: Uuid,
    pub key_id: Uuid,
    pub owner_id: Uuid,
    /// The client's own limit (requests per minute), when it has one.
    pub rate_limit: Option<i32>,
    /// The owner's role: an admin's client acts for the operator (e.g. it
    /// may notify any user). Roles are only given when a user is created;
    /// whatever changes one later must invalidate the owner's key caches.
    /// Cache entries written before this field existed read as `user`.
    #[serde(default)]
    pub owner_role: Role,
}

impl AuthenticatedClient {
    /// The account the client acts for: its owner's.
    pub fn account(&self) -> PrincipalId {
        PrincipalId::User(self.owner_id)
    }
}

/// Either kind of caller.
#[derive(Debug, Clone)]
pub enum Principal {
    User(AuthenticatedUser),
    Client(AuthenticatedClient),
}

impl Principal {
    pub fn principal_id(&self) -> PrincipalId {
        match self {
            Principal::User(user) => PrincipalId::User(user.user_id),
            Principal::Client(client) => PrincipalId::Client(client.client_id),
        }
    }

    /// The account the caller acts for: a user's own, or the one of the
    /// user owning the API client. Resources an account's clients share
    /// with it (boards, streams) live under this.
    pub fn account(&self) -> PrincipalId {
        match self {
            Principal::User(user) => PrincipalId::User(user.user_id),
            Principal::Client(client) => client.account(),
        }
    }

    /// Whether this caller acts for the operator of the deployment: an
    /// admin, or an API client an admin owns. Such callers may act on other
    /// users (e.g. notify them).
    pub fn is_operator(&self) -> bool {
        match self {
            Principal::User(user) => user.role == Role::Admin,
            Principal::Client(client) => client.owner_role == Role::Admin,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::Client(_) => "client",
        }
    }

    pub fn id(&self) -> Uuid {
        match self {
            Principal::User(user) => user.user_id,
            Principal::Client(client) => client.client_id,
        }
    }
}

/// Why credentials a request presented were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Unknown, revoked, malformed or not signed by us.
    Invalid,
    /// Was valid, and is past its lifetime: refresh it.
    Expired,
}

/// The caller's address, as far as it can be trusted (the peer, or the
/// first untrusted hop of `X-Forwarded-For` behind a trusted proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Where a request came from, recorded on the session it creates.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: String,
    pub user_agent: String,
}

/// A keyset position in a list ordered newest first by (time, id): the
/// last row of a page. Callers see it as an opaque string,
/// `<time in µs since the epoch>.<id as 32 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub at: chrono::DateTime<chrono::Utc>,
    pub id: Uuid,
}

impl PageCursor {
    pub fn new(at: chrono::DateTime<chrono::Utc>, id: Uuid) -> Self {
        Self { at, id }
    }

    /// The opaque form handed to callers as `next_cursor`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.id.simple())
    }

    /// A cursor this API handed out; `None` for anything else.
    pub fn parse(cursor: &str) -> Option<Self> {
        let (micros, id) = cursor.split_once('.')?;
        Some(Self { at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?, id: Uuid::try_parse(id).ok()? })
    }
}

/// One page of a newest-first keyset list, as a service asks its store
/// for it: where to start and how many rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows older than this (exclusive); `None`: from the newest.
    pub before: Option<PageCursor>,
    pub limit: usize,
}

impl PageRequest {
    /// Checks the `cursor` and `limit` parameters (limit 1-`max`, `default`
    /// when absent), naming the bad ones.
    pub fn parse(
        cursor: Option<&str>,
        limit: Option<u64>,
        default: usize,
        max: usize,
    ) -> Result<Self, Vec<crate::validation::FieldError>> {
        use crate::validation::FieldError;
        let mut errors = Vec::new();
        let before = match cursor.map(PageCursor::parse) {
            Some(None) => {
                errors.push(FieldError::new("cursor", "is not a cursor from this API"));
                None
            }
            other => other.flatten(),
        };
        let limit = match limit.map(usize::try_from) {
            None => default,
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => {
                errors.push(FieldError::new("limit", format!("must be between 1 and {max}")));
                default
            }
        };
        if errors.is_empty() {
            Ok(Self { before, limit })
        } else {
            Err(errors)
        }
    }

    /// The row count to fetch: one more than the page, to tell whether
    /// another page follows.
    pub fn fetch(&self) -> i64 {
        i64::try_from(self.limit).unwrap_or(i64::MAX - 1) + 1
    }

    /// Trims rows fetched with [`PageRequest::fetch`] to the page; returns
    /// the next page's cursor when there is one.
    pub fn finish<T>(&self, rows: &mut Vec<T>, position: impl Fn(&T) -> PageCursor) -> Option<String> {
        if rows.len() <= self.limit {
            return None;
        }
        rows.truncate(self.limit);
        rows.last().map(|row| position(row).encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_check_both_parameters_and_trim_to_the_page() {
        let cursor = PageCursor::new(chrono::DateTime::from_timestamp_micros(1_000).unwrap(), Uuid::nil());
        let page = PageRequest::parse(Some(&cursor.encode()), Some(2), 50, 100).unwrap();
        assert_eq!((page.before, page.limit, page.fetch()), (Some(cursor), 2, 3));
        let errors = PageRequest::parse(Some("x"), Some(0), 50, 100).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["cursor", "limit"]);
        assert_eq!(PageRequest::parse(None, None, 50, 100).unwrap().limit, 50);

        let mut rows = vec![1, 2, 3];
        let next = page.finish(&mut rows, |n| PageCursor::new(cursor.at, Uuid::from_u128(*n)));
        assert_eq!(rows, [1, 2]);
        assert_eq!(next, Some(PageCursor::new(cursor.at, Uuid::from_u128(2)).encode()));
        assert_eq!(page.finish(&mut rows, |_| cursor), None, "no more rows than the page");
    }

    #[test]
    fn page_cursors_round_trip_and_foreign_ones_are_refused() {
        let cursor =
            PageCursor::new(chrono::DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(), Uuid::new_v4());
        assert_eq!(PageCursor::parse(&cursor.encode()), Some(cursor));
        for foreign in ["", "123", "x.y", "123.not-a-uuid", &cursor.id.to_string()] {
            assert_eq!(PageCursor::parse(foreign), None, "{foreign}");
        }
    }
}
