//! `PubSubHub`: one Redis pub/sub connection per process, fanned out to
//! any number of local listeners (SSE streams, WebSockets).
//!
//! Invariants:
//! - a channel is subscribed in Redis while at least one local listener
//!   holds it, and once however many listeners share it;
//! - every SUBSCRIBE and UNSUBSCRIBE is decided and sent under one async
//!   lock, after checking the listener count, so a listener arriving while
//!   the last one leaves is never left without a subscription;
//! - the connection reconnects and resubscribes by itself (redis-rs's
//!   connection manager over RESP3); what is published while it is down is
//!   lost, as pub/sub always is: listeners that need every message read a
//!   durable store (an inbox, a stream) when they (re)connect;
//! - a listener too slow to keep up is told how many messages it missed;
//! - a message is received once per process and shared, not copied, by
//!   every listener (a [`ByteString`] is a counted reference); what is not
//!   UTF-8 text is dropped.
//!
//! On a cluster the hub connects to the first node: classic PUBLISH is
//! broadcast to every node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytestring::ByteString;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind};
use tokio::sync::broadcast;

use crate::connection::connection_info;
use crate::{KitError, RedisConfig, RedisTopology};

/// Messages a listener may fall behind by before it misses some.
const LISTENER_BUFFER: usize = 256;

/// What a listener receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubMessage {
    /// A message published on the channel.
    Message(ByteString),
    /// The listener fell behind and this many messages were dropped for it.
    Lagged(u64),
}

type Listeners = Arc<Mutex<HashMap<String, broadcast::Sender<ByteString>>>>;

/// See the module documentation. Clones share the connection.
#[derive(Clone)]
pub struct PubSubHub {
    conn: ConnectionManager,
    listeners: Listeners,
    /// Channels subscribed in Redis; held while deciding and sending.
    subscribed: Arc<tokio::sync::Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for PubSubHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubHub").finish_non_exhaustive()
    }
}

/// One listener's subscription; unsubscribes (if it was the last) when dropped.
#[derive(Debug)]
pub struct Subscription {
    channel: String,
    receiver: Option<broadcast::Receiver<ByteString>>,
    hub: PubSubHub,
}

/// Hands a pushed message to the channel's listeners (runs on the
/// connection's reader: only a map lookup and a non-blocking send).
fn dispatch(listeners: &Listeners, push: PushInfo) {
    if push.kind != PushKind::Message {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else { return };
    let (Ok(channel), Some(payload)) = (
        redis::from_redis_value::<String>(channel),
        redis::from_redis_value::<Vec<u8>>(payload).ok().and_then(|bytes| ByteString::try_from(bytes).ok()),
    ) else {
        return;
    };
    if let Ok(listeners) = listeners.lock() {
        if let Some(sender) = listeners.get(&channel) {
            // No receiver left: the subscription is being released.
            let _ = sender.send(payload);
        }
    }
}

impl PubSubHub {
    /// Connects the hub's own connection (RESP3, resubscribing on reconnect).
    pub async fn connect(config: &RedisConfig) -> Result<Self, KitError> {
        let url = match &config.topology {
            RedisTopology::Standalone(url) => url,
            RedisTopology::Cluster(nodes) => {
                nodes.first().ok_or_else(|| KitError::Config("a cluster needs at least one node".into()))?
            }
        };
        let info = connection_info(url)?;
        let resp3 = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let listeners: Listeners = Arc::default();
        let sink = listeners.clone();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_automatic_resubscription()
            .set_push_sender(move |push: PushInfo| {
                dispatch(&sink, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let conn = ConnectionManager::new_with_config(client, manager_config).await?;
        Ok(Self { conn, listeners, subscribed: Arc::default() })
    }

    /// Listens on `channel`; subscribed in Redis when this returns.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, KitError> {
        let receiver = {
            let mut listeners = self.listeners.lock().map_err(|_| KitError::Config("hub lock poisoned".into()))?;
            let sender = listeners.entry(channel.to_owned()).or_insert_with(|| broadcast::channel(LISTENER_BUFFER).0);
            sender.subscribe()
        };
        // From here a failure drops the receiver and releases the channel.
        let subscription = Subscription { channel: channel.to_owned(), receiver: Some(receiver), hub: self.clone() };
        let mut subscribed = self.subscribed.lock().await;
        if !subscribed.contains(channel) {
            let mut conn = self.conn.clone();
            conn.subscribe(channel).await?;
            subscribed.insert(channel.to_owned());
        }
        Ok(subscription)
    }

    /// Unsubscribes `channel` in Redis if no listener holds it any more.
    async fn release(&self, channel: &str) -> Result<(), KitError> {
        let mut subscribed = self.subscribed.lock().await;
        let unused = match self.listeners.lock() {
            Ok(mut listeners) => {
                let unused = listeners.get(channel).is_none_or(|sender| sender.receiver_count() == 0);
                if unused {
                    listeners.remove(channel);
                }
                unused
            }
            Err(_) => false,
        };
        if unused && subscribed.remove(channel) {
            let mut conn = self.conn.clone();
            conn.unsubscribe(channel).await?;
        }
        Ok(())
    }

    /// Channels with at least one local listener (for metrics and tests).
    pub fn channels(&self) -> usize {
        self.listeners.lock().map(|l| l.len()).unwrap_or(0)
    }
}

impl Subscription {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next message, or `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<HubMessage> {
        let receiver = self.receiver.as_mut()?;
        match receiver.recv().await {
            Ok(message) => Some(HubMessage::Message(message)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(HubMessage::Lagged(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The receiver goes first, so the release below counts without it.
        drop(self.receiver.take());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (hub, channel) = (self.hub.clone(), std::mem::take(&mut self.channel));
        runtime.spawn(async move {
            if let Err(error) = hub.release(&channel).await {
                tracing::warn!(%error, "unsubscribing a channel nobody listens to failed");
            }
        });
    }
}
