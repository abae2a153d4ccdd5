//! The event log and the built-in consumer groups: `event-log` stores every
//! event of the operator streams (`sys:*`) and of the streams accounts mark
//! persistent in the `events` table, `task-processing` counts completed
//! tasks per assignee, `log-processing` counts `system.error` per account
//! and alerts past a rate. Each group acknowledges only after its work is
//! committed and its work is idempotent by (stream, id), so redelivery
//! (a reclaimed event of a dead consumer) never stores or counts twice.
//! Also `/v1/events:processed`, `/v1/events:stats` and the `consume`
//! command's loop.

pub mod consume;
pub mod groups;
pub mod routes;
pub mod service;
mod store;

pub use groups::GroupWorker;
pub use service::{EventLog, Group};
