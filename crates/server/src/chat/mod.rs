//! Chat: group and direct rooms, their members, messages with history,
//! read receipts and unread counts. This module owns the `rooms`,
//! `room_members` and `messages` tables; live delivery, presence and
//! notifications go through its [`RoomFeed`] port.
//!
//! `store.rs` (the SQL), `service.rs` (`Chat`, and `Membership`, the
//! read-only view the gateway asks who is in which room), `routes.rs`
//! (`/v1/rooms...`). Rooms are for users' sessions: API clients are
//! refused (403).

pub mod routes;
pub mod service;
pub mod store;

pub use service::{Chat, ChatError, Membership, RoomFeed};
