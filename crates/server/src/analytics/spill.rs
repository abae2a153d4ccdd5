//! Where batches wait while PostgreSQL is away: one capped Redis stream
//! (`<prefix>:activity:spill`), one entry per batch (field `batch`, the
//! records as JSON), drained oldest first once PostgreSQL answers again —
//! by this process or, after a restart, the next one.
//!
//! Invariants: an entry is deleted only after its batch is committed, so a
//! crash between the two replays the batch, which the table's primary key
//! makes harmless; the stream is capped with `MAXLEN ~` (the oldest
//! batches go first when it is full), so a long outage cannot fill Redis.

use switchyard_kit::{Keyspace, KitError, RedisConnection};

use super::ActivityRecord;

/// Why a spill operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error("a batch could not be encoded: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// The spill stream of one deployment.
#[derive(Debug, Clone)]
pub struct Spill {
    redis: RedisConnection,
    key: String,
    maxlen: u64,
}

/// One spilled batch: its entry id, and its records (`None` when the entry
/// cannot be read: it is deleted unread and counted as dropped).
pub type SpilledBatch = (String, Option<Vec<ActivityRecord>>);

impl Spill {
    pub fn new(redis: RedisConnection, keys: &Keyspace, maxlen: u64) -> Self {
        Self { redis, key: keys.key(&["activity", "spill"]), maxlen }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends a batch (one XADD).
    pub async fn push(&self, batch: &[ActivityRecord]) -> Result<(), SpillError> {
        let json = serde_json::to_string(batch)?;
        let mut conn = self.redis.clone();
        let _: String = redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*")
            .arg("batch")
            .arg(json)
            .query_async(&mut conn)
            .await
            .map_err(KitError::from)?;
        Ok(())
    }

    /// The oldest `count` batches, oldest first.
    pub async fn oldest(&self, count: usize) -> Result<Vec<SpilledBatch>, SpillError> {
        let mut conn = self.redis.clone();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(KitError::from)?;
        Ok(entries
            .into_iter()
            .map(|(id, fields)| {
                let batch = fields
                    .into_iter()
                    .find(|(name, _)| name == "batch")
                    .and_then(|(_, json)| serde_json::from_str(&json).ok());
                (id, batch)
            })
            .collect())
    }

    /// Deletes one entry (after its batch is committed).
    pub async fn delete(&self, id: &str) -> Result<(), SpillError> {
        let mut conn = self.redis.clone();
        let _: u64 = redis::cmd("XDEL").arg(&self.key).arg(id).query_async(&mut conn).await.map_err(KitError::from)?;
        Ok(())
    }

    /// Batches waiting.
    pub async fn waiting(&self) -> Result<u64, SpillError> {
        let mut conn = self.redis.clone();
        Ok(redis::cmd("XLEN").arg(&self.key).query_async(&mut conn).await.map_err(KitError::from)?)
    }
}
