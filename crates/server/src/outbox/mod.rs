//! The transactional outbox: how a capability publishes a business event
//! (`user.created`, `task.completed`, ...) that describes a PostgreSQL
//! change without ever lying about it. The producer writes the event with
//! [`enqueue`] on its own transaction, so the event exists if and only if
//! the change commits; the relay in `switchyard worker` ([`Relay`]) moves
//! committed rows to their kit `EventStream`, at least once, each carrying
//! its outbox id (a decimal string) as the event's idempotency key `key`,
//! so a consumer drops a repeat by that key.
//!
//! Invariants:
//! - order per stream and order key (what the event is about: a user, a
//!   room, a task) is id order is commit order: [`enqueue`] takes a
//!   transaction-scoped advisory lock on the pair before the id is drawn
//!   and holds it to the commit, so a later id of a key never commits
//!   before an earlier one (producers enqueue last in their transaction,
//!   one stream per transaction). Events of different keys are not ordered
//!   among themselves: a lock per stream would make every producer of the
//!   stream wait for the previous one's commit (one WAL flush at a time:
//!   a few hundred chat messages per second in all);
//! - one relay pass at a time across every worker: a pass runs under the
//!   transaction-scoped advisory lock [`relay::RELAY_LOCK`] (a worker that
//!   cannot take it skips the pass). `FOR UPDATE SKIP LOCKED` alone would
//!   let worker B claim rows 101-200 and append them while A still appends
//!   1-100; the lock makes passes follow each other, so each stream gets
//!   its rows in id order. Throughput is one pass's, which is batches of
//!   hundreds of rows in one pipeline per stream;
//! - a row is marked relayed in the transaction that claimed it, after its
//!   append: Redis down leaves it pending (retried with back-off), and a
//!   crash between the append and the commit appends it again (same key);
//! - the relay wakes on `NOTIFY` (sent by [`enqueue`], delivered only on
//!   commit) and otherwise polls every [`relay::POLL_EVERY`]; relayed rows
//!   are deleted after the retention (`OUTBOX_RETENTION_SECS`).

pub mod relay;
pub mod store;

pub use relay::{Pass, Relay, RelayError};
pub use store::{enqueue, CHANNEL};
