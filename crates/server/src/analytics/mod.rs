//! Activity tracking and usage analytics: every request under `/v1`
//! recorded without the request waiting on it, written to PostgreSQL in
//! batches (spilling to Redis, then memory, when the database is away),
//! counted live in Redis per day, rolled up into `usage_daily`, and
//! reported through cached endpoints and a live feed.
//!
//! Invariant: the request path does no I/O for recording; a record's id is
//! made once, on arrival, so no stage ever writes a request twice.
//!
//! The recording half: `layer` (the tower layer on the request path),
//! `recorder` (the task that batches, writes, spills and drains), `spill`
//! (the Redis stream batches wait in while PostgreSQL is away), `store`
//! (the `activity` table's SQL; `copy_binary` encodes its batches),
//! `partitions` (daily partitions, created ahead and dropped past the
//! retention), `live` (the live feed), `activity` (the `Activity` service)
//! and `activity_routes`.
//!
//! The reports half: `counters` (the live per-day counters, a batch
//! observer), `usage` (latency buckets and percentiles), `rollup` (finished
//! days into `usage_daily`), `report_store`, `report_cache`, `reports` (the
//! `Reports` service) and `report_routes`.

pub mod activity;
pub mod activity_routes;
pub mod copy_binary;
pub mod counters;
pub mod layer;
pub mod live;
pub mod observer;
pub mod partitions;
pub mod record;
pub mod recorder;
pub mod report_cache;
pub mod report_routes;
pub mod report_store;
pub mod reports;
pub mod rollup;
pub mod spill;
pub mod store;
pub mod usage;

pub use activity::{Activity, ActivityError, ClientOwners};
pub use counters::Counters;
pub use observer::BatchObserver;
pub use record::{ActivityRecord, PrincipalKind};
pub use reports::Reports;
