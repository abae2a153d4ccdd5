//! Distributed locks over HTTP: acquire with a TTL (optionally waiting),
//! extend and release by the holder's token, with a fencing token on every
//! acquisition. Resources are namespaced per account (a user and its API
//! clients), so one account can neither see nor touch another's locks.

pub mod routes;
pub mod service;
pub use service::LockService;
