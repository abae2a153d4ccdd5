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
//! and none keeps a copy of the code.

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

#[cfg(test)]
mod tests {
    use super::*;

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
