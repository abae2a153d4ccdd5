//! Heartbeats: a registry of live members (worker processes) that
//! disappear on their own when they stop beating, and [`Presence`]
//! (`presence.rs`): holders alive while one of their sessions beats.
//!
//! A member beats with a TTL; its details live in a hash that expires with
//! it, and the registry is a sorted set scored by Redis server time, pruned
//! on every beat. Both keys share one hash tag, and a beat is one Lua script,
//! so readers never see a member without details or a registry entry that
//! outlives its TTL by more than one beat.

use std::time::Duration;

use redis::Script;

use crate::{Keyspace, KitError, RedisConnection};

mod presence;

pub use presence::{Presence, Seen};

/// A named registry of members that prove they are alive by beating.
#[derive(Clone, Debug)]
pub struct Heartbeats {
    conn: RedisConnection,
    keys: Keyspace,
    name: String,
}

impl Heartbeats {
    /// A registry called `name` (e.g. `workers`) inside `keys`.
    pub fn new(conn: RedisConnection, keys: Keyspace, name: &str) -> Self {
        Self { conn, keys, name: name.to_owned() }
    }

    fn registry_key(&self) -> String {
        self.keys.tagged(&self.name, &["registry"])
    }

    fn member_key(&self, member: &str) -> String {
        self.keys.tagged(&self.name, &["member", member])
    }

    /// Records that `member` is alive for `ttl`, with `details` as its
    /// description (replacing the previous details).
    pub async fn beat(&self, member: &str, ttl: Duration, details: &[(&str, String)]) -> Result<(), KitError> {
        static BEAT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(include_str!("beat.lua")));
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = BEAT.key(self.registry_key());
        invocation.key(self.member_key(member)).arg(member).arg(ttl_ms);
        for (field, value) in details {
            invocation.arg(*field).arg(value);
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Removes `member` at once (a clean shutdown).
    pub async fn remove(&self, member: &str) -> Result<(), KitError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(self.registry_key(), member)
            .del(self.member_key(member))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The members alive now, with their details, ordered by name.
    pub async fn alive(&self) -> Result<Vec<(String, Vec<(String, String)>)>, KitError> {
        static ALIVE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(include_str!("alive.lua")));
        let mut conn = self.conn.clone();
        let members: Vec<String> = ALIVE.key(self.registry_key()).invoke_async(&mut conn).await?;
        let mut out = Vec::with_capacity(members.len());
        for member in members {
            let details: Vec<(String, String)> =
                redis::cmd("HGETALL").arg(self.member_key(&member)).query_async(&mut conn).await?;
            if !details.is_empty() {
                out.push((member, details));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
