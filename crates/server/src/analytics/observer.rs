//! What else happens to a batch of records besides being written: the live
//! per-day counters in Redis and the live activity feed. The recorder calls
//! every observer once per batch, when the batch is formed and before it is
//! written, so a write that is retried or spilled never counts twice.
//!
//! Invariant: an observer does its Redis work for the whole batch in one
//! round trip (a pipeline or one publish), never one per record; an
//! observer's failure is logged and counted by the recorder and never
//! holds up the write.

use futures::future::BoxFuture;
use switchyard_kit::KitError;

use super::ActivityRecord;

/// Sees each batch of records once.
pub trait BatchObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics labels (`counters`, `live`).
    fn name(&self) -> &'static str;

    fn observe<'a>(&'a self, batch: &'a [ActivityRecord]) -> BoxFuture<'a, Result<(), KitError>>;
}
