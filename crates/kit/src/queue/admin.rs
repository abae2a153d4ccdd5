//! Operating a queue rather than its jobs: what it holds, its dead-letter
//! set, pausing it, and the registry of queue names workers and dashboards
//! discover queues from.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{stats_period_now, Queue, RETRY, STATS_LIFETIME_MS, STATS_PERIOD_SECS};
use crate::{Keyspace, KitError, RedisConnection};

static PURGE_DEAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("purge_dead.lua")));

/// A queue at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueOverview {
    pub queued: u64,
    /// Delayed jobs not yet due (retry-waiting ones are in `retrying`).
    pub scheduled: u64,
    /// Failed attempts waiting for their back-off to retry.
    pub retrying: u64,
    pub running: u64,
    pub dead: u64,
    pub paused: bool,
    /// How long the job waiting longest has been ready (the queue's lag).
    pub oldest_queued_age: Option<Duration>,
    pub processed_last_minute: u64,
    pub failed_last_minute: u64,
}

/// A job in the dead-letter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    pub id: String,
    pub died_at_ms: u64,
    /// The job's record (type, owner, attempts, last_error, errors, ...);
    /// empty if it expired meanwhile.
    pub record: HashMap<String, String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn registry_key(keys: &Keyspace) -> String {
    keys.key(&["queues"])
}

impl Queue {
    /// Adds this queue to the registry of queue names (idempotent). A name
    /// new to the registry is also published on
    /// [`Queue::registry_channel`], so workers serving every queue start on
    /// it at once instead of at their next look at the registry.
    pub async fn register(&self) -> Result<(), KitError> {
        let mut conn = self.conn.clone();
        let added: u64 =
            redis::cmd("SADD").arg(registry_key(&self.keys)).arg(&self.name).query_async(&mut conn).await?;
        if added > 0 {
            let _: u64 = redis::cmd("PUBLISH")
                .arg(Self::registry_channel(&self.keys))
                .arg(&self.name)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// The pub/sub channel new queue names are announced on.
    pub fn registry_channel(keys: &Keyspace) -> String {
        keys.key(&["queues", "registered"])
    }

    /// Every registered queue name, sorted.
    pub async fn registered(conn: &RedisConnection, keys: &Keyspace) -> Result<Vec<String>, KitError> {
        let mut conn = conn.clone();
        let mut names: Vec<String> = redis::cmd("SMEMBERS").arg(registry_key(keys)).query_async(&mut conn).await?;
        names.sort();
        Ok(names)
    }

    /// Counts by state, lag and recent throughput, in one round trip.
    pub async fn overview(&self) -> Result<QueueOverview, KitError> {
        let period = stats_period_now();
        let periods = STATS_LIFETIME_MS / 1000 / STATS_PERIOD_SECS / 2;
        let recent = |what: &str| -> Vec<String> {
            (0..periods).map(|back| self.stats_key_at(what, period.saturating_sub(back))).collect()
        };
        let mut conn = self.conn.clone();
        type Reply = (u64, u64, Option<i64>, u64, u64, Vec<(String, f64)>, bool, Vec<Option<u64>>, Vec<Option<u64>>);
        let (queued, scheduled, retrying, running, dead, oldest, paused, processed, failed): Reply = redis::pipe()
            .zcard(self.key("ready"))
            .zcard(self.key("scheduled"))
            .get(self.key("retrying"))
            .zcard(self.key("active"))
            .zcard(self.key("dead"))
            .cmd("ZRANGE")
            .arg(self.key("ready_at"))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .exists(self.key("paused"))
            .mget(recent("processed"))
            .mget(recent("failed"))
            .query_async(&mut conn)
            .await?;
        let retrying = u64::try_from(retrying.unwrap_or(0)).unwrap_or(0);
        let oldest_queued_age = oldest.first().map(|(_, since)| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let since = since.max(0.0) as u64;
            Duration::from_millis(now_ms().saturating_sub(since))
        });
        Ok(QueueOverview {
            queued,
            scheduled: scheduled.saturating_sub(retrying),
            retrying,
            running,
            dead,
            paused,
            oldest_queued_age,
            processed_last_minute: processed.into_iter().flatten().sum(),
            failed_last_minute: failed.into_iter().flatten().sum(),
        })
    }

    /// Dead jobs, oldest death first, from position `offset`.
    pub async fn dead(&self, offset: u64, limit: u64) -> Result<Vec<DeadJob>, KitError> {
        let mut conn = self.conn.clone();
        let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.key("dead"))
            .arg(offset)
            .arg(offset + limit.max(1) - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &ids {
            pipe.hgetall(self.job_key(id));
        }
        let records: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let dead = ids
            .into_iter()
            .zip(records)
            .map(|((id, died_at), record)| DeadJob { id, died_at_ms: died_at.max(0.0) as u64, record })
            .collect();
        Ok(dead)
    }

    /// Requeues the listed dead jobs (each atomically); returns how many
    /// were dead and are queued again.
    pub async fn retry_dead(&self, ids: &[String]) -> Result<u64, KitError> {
        let mut requeued = 0;
        for chunk in ids.chunks(500) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.invoke_script(&self.retry_invocation(id));
            }
            let outcomes: Vec<i64> = crate::connection::query_pipeline(&self.conn, &pipe, &[&RETRY]).await?;
            requeued += outcomes.iter().filter(|o| **o == 1).count() as u64;
        }
        Ok(requeued)
    }

    /// Requeues every dead job; returns how many.
    pub async fn retry_all_dead(&self) -> Result<u64, KitError> {
        let mut requeued = 0;
        loop {
            let mut conn = self.conn.clone();
            let ids: Vec<String> =
                redis::cmd("ZRANGE").arg(self.key("dead")).arg(0).arg(499).query_async(&mut conn).await?;
            if ids.is_empty() {
                return Ok(requeued);
            }
            let done = self.retry_dead(&ids).await?;
            if done == 0 {
                // Entries without a dead record: drop them so the loop ends.
                let _: u64 = redis::cmd("ZREM").arg(self.key("dead")).arg(&ids).query_async(&mut conn).await?;
            }
            requeued += done;
        }
    }

    /// Deletes every dead job; returns how many.
    pub async fn purge_dead(&self) -> Result<u64, KitError> {
        let mut purged = 0;
        loop {
            let mut conn = self.conn.clone();
            let n: u64 =
                PURGE_DEAD.key(self.key("dead")).arg(self.job_prefix()).arg(1000).invoke_async(&mut conn).await?;
            purged += n;
            if n == 0 {
                return Ok(purged);
            }
        }
    }

    /// Stops workers leasing this queue's jobs (enqueueing goes on).
    pub async fn pause(&self) -> Result<(), KitError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET").arg(self.key("paused")).arg(1).query_async(&mut conn).await?;
        Ok(())
    }

    /// Lets workers lease again and wakes one that is waiting.
    pub async fn resume(&self) -> Result<(), KitError> {
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .del(self.key("paused"))
            .ignore()
            .lpush(self.key("signal"), 1)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
