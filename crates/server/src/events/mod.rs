//! Event streams over HTTP: append (one or a batch), replay from any point,
//! consumer groups (read with an optional wait, ack, reclaim what a crashed
//! consumer left, dead letters) and stats, over the kit's `EventStream`.
//! Streams belong to an account: a user and the API clients it owns share
//! them, and no account can name another's.

pub mod routes;
pub mod service;

pub use service::Events;
