//! Presence and typing: who is connected, and the signals (`presence`,
//! `typing` frames) sent to the members of a user's rooms.
//!
//! Invariants:
//! - a user is online while at least one of their connections (WebSocket
//!   or SSE, any instance) beats within `PRESENCE_TTL_SECS` (the kit's
//!   [`Presence`] registry); connections of API clients do not count;
//! - each online/offline transition is announced once: by the connection
//!   that opened first or closed last, or, when an instance died, by the
//!   one sweeper (of any instance) whose script claimed the expired
//!   connections;
//! - signals go to a room's signal channel (pub/sub only, never stored),
//!   which a `room:{id}` subscription merges into its feed; typing is
//!   throttled per (user, room) in Redis, so across instances too.

use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::{Keyspace, KitError, Presence, RedisConnection, Seen};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::service::{refused, Directory, Realtime, RealtimeError};
use crate::domain::Principal;

/// At most one typing signal per (user, room) in this window.
pub const TYPING_WINDOW: Duration = Duration::from_secs(2);
/// Expired connections one sweep claims.
const SWEEP_BATCH: usize = 500;
/// How long a user's last-seen time is kept after they were last seen.
const KEEP_SEEN: Duration = Duration::from_secs(30 * 86_400);

/// The Redis pub/sub channel of a room's signals: payloads are
/// `<sender user id> <frame JSON>`.
pub fn signal_channel(keys: &Keyspace, room: Uuid) -> String {
    keys.key(&["rt-signal", &room.to_string()])
}

/// Presence of users and the room signals. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PresenceTracker {
    registry: Presence,
    redis: RedisConnection,
    keys: Keyspace,
    directory: Arc<dyn Directory>,
    ttl: Duration,
    typing: Arc<redis::Script>,
}

/// Keeps one connection's user online; dropping it ends the connection's
/// presence (announcing offline when it was the user's last).
#[derive(Debug)]
pub struct PresenceGuard {
    tracker: PresenceTracker,
    user: Uuid,
    session: String,
    beating: CancellationToken,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.beating.cancel();
        let (tracker, user, session) = (self.tracker.clone(), self.user, std::mem::take(&mut self.session));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                match tracker.registry.leave(&user.to_string(), &session).await {
                    Ok(true) => tracker.announce(user, "offline").await,
                    Ok(false) => {}
                    // The sweeper announces it once the connection expires.
                    Err(error) => tracing::warn!(%error, "could not end a connection's presence"),
                }
            });
        }
    }
}

impl PresenceTracker {
    pub fn new(redis: RedisConnection, keys: Keyspace, directory: Arc<dyn Directory>, ttl: Duration) -> Self {
        let registry = Presence::new(redis.clone(), &keys, "presence");
        let typing = Arc::new(redis::Script::new(include_str!("typing.lua")));
        Self { registry, redis, keys, directory, ttl, typing }
    }

    fn beat_interval(&self) -> Duration {
        // Three beats per lifetime: one late beat does not end a presence.
        self.ttl / 3
    }

    /// Registers a live connection of `user` and keeps it beating until
    /// the guard is dropped.
    pub async fn connect(&self, user: Uuid) -> Result<PresenceGuard, KitError> {
        let session = Uuid::new_v4().simple().to_string();
        if self.registry.beat(&user.to_string(), &session, self.ttl).await? {
            self.announce(user, "online").await;
        }
        let beating = CancellationToken::new();
        let (tracker, stop, session_id) = (self.clone(), beating.clone(), session.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(tracker.beat_interval());
            every.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                match tracker.registry.beat(&user.to_string(), &session_id, tracker.ttl).await {
                    // Swept while this process stalled: online again.
                    Ok(true) => tracker.announce(user, "online").await,
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "a presence heartbeat failed"),
                }
            }
        });
        Ok(PresenceGuard { tracker: self.clone(), user, session, beating })
    }

    /// Sends a presence frame to each of the user's rooms.
    async fn announce(&self, user: Uuid, status: &str) {
        let rooms = match self.directory.rooms_of(user).await {
            Ok(rooms) => rooms,
            Err(error) => {
                tracing::warn!(%error, "could not list a user's rooms to announce their presence");
                return;
            }
        };
        if rooms.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for room in rooms {
            let frame = serde_json::json!({"type": "presence", "room": room, "user_id": user, "status": status});
            pipe.cmd("PUBLISH").arg(signal_channel(&self.keys, room)).arg(format!("{user} {frame}")).ignore();
        }
        let mut conn = self.redis.clone();
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(%error, "could not announce a presence change");
        }
    }

    /// Announces users whose every connection expired (their instance
    /// died), until `closing` fires. Every serving process runs one; the
    /// claim is one script, so each user is announced once.
    pub async fn sweep_until(&self, closing: CancellationToken) {
        let mut every = tokio::time::interval((self.ttl / 4).max(Duration::from_millis(250)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = closing.cancelled() => return,
                _ = every.tick() => {}
            }
            match self.registry.sweep(SWEEP_BATCH, KEEP_SEEN).await {
                Ok(gone) => {
                    for user in gone.iter().filter_map(|u| Uuid::parse_str(u).ok()) {
                        self.announce(user, "offline").await;
                    }
                }
                Err(error) => tracing::warn!(%error, "the presence sweep failed"),
            }
        }
    }

    /// Whether each user is online now, and when they were last seen.
    pub async fn status(&self, users: &[Uuid]) -> Result<Vec<Seen>, KitError> {
        let holders: Vec<String> = users.iter().map(Uuid::to_string).collect();
        self.registry.status(&holders).await
    }

    /// Forwards a typing signal of `user` (a member) to `room`, unless
    /// throttled; true when it was forwarded.
    pub async fn typing(&self, user: Uuid, room: Uuid) -> Result<bool, KitError> {
        let frame = serde_json::json!({"type": "typing", "room": room, "user_id": user});
        let throttle = self.keys.tagged(&format!("user:{user}"), &["typing", &room.to_string()]);
        let window_ms = TYPING_WINDOW.as_millis() as u64;
        let mut conn = self.redis.clone();
        let sent: i64 = self
            .typing
            .key(throttle)
            .arg(signal_channel(&self.keys, room))
            .arg(format!("{user} {frame}"))
            .arg(window_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(sent == 1)
    }
}

/// The gateway's presence and typing operations.
impl Realtime {
    /// Announces, until shutdown, users whose connections all expired
    /// (their instance died). Started by the serving process.
    pub fn start_presence_sweeper(&self) {
        let (presence, closing) = (self.presence.clone(), self.closing.clone());
        tokio::spawn(async move { presence.sweep_until(closing).await });
    }

    /// Marks a user's connection live until the guard is dropped; `None`
    /// for API clients (their connections are not a person's presence) and
    /// when Redis did not answer (logged; the connection works without).
    pub async fn connected(&self, principal: &Principal) -> Option<PresenceGuard> {
        let Principal::User(user) = principal else { return None };
        match self.presence.connect(user.user_id).await {
            Ok(guard) => Some(guard),
            Err(error) => {
                tracing::warn!(%error, "could not record a connection's presence");
                None
            }
        }
    }

    /// Forwards a typing signal to a room the caller (a user) is a member
    /// of; extra signals within the throttle window are dropped silently.
    pub async fn typing(&self, principal: &Principal, room: Uuid) -> Result<(), RealtimeError> {
        let Principal::User(user) = principal else {
            return Err(refused("forbidden", "rooms are for users' sessions"));
        };
        if !self.directory.is_member(room, user.user_id).await? {
            return Err(refused("not_found", "no such room"));
        }
        self.presence.typing(user.user_id, room).await?;
        Ok(())
    }

    /// Presence of those of `users` who share a room with the caller (a
    /// user); the others are left out.
    pub async fn presence_of(
        &self,
        caller: Uuid,
        users: Vec<Uuid>,
    ) -> Result<Vec<(Uuid, switchyard_kit::Seen)>, RealtimeError> {
        let visible = self.directory.sharing_a_room(caller, users.clone()).await?;
        let shown: Vec<Uuid> = users.into_iter().filter(|u| visible.contains(u)).collect();
        let seen = self.presence.status(&shown).await?;
        Ok(shown.into_iter().zip(seen).collect())
    }
}
