//! Cache-aside: typed get-or-load with a TTL, for values whose source of
//! truth is elsewhere (PostgreSQL).
//!
//! - Versioned families: every key of a family embeds the family's version;
//!   bumping it invalidates the whole family at once (old entries expire on
//!   their TTL).
//! - Stampede protection: on a miss one caller per key loads (it holds a
//!   short lock); the others wait briefly for its value, and load
//!   themselves only if it does not come.
//! - Hit and miss counts per family are kept in Redis (HINCRBY, in the same
//!   script as the lookup) so every instance's traffic adds up; the server
//!   exports them as metrics.
//! - Optionally ([`Cache::with_key_tracking`]) hits and misses are also
//!   counted per item (INCRBY, same script), and each miss ranks the item
//!   in the family's most-missed set together with a caller-given recipe
//!   (how to recompute the value), so a warmer can refill the items that
//!   miss most ([`Cache::most_missed`]). The ranking is capped and every
//!   tracking key expires.
//!
//! All keys of a family share its hash tag.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::duration::millis;
use crate::{Keyspace, KitError, RedisConnection};

static GET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("get.lua")));
const PUT_SOURCE: &str = include_str!("put.lua");
static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(PUT_SOURCE));

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Found in the cache.
    Hit,
    /// Loaded from the source (and cached).
    Miss,
}

/// One family of cached values (e.g. `last-action`).
#[derive(Clone, Debug)]
pub struct Cache {
    conn: RedisConnection,
    keys: Keyspace,
    family: String,
    /// How long another caller's load is waited for.
    wait: Duration,
    tracking: Option<KeyTracking>,
}

/// Per-item hit and miss counting (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTracking {
    /// How long an item's counts (and the ranking) live after its last
    /// lookup.
    pub ttl: Duration,
    /// How many items the most-missed ranking keeps.
    pub ranked: u32,
}

/// One item of the most-missed ranking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missed {
    pub item: String,
    /// What the caller gave with the lookup that missed.
    pub recipe: String,
    pub misses: u64,
}

impl Cache {
    pub fn new(conn: RedisConnection, keys: Keyspace, family: &str) -> Self {
        Self { conn, keys, family: family.to_owned(), wait: Duration::from_millis(500), tracking: None }
    }

    /// Also counts hits and misses per item and ranks the items that miss.
    pub fn with_key_tracking(mut self, tracking: KeyTracking) -> Self {
        self.tracking = Some(tracking);
        self
    }

    /// How long callers wait for a concurrent load of the same key.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn tag(&self) -> String {
        format!("cache:{}", self.family)
    }

    fn version_key(&self) -> String {
        self.keys.tagged(&self.tag(), &["version"])
    }

    fn stats_key(&self) -> String {
        self.keys.tagged(&self.tag(), &["stats"])
    }

    /// `<prefix>:{cache:<family>}:v:` — followed by `<version>:<item>`.
    fn value_prefix(&self) -> String {
        format!("{}:", self.keys.tagged(&self.tag(), &["v"]))
    }

    /// `<prefix>:{cache:<family>}:key:` — followed by `hits:<item>`,
    /// `misses:<item>`, `missed` or `recipes`.
    fn tracking_prefix(&self) -> String {
        format!("{}:", self.keys.tagged(&self.tag(), &["key"]))
    }

    fn value_key(&self, version: &str, item: &str) -> String {
        self.keys.tagged(&self.tag(), &["v", version, item])
    }

    async fn lookup(&self, item: &str, recipe: &str) -> Result<(String, Option<String>), KitError> {
        let mut conn = self.conn.clone();
        // Escaped like any key part, so the script's key matches `value_key`.
        let escaped = crate::keys::escape(item);
        let mut invocation = GET.key(self.version_key());
        invocation.key(self.stats_key()).arg(self.value_prefix()).arg(&escaped);
        if let Some(tracking) = self.tracking {
            invocation.arg(self.tracking_prefix()).arg(recipe).arg(millis(tracking.ttl).max(1)).arg(tracking.ranked);
        }
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// The cached value of `item`, if any (counts a hit or a miss).
    pub async fn get<T: DeserializeOwned>(&self, item: &str) -> Result<Option<T>, KitError> {
        let (_, raw) = self.lookup(item, "").await?;
        Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    /// Stores `value` for `item` under the current version.
    pub async fn put<T: Serialize>(&self, item: &str, value: &T, ttl: Duration) -> Result<(), KitError> {
        let mut pipe = redis::pipe();
        self.put_in(&mut pipe, item, value, ttl)?;
        crate::connection::query_pipeline::<()>(&self.conn, &pipe, &[&PUT]).await
    }

    /// Adds storing `value` for `item` to `pipe`, so a caller can make it
    /// part of one round trip with other side effects. It is sent as EVAL
    /// (the script's text), not EVALSHA: in a pipeline of other commands a
    /// NOSCRIPT reply could not be retried without repeating them.
    pub fn put_in<T: Serialize>(
        &self,
        pipe: &mut redis::Pipeline,
        item: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), KitError> {
        let raw = serde_json::to_string(value).map_err(|e| KitError::Config(format!("unserialisable value: {e}")))?;
        pipe.cmd("EVAL")
            .arg(PUT_SOURCE)
            .arg(1)
            .arg(self.version_key())
            .arg(self.value_prefix())
            .arg(crate::keys::escape(item))
            .arg(raw)
            .arg(millis(ttl).max(1))
            .ignore();
        Ok(())
    }

    async fn store<T: Serialize>(&self, version: &str, item: &str, value: &T, ttl: Duration) -> Result<(), KitError> {
        let raw = serde_json::to_string(value).map_err(|e| KitError::Config(format!("unserialisable value: {e}")))?;
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.value_key(version, item))
            .arg(raw)
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The cached value, or `load()`'s, cached for `ttl`. `load` returning
    /// `None` (nothing at the source) is not cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        item: &str,
        ttl: Duration,
        load: F,
    ) -> Result<(Option<T>, CacheStatus), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<KitError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.get_or_load_with_recipe(item, "", ttl, load).await
    }

    /// [`Cache::get_or_load`], keeping `recipe` with the item's miss count
    /// when key tracking is on (so [`Cache::most_missed`] can say how to
    /// recompute it).
    pub async fn get_or_load_with_recipe<T, E, F, Fut>(
        &self,
        item: &str,
        recipe: &str,
        ttl: Duration,
        load: F,
    ) -> Result<(Option<T>, CacheStatus), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<KitError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let (version, raw) = self.lookup(item, recipe).await?;
        if let Some(value) = raw.and_then(|raw| serde_json::from_str(&raw).ok()) {
            return Ok((Some(value), CacheStatus::Hit));
        }
        let lock_key = self.keys.tagged(&self.tag(), &["lock", &version, item]);
        let mut conn = self.conn.clone();
        let leader: bool = redis::cmd("SET")
            .arg(&lock_key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.wait * 4).max(1))
            .query_async::<Option<String>>(&mut conn)
            .await
            .map_err(KitError::from)?
            .is_some();
        if !leader {
            // Someone else is loading: wait briefly for their value.
            let deadline = tokio::time::Instant::now() + self.wait;
            let mut delay = Duration::from_millis(5);
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(50));
                let raw: Option<String> = redis::cmd("GET")
                    .arg(self.value_key(&version, item))
                    .query_async(&mut conn)
                    .await
                    .map_err(KitError::from)?;
                if let Some(value) = raw.and_then(|raw| serde_json::from_str(&raw).ok()) {
                    return Ok((Some(value), CacheStatus::Hit));
                }
            }
        }
        let loaded = load().await;
        if let Ok(Some(value)) = &loaded {
            self.store(&version, item, value, ttl).await?;
        }
        if leader {
            let _: Result<(), _> = redis::cmd("DEL").arg(&lock_key).query_async(&mut conn).await;
        }
        Ok((loaded?, CacheStatus::Miss))
    }

    /// Drops `item` from the cache.
    pub async fn invalidate(&self, item: &str) -> Result<(), KitError> {
        let mut conn = self.conn.clone();
        let version: Option<String> = redis::cmd("GET").arg(self.version_key()).query_async(&mut conn).await?;
        redis::cmd("DEL")
            .arg(self.value_key(&version.unwrap_or_else(|| "0".into()), item))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Invalidates the whole family; returns the new version.
    pub async fn bump_version(&self) -> Result<u64, KitError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("INCR").arg(self.version_key()).query_async(&mut conn).await?)
    }

    /// (hits, misses) counted for `item` (zero unless key tracking is on).
    pub async fn key_stats(&self, item: &str) -> Result<(u64, u64), KitError> {
        let mut conn = self.conn.clone();
        let (hits, misses): (Option<u64>, Option<u64>) = redis::cmd("MGET")
            .arg(self.keys.tagged(&self.tag(), &["key", "hits", item]))
            .arg(self.keys.tagged(&self.tag(), &["key", "misses", item]))
            .query_async(&mut conn)
            .await?;
        Ok((hits.unwrap_or(0), misses.unwrap_or(0)))
    }

    /// The `limit` items that missed most (most first), with their recipes.
    pub async fn most_missed(&self, limit: usize) -> Result<Vec<Missed>, KitError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.tracking_prefix();
        let mut conn = self.conn.clone();
        let ranked: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
            .arg(format!("{prefix}missed"))
            .arg(0)
            .arg(limit - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let escaped: Vec<&str> = ranked.iter().map(|(item, _)| item.as_str()).collect();
        let recipes: Vec<Option<String>> =
            redis::cmd("HMGET").arg(format!("{prefix}recipes")).arg(&escaped).query_async(&mut conn).await?;
        Ok(ranked
            .into_iter()
            .zip(recipes)
            .filter_map(|((item, misses), recipe)| {
                // Scores are whole counts (RESP3 sends them as doubles).
                let misses = misses as u64;
                Some(Missed { item: crate::keys::unescape(&item), recipe: recipe?, misses })
            })
            .collect())
    }

    /// (hits, misses) counted for this family across all instances.
    pub async fn stats(&self) -> Result<(u64, u64), KitError> {
        let mut conn = self.conn.clone();
        let (hits, misses): (Option<u64>, Option<u64>) =
            redis::cmd("HMGET").arg(self.stats_key()).arg("hits").arg("misses").query_async(&mut conn).await?;
        Ok((hits.unwrap_or(0), misses.unwrap_or(0)))
    }
}
