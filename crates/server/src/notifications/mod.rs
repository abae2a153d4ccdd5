//! A user's notification inbox: what the `notify` job stored for them,
//! listed newest first, unread ones counted, marked read one by one or all
//! at once. This module owns the `notifications` table; the job handler
//! stores through it.

pub mod routes;
pub mod service;
pub mod store;

pub use service::Notifications;
