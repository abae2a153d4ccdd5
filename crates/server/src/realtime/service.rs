//! `Realtime`: tickets, channel authorization, publishing with history, and
//! the feed of one subscription (history, then live, no gap, no duplicate).
//!
//! Invariants:
//! - a ticket is stored only as its SHA-256 and redeemed with GETDEL, so
//!   it works once, and for at most [`TICKET_TTL`];
//! - a publish on a channel with history is one script (XADD, trim by
//!   length and age, PUBLISH of the stored id), so the id a live listener
//!   sees is the id a resume finds;
//! - a feed subscribes to the live channel before it reads the history,
//!   and drops live entries at or before the last replayed id: nothing
//!   published meanwhile is lost or delivered twice;
//! - a room feed ends right after its subscriber's own `member.left`:
//!   a removed member reads nothing more of the room;
//! - `actions` never shows another account's actions, `activity` is for
//!   operators only, `room:*` for the room's members (through the
//!   [`Directory`] port; capabilities do not import one another).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use switchyard_kit::{HubMessage, Keyspace, KitError, PubSubHub, RedisConnection, Subscription};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::channel::{Channel, StreamId};
use super::presence::{signal_channel, PresenceTracker};
use crate::config::RealtimeSettings;
use crate::domain::{AuthenticatedClient, AuthenticatedUser, Principal, Role};

/// How long a ticket may wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// What the gateway needs of other capabilities; `app::adapters`
/// implements it.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// The pub/sub channel the action log publishes every action on.
    fn actions_channel(&self) -> String;
    /// The pub/sub channel the live activity feed publishes batches on.
    fn activity_channel(&self) -> String;
    /// The pub/sub channel a user's notifications are published on.
    fn notifications_channel(&self, user_id: Uuid) -> String;
    /// Whether `account` owns the API client `client_id`.
    fn owns_client(&self, account: Uuid, client_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// Whether `user_id` is a member of the room.
    fn is_member(&self, room_id: Uuid, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// The rooms `user_id` is a member of (whose members see their presence).
    fn rooms_of(&self, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>>;
    /// Those of `others` who share a room with `user_id`.
    fn sharing_a_room(&self, user_id: Uuid, others: Vec<Uuid>) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>>;
}

#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// The ticket is unknown, expired or used.
    #[error("invalid ticket")]
    BadTicket,
    /// The caller may not use the channel this way (`code` for the frame).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// `since` is older than the channel's history.
    #[error("the history no longer reaches back to since: reload, then subscribe without it")]
    HistoryGone,
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<redis::RedisError> for RealtimeError {
    fn from(error: redis::RedisError) -> Self {
        RealtimeError::Redis(error.into())
    }
}

pub(super) fn refused(code: &'static str, message: impl Into<String>) -> RealtimeError {
    RealtimeError::Refused { code, message: message.into() }
}

/// What a ticket stands for: the caller who asked for it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Holder {
    User { user_id: Uuid, session_id: Uuid, admin: bool },
    Client(AuthenticatedClient),
}

/// A message to publish on a channel with history.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub channel: Channel,
    pub event: String,
    pub data: serde_json::Value,
}

/// What a connection wants to do with a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Subscribe,
    Publish,
}

/// The gateway's service. See the module documentation.
#[derive(Debug)]
pub struct Realtime {
    redis: RedisConnection,
    hub: PubSubHub,
    keys: Keyspace,
    settings: RealtimeSettings,
    pub(super) directory: Arc<dyn Directory>,
    pub(super) closing: CancellationToken,
    publish: redis::Script,
    pub(super) presence: PresenceTracker,
}

impl Realtime {
    pub fn new(
        redis: RedisConnection,
        hub: PubSubHub,
        keys: Keyspace,
        settings: RealtimeSettings,
        directory: Arc<dyn Directory>,
        closing: CancellationToken,
    ) -> Self {
        let publish = redis::Script::new(include_str!("publish.lua"));
        let presence = PresenceTracker::new(redis.clone(), keys.clone(), directory.clone(), settings.presence_ttl);
        Self { redis, hub, keys, settings, directory, closing, publish, presence }
    }

    pub fn settings(&self) -> &RealtimeSettings {
        &self.settings
    }

    /// Presence of users and room signals (typing).
    pub fn presence(&self) -> &PresenceTracker {
        &self.presence
    }

    /// Cancelled when the server starts shutting down: connections close then.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    fn ticket_key(&self, ticket: &str) -> String {
        self.keys.key(&["rt-ticket", &crate::secrets::sha256_hex(ticket)])
    }

    /// A single-use ticket standing for `principal`, valid for [`TICKET_TTL`].
    pub async fn issue_ticket(&self, principal: &Principal) -> Result<String, RealtimeError> {
        let holder = match principal {
            Principal::User(user) => {
                Holder::User { user_id: user.user_id, session_id: user.session_id, admin: user.role == Role::Admin }
            }
            Principal::Client(client) => Holder::Client(client.clone()),
        };
        let ticket = format!("rtt_{}", crate::secrets::random_secret());
        let json = serde_json::to_string(&holder).map_err(anyhow::Error::from)?;
        let mut conn = self.redis.clone();
        let _: () = redis::cmd("SET")
            .arg(self.ticket_key(&ticket))
            .arg(json)
            .arg("EX")
            .arg(TICKET_TTL.as_secs())
            .query_async(&mut conn)
            .await?;
        Ok(ticket)
    }

    /// The caller a ticket stands for; the ticket is spent.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Principal, RealtimeError> {
        if ticket.len() > 128 {
            return Err(RealtimeError::BadTicket);
        }
        let mut conn = self.redis.clone();
        let json: Option<String> = redis::cmd("GETDEL").arg(self.ticket_key(ticket)).query_async(&mut conn).await?;
        let holder: Holder =
            serde_json::from_str(&json.ok_or(RealtimeError::BadTicket)?).map_err(|_| RealtimeError::BadTicket)?;
        Ok(match holder {
            Holder::User { user_id, session_id, admin } => Principal::User(AuthenticatedUser {
                user_id,
                session_id,
                role: if admin { Role::Admin } else { Role::User },
            }),
            Holder::Client(client) => Principal::Client(client),
        })
    }

    /// Checks that `principal` may `access` the channel.
    pub async fn authorize(
        &self,
        principal: &Principal,
        channel: &Channel,
        access: Access,
    ) -> Result<(), RealtimeError> {
        // A user's own channel and rooms are the user's sessions', not
        // their API clients' (a client's account is its owner's id).
        let user = match principal {
            Principal::User(user) => Some(user.user_id),
            Principal::Client(_) => None,
        };
        match (channel, access) {
            (Channel::User(id), Access::Subscribe) if Some(*id) == user => Ok(()),
            (Channel::User(_), Access::Subscribe) => Err(refused("forbidden", "a user channel is its user's only")),
            (Channel::User(_), Access::Publish) => Err(refused("read_only", "user channels are read-only")),
            (Channel::App(_), _) => Ok(()),
            (Channel::Actions, Access::Subscribe) => Ok(()),
            (Channel::Activity, Access::Subscribe) if principal.is_operator() => Ok(()),
            (Channel::Activity, Access::Subscribe) => Err(refused("forbidden", "activity is for admins")),
            (Channel::Actions | Channel::Activity, Access::Publish) => {
                Err(refused("read_only", "this channel is read-only"))
            }
            (Channel::Room(room), access) => {
                let Some(user) = user else {
                    return Err(refused("forbidden", "rooms are for users' sessions"));
                };
                // Not a member: as if the room did not exist (a 404 elsewhere).
                if !self.directory.is_member(*room, user).await? {
                    return Err(refused("not_found", "no such room"));
                }
                match access {
                    Access::Subscribe => Ok(()),
                    Access::Publish => {
                        Err(refused("read_only", "post room messages with POST /v1/rooms/{id}/messages"))
                    }
                }
            }
        }
    }

    /// The Redis pub/sub channel and history stream of a channel with
    /// history, scoped by the caller's account where it is the account's.
    fn names(&self, account: Uuid, channel: &Channel) -> (String, String) {
        let scoped = match channel {
            Channel::App(name) => format!("app:{account}:{name}"),
            other => other.to_string(),
        };
        (self.keys.key(&["rt", &scoped]), self.keys.tagged(&format!("rt:{scoped}"), &["history"]))
    }

    /// Publishes several messages of one caller in one round trip, in
    /// order; answers each one's id or why it was refused. A refused one
    /// does not hold up the others.
    pub async fn publish_many(
        &self,
        principal: &Principal,
        messages: &[Outgoing],
    ) -> Vec<Result<StreamId, RealtimeError>> {
        let mut verdicts = Vec::with_capacity(messages.len());
        for message in messages {
            verdicts.push(self.authorize(principal, &message.channel, Access::Publish).await);
        }
        let allowed: Vec<&Outgoing> =
            messages.iter().zip(&verdicts).filter(|(_, verdict)| verdict.is_ok()).map(|(m, _)| m).collect();
        let mut published = self.append(account_of(principal), &allowed).await.into_iter();
        verdicts
            .into_iter()
            .map(|verdict| match verdict {
                Ok(()) => published.next().unwrap_or_else(|| Err(anyhow::anyhow!("a publish went unanswered").into())),
                Err(error) => Err(error),
            })
            .collect()
    }

    /// Publishes on a channel with history (for other capabilities through
    /// the composition root: room messages, read receipts). `account`
    /// scopes `app:*` channels.
    pub async fn publish_unchecked(
        &self,
        account: Uuid,
        channel: &Channel,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<StreamId, RealtimeError> {
        let message = Outgoing { channel: channel.clone(), event: event.to_owned(), data: data.clone() };
        self.append(account, &[&message])
            .await
            .pop()
            .unwrap_or_else(|| Err(anyhow::anyhow!("nothing published").into()))
    }

    /// Runs the publish script once per message, all in one pipeline (so in
    /// order); a script the server does not have yet is loaded and the
    /// messages it refused are sent again, still in order.
    async fn append(&self, account: Uuid, messages: &[&Outgoing]) -> Vec<Result<StreamId, RealtimeError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let age_ms = self.settings.history_age.as_millis() as u64;
        let min_id = (chrono::Utc::now().timestamp_millis().max(0) as u64).saturating_sub(age_ms);
        let mut invocations = Vec::with_capacity(messages.len());
        for message in messages {
            let (pubsub, stream) = self.names(account, &message.channel);
            let body = serde_json::json!({"event": message.event, "data": message.data}).to_string();
            let mut invocation = self.publish.key(stream);
            let name = serde_json::Value::from(message.channel.to_string()).to_string();
            invocation.arg(pubsub).arg(body).arg(self.settings.history_max).arg(min_id).arg(age_ms).arg(name);
            invocations.push(invocation);
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for invocation in &invocations {
            pipe.invoke_script(invocation);
        }
        let mut conn = self.redis.clone();
        let answers: Vec<redis::RedisResult<String>> = match pipe.query_async(&mut conn).await {
            Ok(answers) => answers,
            Err(error) => return messages.iter().map(|_| Err(RealtimeError::from(error.clone()))).collect(),
        };
        let mut results = Vec::with_capacity(answers.len());
        for (answer, invocation) in answers.into_iter().zip(&invocations) {
            let answer = match answer {
                // `invoke_async` loads the script (on the node that holds
                // the key) and runs it.
                Err(error) if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    invocation.invoke_async(&mut conn).await
                }
                answer => answer,
            };
            results.push(answer.map_err(RealtimeError::from).and_then(|id| {
                StreamId::parse(&id).ok_or_else(|| anyhow::anyhow!("XADD answered a malformed id").into())
            }));
        }
        results
    }

    /// Opens a feed of `channel` for `principal` (after [`Self::authorize`]),
    /// replaying what came after `since` first.
    pub async fn open(
        &self,
        principal: &Principal,
        channel: &Channel,
        since: Option<StreamId>,
    ) -> Result<Feed, RealtimeError> {
        self.authorize(principal, channel, Access::Subscribe).await?;
        let account = account_of(principal);
        let name = channel.to_string();
        let (kind, live, extra) = match channel {
            Channel::Actions => {
                let live = self.hub.subscribe(&self.directory.actions_channel()).await?;
                (Kind::Actions { account, owned: HashMap::new() }, live, None)
            }
            Channel::Activity => (Kind::Activity, self.hub.subscribe(&self.directory.activity_channel()).await?, None),
            _ => {
                let (pubsub, _) = self.names(account, channel);
                // Live first: what is published while the history is read
                // waits in the subscription.
                let live = self.hub.subscribe(&pubsub).await?;
                let extra = match channel {
                    Channel::User(id) => Some((
                        self.hub.subscribe(&self.directory.notifications_channel(*id)).await?,
                        Extra::Notifications,
                    )),
                    Channel::Room(room) => Some((
                        self.hub.subscribe(&signal_channel(&self.keys, *room)).await?,
                        Extra::RoomSignals { me: format!("{account} ") },
                    )),
                    _ => None,
                };
                (Kind::History, live, extra)
            }
        };
        let mut feed = Feed {
            channel: name,
            replay: VecDeque::new(),
            seam: None,
            live,
            extra,
            kind,
            directory: self.directory.clone(),
            member: match channel {
                Channel::Room(_) => Some(account),
                _ => None,
            },
            revoked: false,
        };
        if let Some(since) = since {
            if !channel.has_history() {
                return Err(refused("no_history", "this channel keeps no history: subscribe without since"));
            }
            let (_, stream) = self.names(account, channel);
            self.replay(&stream, since, &mut feed).await?;
        }
        Ok(feed)
    }

    /// Reads the history after `since` into the feed, or `HistoryGone`.
    async fn replay(&self, stream: &str, since: StreamId, feed: &mut Feed) -> Result<(), RealtimeError> {
        let mut conn = self.redis.clone();
        // One round trip: the entries after `since`, and what the stream
        // still holds (its first entry and whether anything was trimmed).
        let (entries, info): (Vec<StreamEntry>, redis::Value) = redis::pipe()
            .cmd("XRANGE")
            .arg(stream)
            .arg(format!("({since}"))
            .arg("+")
            .cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .query_async(&mut conn)
            .await
            .or_else(|error: redis::RedisError| {
                // XINFO on a missing stream is an error: nothing is kept.
                if error.to_string().contains("no such key") {
                    Ok((Vec::new(), redis::Value::Nil))
                } else {
                    Err(error)
                }
            })?;
        let (first, added, length) = stream_info(&info);
        let age_ms = self.settings.history_age.as_millis() as u64;
        let horizon = (chrono::Utc::now().timestamp_millis().max(0) as u64).saturating_sub(age_ms);
        let gone = match first {
            // Nothing kept: only "from the very start" is still whole.
            None => since != StreamId(0, 0),
            // Entries after `since` were trimmed, or the stream expired
            // (idle past the age limit) and started again.
            Some(first) => since < first && (added > length || (since != StreamId(0, 0) && since.0 < horizon)),
        };
        if gone {
            return Err(RealtimeError::HistoryGone);
        }
        for (id, fields) in entries {
            let Some(body) = fields.into_iter().find(|(f, _)| f == "m").map(|(_, v)| v) else { continue };
            let Some(parsed) = StreamId::parse(&id) else { continue };
            feed.replay.push_back(message_frame(&feed.channel, Some(&id), &body).into());
            feed.seam = Some(parsed);
        }
        if feed.seam.is_none() {
            // Nothing after `since`: live entries at or before it are old.
            feed.seam = Some(since);
        }
        Ok(())
    }
}

/// A stream entry as XRANGE answers it: id and field-value pairs.
type StreamEntry = (String, Vec<(String, String)>);

/// The first kept id, entries ever added, and entries kept, from XINFO STREAM.
fn stream_info(info: &redis::Value) -> (Option<StreamId>, u64, u64) {
    let mut first = None;
    let (mut added, mut length) = (0, 0);
    let pairs: Vec<redis::Value> = match info {
        redis::Value::Array(items) => items.clone(),
        redis::Value::Map(map) => map.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        _ => return (None, 0, 0),
    };
    for pair in pairs.chunks(2) {
        let [key, value] = pair else { continue };
        let Ok(key) = redis::from_redis_value::<String>(key.clone()) else { continue };
        match key.as_str() {
            "entries-added" => added = redis::from_redis_value(value.clone()).unwrap_or(0),
            "length" => length = redis::from_redis_value(value.clone()).unwrap_or(0),
            "first-entry" => {
                if let redis::Value::Array(entry) = value {
                    first = entry
                        .first()
                        .and_then(|id| redis::from_redis_value::<String>(id.clone()).ok())
                        .and_then(|id| StreamId::parse(&id));
                }
            }
            _ => {}
        }
    }
    (first, added, length)
}

pub fn account_of(principal: &Principal) -> Uuid {
    principal.account().id()
}

/// A `message` frame: `body` is the stored `{"event":..,"data":..}` object.
fn message_frame(channel: &str, id: Option<&str>, body: &str) -> String {
    let channel = serde_json::to_string(channel).unwrap_or_default();
    let id = id.map_or_else(|| "null".to_owned(), |id| format!("\"{id}\""));
    // `body` is a JSON object this module wrote: splice its members in.
    let members = body.trim().strip_prefix('{').unwrap_or("}");
    if members.trim_start().starts_with('}') {
        format!(r#"{{"type":"message","channel":{channel},"id":{id}}}"#)
    } else {
        format!(r#"{{"type":"message","channel":{channel},"id":{id},{members}"#)
    }
}

fn event_frame(channel: &str, event: &str, data: &str) -> String {
    let body = format!(r#"{{"event":{},"data":{data}}}"#, serde_json::to_string(event).unwrap_or_default());
    message_frame(channel, None, &body)
}

#[derive(Debug)]
enum Kind {
    /// A channel with history: live payloads are `<id> <body>`.
    History,
    /// The action log: keep the account's actions.
    Actions {
        account: Uuid,
        owned: HashMap<Uuid, bool>,
    },
    Activity,
}

/// What a feed's second source carries.
#[derive(Debug)]
enum Extra {
    /// A user's notifications, as `notification` events.
    Notifications,
    /// A room's presence and typing frames, ready to send; `me` is the
    /// subscriber's `<user id> ` prefix.
    RoomSignals { me: String },
}

/// What a feed yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// A `message` frame, and its id when the channel has history.
    Frame { json: ByteString, id: Option<StreamId> },
    /// The reader fell this far behind the hub: the connection must go.
    Lagged(u64),
    /// The subscriber may no longer read the channel (removed from the
    /// room): the subscription ends, saying why.
    Revoked(&'static str),
}

/// One subscription of one connection. See [`Realtime::open`].
#[derive(Debug)]
pub struct Feed {
    channel: String,
    replay: VecDeque<ByteString>,
    /// Live entries at or before this id were replayed (or predate `since`).
    seam: Option<StreamId>,
    live: Subscription,
    /// A second source merged in: a user's notifications, a room's signals.
    extra: Option<(Subscription, Extra)>,
    kind: Kind,
    directory: Arc<dyn Directory>,
    /// On a room: the subscribing member, whose removal ends the feed.
    member: Option<Uuid>,
    /// The subscriber was removed from the room: nothing more is read.
    revoked: bool,
}

/// Why a room feed ends when its subscriber is removed.
pub const REMOVED: &str = "you were removed from the room";

impl Feed {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next frame; `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<FeedItem> {
        if self.revoked {
            return Some(FeedItem::Revoked(REMOVED));
        }
        if let Some(json) = self.replay.pop_front() {
            // Replayed ids are in the frame; the caller needs only live ones.
            return Some(FeedItem::Frame { json, id: None });
        }
        loop {
            let (message, from_extra) = match &mut self.extra {
                Some((extra, _)) => tokio::select! {
                    m = self.live.next() => (m?, false),
                    m = extra.next() => (m?, true),
                },
                None => (self.live.next().await?, false),
            };
            let payload = match message {
                HubMessage::Lagged(missed) => return Some(FeedItem::Lagged(missed)),
                HubMessage::Message(payload) => payload,
            };
            if from_extra {
                match self.extra.as_ref().map(|(_, kind)| kind) {
                    Some(Extra::Notifications) => {
                        let frame = event_frame(&self.channel, "notification", &payload);
                        return Some(FeedItem::Frame { json: frame.into(), id: None });
                    }
                    Some(Extra::RoomSignals { me }) => {
                        // `<sender> <frame>`: a member's own typing is not echoed.
                        let Some((_, frame)) = payload.split_once(' ') else { continue };
                        if payload.starts_with(me.as_str()) && frame.contains(r#""type":"typing""#) {
                            continue;
                        }
                        return Some(FeedItem::Frame { json: payload.slice_ref(frame), id: None });
                    }
                    None => continue,
                }
            }
            if let Some(item) = self.convert(&payload).await {
                return Some(item);
            }
        }
    }

    async fn convert(&mut self, payload: &ByteString) -> Option<FeedItem> {
        match &mut self.kind {
            Kind::History => {
                let (id, frame) = payload.split_once(' ')?;
                let parsed = StreamId::parse(id)?;
                if self.seam.is_some_and(|seam| parsed <= seam) {
                    return None;
                }
                // The publish script built the frame: every subscriber
                // shares it. A bare body comes from a server of an
                // earlier version during a rolling upgrade.
                let json = if frame.starts_with(r#"{"type":"message""#) {
                    payload.slice_ref(frame)
                } else {
                    message_frame(&self.channel, Some(id), frame).into()
                };
                if let Some(member) = self.member {
                    // The member sees their own removal, and nothing after it.
                    self.revoked = removes(&json, member);
                }
                Some(FeedItem::Frame { json, id: Some(parsed) })
            }
            Kind::Activity => {
                Some(FeedItem::Frame { json: event_frame(&self.channel, "activity", payload).into(), id: None })
            }
            Kind::Actions { account, owned } => {
                #[derive(Deserialize)]
                struct Actor {
                    actor_kind: String,
                    actor_id: Uuid,
                }
                let actor: Actor = serde_json::from_str(payload).ok()?;
                let mine = match actor.actor_kind.as_str() {
                    "user" => actor.actor_id == *account,
                    "client" => match owned.get(&actor.actor_id) {
                        Some(mine) => *mine,
                        None => {
                            let mine = self.directory.owns_client(*account, actor.actor_id).await.ok()?;
                            if owned.len() < 1024 {
                                owned.insert(actor.actor_id, mine);
                            }
                            mine
                        }
                    },
                    _ => false,
                };
                mine.then(|| FeedItem::Frame { json: event_frame(&self.channel, "action", payload).into(), id: None })
            }
        }
    }
}

/// Whether a room's `message` frame is the `member.left` of `member`.
fn removes(frame: &str, member: Uuid) -> bool {
    if !frame.contains(r#""event":"member.left""#) {
        return false;
    }
    let parsed: serde_json::Value = serde_json::from_str(frame).unwrap_or_default();
    parsed["event"] == "member.left" && parsed["data"]["user_id"] == member.to_string().as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_members_own_removal_revokes() {
        let me = Uuid::new_v4();
        let left = |user: Uuid| {
            format!(
                r#"{{"type":"message","channel":"room:x","id":"1-0","event":"member.left","data":{{"room_id":"r","user_id":"{user}"}}}}"#
            )
        };
        assert!(removes(&left(me), me));
        assert!(!removes(&left(Uuid::new_v4()), me));
        let joined = left(me).replace("member.left", "member.joined");
        assert!(!removes(&joined, me));
        let text = format!(
            r#"{{"type":"message","event":"message.created","data":{{"text":"\"event\":\"member.left\" {me}"}}}}"#
        );
        assert!(!removes(&text, me));
    }

    #[test]
    fn message_frames_splice_the_stored_body() {
        let frame = message_frame("app:x", Some("1-0"), r#"{"event":"e","data":{"a":1}}"#);
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type":"message","channel":"app:x","id":"1-0","event":"e","data":{"a":1}})
        );
        let value: serde_json::Value = serde_json::from_str(&event_frame("actions", "action", "[1]")).unwrap();
        assert_eq!(value["id"], serde_json::Value::Null);
        assert_eq!(value["data"], serde_json::json!([1]));
    }
}
