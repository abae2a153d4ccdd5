//! System logs: an account's `info` and `error` lines published as
//! `system.info` / `system.error` events on its stream `logs`
//! (`<account>/logs`), where consumers (the log-processing group, an
//! operator's `consume`) pick them up. Nothing is stored in PostgreSQL, so
//! a log line goes straight to the stream (no outbox): it is answered
//! only once Redis has appended it.

pub mod routes;
pub mod service;

pub use service::SystemLogs;
