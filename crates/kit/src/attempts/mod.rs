//! Attempt counters: "at most N of these per window" for things that are
//! counted rather than rate-shaped: failed logins per email and per IP,
//! one-time-code requests per address.
//!
//! Each counter is one key with a TTL equal to its window, started by the
//! first attempt (a fixed window). Incrementing and arming the TTL happen
//! in one script, so a counter never lives without its expiry.

use std::time::Duration;

use redis::Script;

use crate::duration::millis;
use crate::{Keyspace, KitError, RedisConnection};

static HIT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(include_str!("hit.lua")));

/// Counters of attempts within a window, in one keyspace.
#[derive(Clone, Debug)]
pub struct Attempts {
    conn: RedisConnection,
    keys: Keyspace,
    kind: &'static str,
}

impl Attempts {
    /// Counters of one kind (e.g. `login-failures`), named per subject.
    pub fn new(conn: RedisConnection, keys: Keyspace, kind: &'static str) -> Self {
        Self { conn, keys, kind }
    }

    fn key(&self, subject: &str) -> String {
        self.keys.tagged(subject, &[self.kind])
    }

    /// Counts one attempt for `subject`. Returns `Some(retry_after)` when
    /// this attempt exceeds `limit` within `window`, `None` when allowed.
    pub async fn hit(&self, subject: &str, limit: u32, window: Duration) -> Result<Option<Duration>, KitError> {
        let mut conn = self.conn.clone();
        let retry_ms: i64 =
            HIT.key(self.key(subject)).arg(limit).arg(millis(window).max(1)).invoke_async(&mut conn).await?;
        Ok(u64::try_from(retry_ms).ok().map(Duration::from_millis))
    }

    /// Counts one attempt for each subject (e.g. the email and the IP of a
    /// failed login) in one round trip.
    pub async fn record(&self, subjects: &[&str], window: Duration) -> Result<(), KitError> {
        let mut pipe = redis::pipe();
        for subject in subjects {
            // Limit u32::MAX: only counting here; `blocked` decides.
            let mut invocation = HIT.key(self.key(subject));
            invocation.arg(u32::MAX).arg(millis(window).max(1));
            pipe.invoke_script(&invocation).ignore();
        }
        crate::connection::query_pipeline::<()>(&self.conn, &pipe, &[&HIT]).await?;
        Ok(())
    }

    /// The longest wait among `checks` whose subject already has at least
    /// `limit` attempts in its window; `None` when none is blocked.
    pub async fn blocked(&self, checks: &[(&str, u32)]) -> Result<Option<Duration>, KitError> {
        let mut pipe = redis::pipe();
        for (subject, _) in checks {
            let key = self.key(subject);
            pipe.get(&key).pttl(&key);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<(Option<u64>, i64)> = pipe.query_async(&mut conn).await?;
        Ok(checks
            .iter()
            .zip(replies)
            .filter(|((_, limit), (count, _))| count.unwrap_or(0) >= u64::from(*limit))
            .map(|(_, (_, pttl))| Duration::from_millis(u64::try_from(pttl).unwrap_or(0).max(1)))
            .max())
    }

    /// Forgets `subject`'s attempts (e.g. after a successful login).
    pub async fn clear(&self, subject: &str) -> Result<(), KitError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL").arg(self.key(subject)).query_async::<()>(&mut conn).await?;
        Ok(())
    }
}
