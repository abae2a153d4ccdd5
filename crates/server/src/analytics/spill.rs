//! Where batches wait while PostgreSQL is away: one capped event stream of
//! the kit (`EventStream` named `activity-spill`), one entry per batch (the
//! records as JSON), drained oldest first once PostgreSQL answers again —
//! by this process or, after a restart, the next one.
//!
//! Invariants: an entry is deleted only after its batch is committed, so a
//! crash between the two replays the batch, which the table's primary key
//! makes harmless; the stream is capped with `MAXLEN ~` (the oldest
//! batches go first when it is full), so a long outage cannot fill Redis.

use switchyard_kit::{EventStream, Keyspace, KitError, NewEvent, RedisConnection};

use super::ActivityRecord;

/// The stream's name; event streams of accounts are `<account>/<name>`, so
/// this one cannot collide with theirs.
const STREAM: &str = "activity-spill";
const KIND: &str = "batch";

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
    stream: EventStream,
}

/// One spilled batch: its entry id, and its records (`None` when the entry
/// cannot be read: it is deleted unread and counted as dropped).
pub type SpilledBatch = (String, Option<Vec<ActivityRecord>>);

impl Spill {
    pub fn new(redis: RedisConnection, keys: &Keyspace, maxlen: u64) -> Self {
        Self { stream: EventStream::new(redis, keys.clone(), STREAM).with_max_len(maxlen) }
    }

    /// The stream's Redis key.
    pub fn key(&self) -> String {
        self.stream.key()
    }

    /// Appends a batch (one XADD).
    pub async fn push(&self, batch: &[ActivityRecord]) -> Result<(), SpillError> {
        self.stream.publish(&NewEvent::new(KIND, &serde_json::to_string(batch)?)).await?;
        Ok(())
    }

    /// The oldest `count` batches, oldest first.
    pub async fn oldest(&self, count: usize) -> Result<Vec<SpilledBatch>, SpillError> {
        let events = self.stream.range(None, count as u64).await?;
        Ok(events
            .into_iter()
            .map(|event| {
                let batch = (event.kind == KIND).then(|| serde_json::from_str(&event.data).ok()).flatten();
                (event.id, batch)
            })
            .collect())
    }

    /// Deletes one entry (after its batch is committed).
    pub async fn delete(&self, id: &str) -> Result<(), SpillError> {
        self.stream.delete(&[id]).await?;
        Ok(())
    }

    /// Batches waiting.
    pub async fn waiting(&self) -> Result<u64, SpillError> {
        Ok(self.stream.stats().await?.length)
    }
}
