//! Actions (seed 000): record what a user or client did. PostgreSQL is the
//! source of truth; the Redis side effects (audit stream, pub/sub, the
//! `actions` leaderboards, the last-action cache) follow in one pipelined
//! round trip, and the worker repairs any action whose side effects did not
//! happen, so the audit stream never silently misses one.

pub mod batch;
pub mod routes;
pub mod service;
pub mod store;

pub use service::Actions;
