//! Quotas on what an owner may create: a registry of each owner's names (a
//! Redis set per owner) that admits a new name only below a limit, checked
//! and recorded in one script. The registry doubles as the list of what
//! each owner has, and of the owners that have anything.
//!
//! Invariants:
//! - the check and the record are one script, so concurrent creations never
//!   admit more names than the limit;
//! - a name once admitted stays admitted (names are never removed), so an
//!   existing resource keeps working whatever the limit becomes; the set is
//!   bounded by the limit;
//! - every set of one registry shares the registry's hash tag;
//! - a process remembers names it saw admitted (a bounded set), so only the
//!   first use of a name per process costs a round trip.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

use redis::Script;

use crate::{Keyspace, KitError, RedisConnection};

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("admit.lua")));

/// Names a process remembers as admitted before it forgets them all.
const REMEMBERED: usize = 100_000;

/// One registry of names per owner (an account's streams, its boards).
#[derive(Clone, Debug)]
pub struct Quota {
    conn: RedisConnection,
    keys: Keyspace,
    tag: String,
    admitted: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Quota {
    /// The registry `name` (e.g. `streams`).
    pub fn new(conn: RedisConnection, keys: Keyspace, name: &str) -> Self {
        Self { conn, keys, tag: format!("quota:{name}"), admitted: Arc::default() }
    }

    fn owner_key(&self, owner: &str) -> String {
        self.keys.tagged(&self.tag, &["names", owner])
    }

    fn owners_key(&self) -> String {
        self.keys.tagged(&self.tag, &["owners"])
    }

    fn remembered(&self, owner: &str, name: &str) -> bool {
        self.admitted.lock().map(|set| set.contains(&(owner.to_owned(), name.to_owned()))).unwrap_or(false)
    }

    fn remember(&self, owner: &str, name: &str) {
        if let Ok(mut set) = self.admitted.lock() {
            if set.len() >= REMEMBERED {
                set.clear();
            }
            set.insert((owner.to_owned(), name.to_owned()));
        }
    }

    /// Whether `owner` may use `name`: true for a name it has, or a new one
    /// while it has fewer than `limit` (the new one is then recorded).
    pub async fn admit(&self, owner: &str, name: &str, limit: u64) -> Result<bool, KitError> {
        if self.remembered(owner, name) {
            return Ok(true);
        }
        let mut conn = self.conn.clone();
        let admitted: i64 = ADMIT
            .key(self.owner_key(owner))
            .key(self.owners_key())
            .arg(name)
            .arg(limit)
            .arg(owner)
            .invoke_async(&mut conn)
            .await?;
        if admitted == 1 {
            self.remember(owner, name);
        }
        Ok(admitted == 1)
    }

    /// The names `owner` has.
    pub async fn names(&self, owner: &str) -> Result<Vec<String>, KitError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("SMEMBERS").arg(self.owner_key(owner)).query_async(&mut conn).await?)
    }

    /// The owners that have at least one name.
    pub async fn owners(&self) -> Result<Vec<String>, KitError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("SMEMBERS").arg(self.owners_key()).query_async(&mut conn).await?)
    }

    /// Of `owners`, those that have `name`, in one round trip.
    pub async fn owners_with(&self, owners: &[String], name: &str) -> Result<Vec<String>, KitError> {
        if owners.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for owner in owners {
            pipe.cmd("SISMEMBER").arg(self.owner_key(owner)).arg(name);
        }
        let mut conn = self.conn.clone();
        let has: Vec<bool> = pipe.query_async(&mut conn).await?;
        Ok(owners.iter().zip(has).filter(|(_, has)| *has).map(|(owner, _)| owner.clone()).collect())
    }
}
