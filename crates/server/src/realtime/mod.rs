//! The real-time gateway: `/v1/realtime/ws` (WebSocket), `/v1/realtime/sse`
//! (server-sent events) and the tickets browsers authenticate them with.
//!
//! `channel.rs` (channel names, stream ids), `service.rs` (`Realtime`:
//! tickets, authorization, publish with history — `publish.lua` —, feeds
//! that replay then go live), `session.rs` (one WebSocket connection: the
//! frame protocol, its subscriptions, its bounded outbound queue),
//! `presence.rs` (who is online, presence and typing signals to rooms —
//! `typing.lua`), `routes.rs`.
//!
//! Invariants:
//! - one Redis pub/sub connection per process (the kit's `PubSubHub`),
//!   fanned out in memory, so instances see each other's messages;
//! - a connection's outbound queue is bounded and never waited on: a
//!   slow reader is closed (1008), it delays no one else;
//! - a message's `id` is its position in its channel's history (a stream
//!   id): resuming after it replays exactly what came later, once, in order;
//! - a user is online while one of their connections beats (any
//!   instance); each online/offline change is announced once, to their
//!   rooms; presence and typing frames are pub/sub only, never stored;
//! - capabilities are reached through the [`Directory`] port, never
//!   imported.

mod channel;
mod presence;
pub mod routes;
mod service;
mod session;

pub use channel::{Channel, StreamId};
pub use presence::{PresenceGuard, PresenceTracker, TYPING_WINDOW};
pub use service::{Access, Directory, Feed, FeedItem, Realtime, RealtimeError, TICKET_TTL};
