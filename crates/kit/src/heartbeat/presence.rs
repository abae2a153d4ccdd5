//! Presence: holders (users) that are alive while at least one of their
//! sessions (connections, on any process) keeps beating.
//!
//! Four keys under one hash tag: the sessions by expiry, the holders by
//! their latest expiry, each holder's live-session count, and each
//! holder's last beat (trimmed by age). Every change is one script, so the
//! count and the sets never disagree, and each transition is reported
//! once: `beat` says when a holder came online, `leave` when its last
//! session closed, `sweep` claims sessions whose process died (the first
//! caller to see them expired takes them; others get nothing).

use std::time::Duration;

use redis::Script;

use crate::{Keyspace, KitError, RedisConnection};

static BEAT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(include_str!("presence_beat.lua")));
static LEAVE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("presence_leave.lua")));
static SWEEP: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("presence_sweep.lua")));
static STATUS: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("presence_status.lua")));

/// A holder's presence as [`Presence::status`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub online: bool,
    /// Milliseconds since the epoch (Redis server time) of the holder's
    /// last beat or departure; `None` when never seen (or forgotten).
    pub last_seen_ms: Option<i64>,
}

/// A named presence registry. See the module documentation.
#[derive(Clone, Debug)]
pub struct Presence {
    conn: RedisConnection,
    keys: [String; 4],
}

impl Presence {
    /// A registry called `name` (e.g. `presence`) inside `keys`.
    pub fn new(conn: RedisConnection, keys: &Keyspace, name: &str) -> Self {
        let key = |part: &str| keys.tagged(name, &[part]);
        Self { conn, keys: [key("sessions"), key("holders"), key("counts"), key("seen")] }
    }

    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation
    }

    /// Keeps `session` of `holder` alive for `ttl` (opening it if new);
    /// true when the holder had no live session before: it came online.
    pub async fn beat(&self, holder: &str, session: &str, ttl: Duration) -> Result<bool, KitError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let came: i64 = self.invocation(&BEAT).arg(holder).arg(session).arg(ttl_ms).invoke_async(&mut conn).await?;
        Ok(came == 1)
    }

    /// Ends `session` of `holder`; true when it was the holder's last live
    /// session: it went offline.
    pub async fn leave(&self, holder: &str, session: &str) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let gone: i64 = self.invocation(&LEAVE).arg(holder).arg(session).invoke_async(&mut conn).await?;
        Ok(gone == 1)
    }

    /// Claims up to `limit` expired sessions; answers the holders left
    /// without a live session. Last-seen times older than `keep_seen` are
    /// forgotten.
    pub async fn sweep(&self, limit: usize, keep_seen: Duration) -> Result<Vec<String>, KitError> {
        let keep_ms = u64::try_from(keep_seen.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        Ok(self.invocation(&SWEEP).arg(limit.max(1)).arg(keep_ms).invoke_async(&mut conn).await?)
    }

    /// Each holder's presence, in the order asked.
    pub async fn status(&self, holders: &[String]) -> Result<Vec<Seen>, KitError> {
        if holders.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.invocation(&STATUS);
        for holder in holders {
            invocation.arg(holder);
        }
        let rows: Vec<(i64, String)> = invocation.invoke_async(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|(online, seen)| Seen {
                online: online == 1,
                last_seen_ms: seen.parse::<f64>().ok().map(|ms| ms as i64),
            })
            .collect())
    }
}
