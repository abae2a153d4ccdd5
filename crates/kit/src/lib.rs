//! switchyard-kit: the Redis patterns switchyard is built from, as a library
//! with no HTTP and no SQL.
//!
//! The keyed primitives — [`Locks`], [`Attempts`], [`RateLimiter`],
//! [`Leaderboards`], [`Queue`], [`Cache`], [`EventStream`] and
//! [`Heartbeats`] — are small types over a [`RedisConnection`] and a
//! [`Keyspace`]; the connection hides whether Redis is a single server or a
//! cluster, and the keyspace gives every key the deployment's prefix and a
//! hash tag, so the same code runs unchanged on Redis Cluster. Two need
//! connections of their own, opened from a [`RedisConfig`]: the
//! [`PubSubHub`] (one pub/sub connection per process, fanned out to local
//! listeners) and [`BlockingConnections`] (a bounded pool for blocking
//! commands, which would stall the shared connection).
//!
//! Invariants:
//! - kit never depends on axum, sqlx or anything HTTP-shaped;
//! - every key a primitive touches is built by [`Keyspace`];
//! - every multi-key operation uses keys that share one hash tag.

pub mod attempts;
pub mod blocking;
pub mod cache;
pub mod connection;
mod duration;
pub mod error;
pub mod heartbeat;
pub mod keys;
pub mod leaderboard;
pub mod lock;
pub mod pubsub;
pub mod queue;
pub mod quota;
pub mod ratelimit;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;

pub use attempts::Attempts;
pub use blocking::{BlockingConnection, BlockingConnections};
pub use cache::{Cache, CacheStatus, KeyTracking, Missed};
pub use connection::{RedisConfig, RedisConnection, RedisTopology};
pub use error::KitError;
pub use heartbeat::{Heartbeats, Presence, Seen};
pub use keys::{hash_slot, Keyspace};
pub use leaderboard::{Leaderboards, ScoreMode, Standing};
pub use lock::{Lease, Locks};
pub use pubsub::{HubMessage, PubSubHub, Subscription};
pub use queue::{Backoff, DeadJob, Failed, Fetched, Leased, NewJob, Queue, QueueOverview};
pub use quota::Quota;
pub use ratelimit::{Check, Decision, Limit, RateLimiter, Verdict};
pub use stream::{DeadEvent, Delivery, Event, EventStream, GroupStats, NewEvent, Reclaimed, StartAt, StreamStats};
