//! The pub/sub hub against the real Redis: fan-out of one subscription to
//! many listeners, unsubscribing when the last one leaves (and not when a
//! new one arrives meanwhile), resubscribing after Redis restarts, and
//! telling a slow listener what it missed.

use std::time::Duration;

use switchyard_kit::testing::{redis_url, RedisProcess, TestPrefix};
use switchyard_kit::{HubMessage, PubSubHub, RedisConfig, RedisConnection};

async fn hub() -> PubSubHub {
    PubSubHub::connect(&RedisConfig::new(&redis_url()).unwrap()).await.unwrap()
}

async fn plain() -> RedisConnection {
    RedisConnection::connect(&RedisConfig::new(&redis_url()).unwrap()).await.unwrap()
}

async fn publish(conn: &RedisConnection, channel: &str, message: &str) -> u64 {
    redis::cmd("PUBLISH").arg(channel).arg(message).query_async(&mut conn.clone()).await.unwrap()
}

/// Redis's count of subscribers of `channel`.
async fn subscribers(conn: &RedisConnection, channel: &str) -> u64 {
    let (_, n): (String, u64) =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut conn.clone()).await.unwrap();
    n
}

/// Polls until `condition` holds (the hub releases channels in the
/// background); false if it never does within 5 s.
async fn eventually<F: Fn() -> Fut, Fut: std::future::Future<Output = bool>>(condition: F) -> bool {
    for _ in 0..250 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn next(subscription: &mut switchyard_kit::Subscription) -> HubMessage {
    tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.expect("a message in time").unwrap()
}

#[tokio::test]
async fn listeners_share_one_subscription_which_ends_with_the_last_of_them() {
    let prefix = TestPrefix::new(&redis_url());
    let channel = prefix.keyspace().key(&["chan"]);
    let (hub, conn) = (hub().await, plain().await);
    let mut a = hub.subscribe(&channel).await.unwrap();
    let mut b = hub.subscribe(&channel).await.unwrap();
    assert_eq!(subscribers(&conn, &channel).await, 1, "one Redis subscription for both");
    assert_eq!(publish(&conn, &channel, "hello").await, 1);
    assert_eq!(next(&mut a).await, HubMessage::Message("hello".into()));
    assert_eq!(next(&mut b).await, HubMessage::Message("hello".into()));

    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(subscribers(&conn, &channel).await, 1, "b still listens");
    publish(&conn, &channel, "still").await;
    assert_eq!(next(&mut b).await, HubMessage::Message("still".into()));

    drop(b);
    assert!(eventually(|| async { subscribers(&conn, &channel).await == 0 }).await, "unsubscribed");
    assert_eq!(hub.channels(), 0);
}

#[tokio::test]
async fn a_listener_arriving_as_the_last_one_leaves_keeps_receiving() {
    let prefix = TestPrefix::new(&redis_url());
    let channel = prefix.keyspace().key(&["chan"]);
    let (hub, conn) = (hub().await, plain().await);
    for round in 0..50 {
        drop(hub.subscribe(&channel).await.unwrap());
        let mut fresh = hub.subscribe(&channel).await.unwrap();
        let message = format!("round {round}");
        assert_eq!(publish(&conn, &channel, &message).await, 1, "subscribed in round {round}");
        assert_eq!(next(&mut fresh).await, HubMessage::Message(message.as_str().into()));
    }
}

#[tokio::test]
async fn the_hub_resubscribes_after_redis_restarts() {
    // A Redis of this test's own: restarting the shared one would cut off
    // every other test's subscribers.
    let mut server = RedisProcess::start().unwrap();
    let config = RedisConfig::new(&server.url()).unwrap();
    let hub = PubSubHub::connect(&config).await.unwrap();
    let mut listener = hub.subscribe("chan").await.unwrap();
    server.stop();
    server.restart().unwrap();
    let conn = RedisConnection::connect(&config).await.unwrap();
    assert!(eventually(|| async { subscribers(&conn, "chan").await == 1 }).await, "subscribed again");
    publish(&conn, "chan", "after").await;
    assert_eq!(next(&mut listener).await, HubMessage::Message("after".into()));
}

#[tokio::test]
async fn a_slow_listener_is_told_how_many_messages_it_missed() {
    let prefix = TestPrefix::new(&redis_url());
    let channel = prefix.keyspace().key(&["chan"]);
    let (hub, conn) = (hub().await, plain().await);
    let mut slow = hub.subscribe(&channel).await.unwrap();
    let mut fast = hub.subscribe(&channel).await.unwrap();
    let mut pipe = redis::pipe();
    for n in 0..300 {
        pipe.cmd("PUBLISH").arg(&channel).arg(n.to_string()).ignore();
    }
    pipe.query_async::<()>(&mut conn.clone()).await.unwrap();
    for n in 0..300 {
        assert_eq!(next(&mut fast).await, HubMessage::Message(n.to_string().as_str().into()));
    }
    assert_eq!(next(&mut slow).await, HubMessage::Lagged(44), "256 kept of 300");
    assert_eq!(next(&mut slow).await, HubMessage::Message("44".into()));
}
