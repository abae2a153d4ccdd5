//! Channel names and who may use them.
//!
//! Invariants: a channel name parses to exactly one [`Channel`] and prints
//! back to the same name; every Redis name built from a channel is scoped
//! by its owner (an `app:*` channel by the caller's account), so two
//! accounts' `app:chat` never meet.

use std::fmt;

use uuid::Uuid;

/// Longest `app:{name}` name.
pub const MAX_APP_NAME: usize = 64;

/// A channel as clients name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `user:{id}`: one user's own channel (notifications arrive here).
    User(Uuid),
    /// `room:{id}`: a chat room's members.
    Room(Uuid),
    /// `app:{name}`: free channels of the caller's account.
    App(String),
    /// `actions`: the caller's account's actions as they are recorded.
    Actions,
    /// `activity`: live API activity (admins).
    Activity,
}

/// Why a channel name does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a channel is user:{{id}}, room:{{id}}, app:{{name}} (1-64 of A-Z a-z 0-9 _ . -), actions or activity")]
pub struct BadChannel;

impl Channel {
    pub fn parse(name: &str) -> Result<Self, BadChannel> {
        match name {
            "actions" => return Ok(Channel::Actions),
            "activity" => return Ok(Channel::Activity),
            _ => {}
        }
        let (kind, rest) = name.split_once(':').ok_or(BadChannel)?;
        match kind {
            "user" => Uuid::parse_str(rest).map(Channel::User).map_err(|_| BadChannel),
            "room" => Uuid::parse_str(rest).map(Channel::Room).map_err(|_| BadChannel),
            "app" if valid_app_name(rest) => Ok(Channel::App(rest.to_owned())),
            _ => Err(BadChannel),
        }
    }

    /// Whether the channel keeps a bounded history (and so takes `since`).
    pub fn has_history(&self) -> bool {
        matches!(self, Channel::User(_) | Channel::Room(_) | Channel::App(_))
    }
}

fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_APP_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::User(id) => write!(f, "user:{id}"),
            Channel::Room(id) => write!(f, "room:{id}"),
            Channel::App(name) => write!(f, "app:{name}"),
            Channel::Actions => f.write_str("actions"),
            Channel::Activity => f.write_str("activity"),
        }
    }
}

/// A position in a channel's history: a Redis stream id (`ms-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        let id = Uuid::new_v4();
        for name in
            [format!("user:{id}"), format!("room:{id}"), "app:chat.v1".into(), "actions".into(), "activity".into()]
        {
            assert_eq!(Channel::parse(&name).unwrap().to_string(), name);
        }
        for bad in ["", "user:x", "app:", "app:a b", "app:a:b", "other", "room:", &format!("app:{}", "a".repeat(65))] {
            assert_eq!(Channel::parse(bad), Err(BadChannel), "{bad}");
        }
    }

    #[test]
    fn stream_ids_order_numerically() {
        assert!(StreamId::parse("10-2").unwrap() > StreamId::parse("9-5").unwrap());
        assert!(StreamId::parse("10-10").unwrap() > StreamId::parse("10-9").unwrap());
        assert_eq!(StreamId::parse("7"), Some(StreamId(7, 0)));
        assert_eq!(StreamId::parse("x-1"), None);
    }
}
