//! Activity tracking and usage analytics: every request under `/v1`
//! recorded without the request waiting on it, written to PostgreSQL in
//! batches (spilling to Redis, then memory, when the database is away),
//! counted live in Redis per day, rolled up into `usage_daily`, and
//! reported through cached endpoints and a live feed.
//!
//! Invariant: the request path does no I/O for recording; a record's id is
//! made once, on arrival, so no stage ever writes a request twice.

pub mod counters;
pub mod observer;
pub mod record;
pub mod report_cache;
pub mod report_routes;
pub mod report_store;
pub mod reports;
pub mod rollup;
pub mod usage;

pub use counters::Counters;
pub use observer::BatchObserver;
pub use record::{ActivityRecord, PrincipalKind};
pub use reports::Reports;
