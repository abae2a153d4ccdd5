//! The live activity feed: the recorder publishes each batch once (as the
//! `live` [`BatchObserver`]) on one Redis channel; every instance's pub/sub
//! hub hands it to its `/v1/activity/live` connections, and each
//! connection keeps the records of its caller's account (operators: all).
//!
//! A batch is serialized only when some instance listens: on a single
//! Redis the feed first asks how many subscribers the channel has (`PUBSUB
//! NUMSUB`, one round trip per batch) and skips the JSON and the PUBLISH
//! when none does — a hub subscribes the channel exactly while it has a
//! listener, so a listener whose subscription returned before the check is
//! counted and misses nothing recorded after it started listening. On a
//! cluster (where NUMSUB answers for one node) every batch is published.
//!
//! Invariants: one PUBLISH per batch, never one per request; a connection
//! never sees another account's records; a listener too slow for the hub
//! is told how many batches it missed, it never holds up the others.

use std::collections::HashMap;

use futures::future::BoxFuture;
use switchyard_kit::{HubMessage, Keyspace, KitError, RedisConnection, Subscription};
use uuid::Uuid;

use super::{ActivityRecord, BatchObserver};

/// The channel batches are published on.
pub fn channel(keys: &Keyspace) -> String {
    keys.key(&["activity", "live"])
}

/// Publishes each batch, as a JSON array of records.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    redis: RedisConnection,
    channel: String,
}

impl LiveFeed {
    pub fn new(redis: RedisConnection, keys: &Keyspace) -> Self {
        Self { redis, channel: channel(keys) }
    }
}

impl BatchObserver for LiveFeed {
    fn name(&self) -> &'static str {
        "live"
    }

    fn observe<'a>(&'a self, batch: &'a [ActivityRecord]) -> BoxFuture<'a, Result<(), KitError>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let mut conn = self.redis.clone();
            if !matches!(self.redis, RedisConnection::Cluster(_)) {
                let counts: HashMap<String, u64> =
                    redis::cmd("PUBSUB").arg("NUMSUB").arg(&self.channel).query_async(&mut conn).await?;
                if counts.values().all(|listeners| *listeners == 0) {
                    return Ok(());
                }
            }
            let json = serde_json::to_string(batch).map_err(|e| KitError::Io(e.into()))?;
            let _: u64 = redis::cmd("PUBLISH").arg(&self.channel).arg(json).query_async(&mut conn).await?;
            Ok(())
        })
    }
}

/// What a live connection receives next.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveItem {
    /// Records of the caller's account (never empty).
    Records(Vec<ActivityRecord>),
    /// This many batches were missed (the connection read too slowly).
    Lagged(u64),
}

/// One connection's view of the feed.
#[derive(Debug)]
pub struct LiveActivity {
    subscription: Subscription,
    /// `None`: every account.
    account: Option<Uuid>,
}

impl LiveActivity {
    pub fn new(subscription: Subscription, account: Option<Uuid>) -> Self {
        Self { subscription, account }
    }

    /// The next records for this connection; `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<LiveItem> {
        loop {
            match self.subscription.next().await? {
                HubMessage::Lagged(missed) => return Some(LiveItem::Lagged(missed)),
                HubMessage::Message(json) => {
                    let Ok(mut records) = serde_json::from_str::<Vec<ActivityRecord>>(&json) else {
                        tracing::warn!("an unreadable live activity batch was skipped");
                        continue;
                    };
                    if let Some(account) = self.account {
                        records.retain(|r| r.account_id == Some(account));
                    }
                    if !records.is_empty() {
                        return Some(LiveItem::Records(records));
                    }
                }
            }
        }
    }
}
