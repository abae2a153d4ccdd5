//! Distributed locks: acquire with a TTL (`SET NX PX` with a random token),
//! release and extend by the holder only (compare-and-act scripts), an
//! optional wait with jittered back-off, and a fencing token (a counter
//! per resource) returned on every acquisition.
//!
//! Invariants: the lock key and the fencing counter share the resource's
//! hash tag and change in one script; the fencing token strictly grows with
//! each acquisition of a resource for as long as the counter lives (it is
//! kept for `FENCE_TTL` after the last acquisition: one small key per
//! recently locked resource); expiry uses Redis server time.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use redis::Script;

use crate::duration::millis;
use crate::{Keyspace, KitError, RedisConnection};

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("acquire.lua")));
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("extend.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));

/// How long a resource's fencing counter outlives its last acquisition.
pub const FENCE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub resource: String,
    /// Proves holding; needed to extend and release.
    pub token: String,
    /// Strictly greater than any earlier acquisition's of this resource.
    pub fencing_token: u64,
    pub ttl: Duration,
    /// When the lease ends unless extended (Redis server time, Unix ms).
    pub expires_at_ms: u64,
}

/// Locks within one keyspace.
#[derive(Clone, Debug)]
pub struct Locks {
    conn: RedisConnection,
    keys: Keyspace,
}

impl Locks {
    pub fn new(conn: RedisConnection, keys: Keyspace) -> Self {
        Self { conn, keys }
    }

    fn lock_key(&self, resource: &str) -> String {
        self.keys.tagged(resource, &["lock"])
    }

    fn fence_key(&self, resource: &str) -> String {
        self.keys.tagged(resource, &["lock", "fence"])
    }

    /// Tries once (`wait` is `None` or zero), or keeps trying with jittered
    /// exponential back-off (10 ms doubling to 200 ms) until `wait` passes.
    /// `None` means someone else holds it.
    pub async fn acquire(
        &self,
        resource: &str,
        ttl: Duration,
        wait: Option<Duration>,
    ) -> Result<Option<Lease>, KitError> {
        check(resource, ttl)?;
        let deadline = Instant::now() + wait.unwrap_or_default();
        let mut delay = Duration::from_millis(10);
        loop {
            if let Some(lease) = self.try_acquire(resource, ttl).await? {
                return Ok(Some(lease));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let jittered = delay.mul_f64(rand::rng().random_range(0.5..1.0));
            tokio::time::sleep(jittered.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    async fn try_acquire(&self, resource: &str, ttl: Duration) -> Result<Option<Lease>, KitError> {
        let token = random_token();
        let mut conn = self.conn.clone();
        let reply: Option<(u64, u64)> = ACQUIRE
            .key(self.lock_key(resource))
            .key(self.fence_key(resource))
            .arg(&token)
            .arg(millis(ttl).max(1))
            .arg(millis(FENCE_TTL).max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(reply.map(|(fencing_token, expires_at_ms)| Lease {
            resource: resource.to_owned(),
            token,
            fencing_token,
            ttl,
            expires_at_ms,
        }))
    }

    /// Extends the holder's lease to `ttl` from now; `None` when `token`
    /// does not hold the lock (released, expired or someone else's).
    pub async fn extend(&self, resource: &str, token: &str, ttl: Duration) -> Result<Option<Lease>, KitError> {
        check(resource, ttl)?;
        let mut conn = self.conn.clone();
        let reply: Option<(u64, u64)> = EXTEND
            .key(self.lock_key(resource))
            .key(self.fence_key(resource))
            .arg(token)
            .arg(millis(ttl).max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(reply.map(|(fencing_token, expires_at_ms)| Lease {
            resource: resource.to_owned(),
            token: token.to_owned(),
            fencing_token,
            ttl,
            expires_at_ms,
        }))
    }

    /// Releases the lock if `token` holds it; true when it did.
    pub async fn release(&self, resource: &str, token: &str) -> Result<bool, KitError> {
        check(resource, Duration::from_millis(1))?;
        let mut conn = self.conn.clone();
        let deleted: i64 = RELEASE.key(self.lock_key(resource)).arg(token).invoke_async(&mut conn).await?;
        Ok(deleted == 1)
    }
}

fn check(resource: &str, ttl: Duration) -> Result<(), KitError> {
    if resource.is_empty() {
        return Err(KitError::InvalidKey("a lock resource must not be empty".into()));
    }
    if ttl < Duration::from_millis(1) {
        return Err(KitError::InvalidKey("a lock ttl must be at least 1 ms".into()));
    }
    Ok(())
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
