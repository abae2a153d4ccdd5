//! Heartbeats against the real Redis: members appear, expire on their own,
//! and leave at once when removed.

use std::time::Duration;

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Heartbeats, Keyspace, RedisConfig, RedisConnection};

async fn registry() -> (Heartbeats, RedisConnection, Keyspace, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = RedisConnection::connect(&RedisConfig::new(&url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(&url);
    let keys = prefix.keyspace();
    (Heartbeats::new(conn.clone(), keys.clone(), "workers"), conn, keys, prefix)
}

#[tokio::test]
async fn members_are_listed_with_details_until_they_expire_or_leave() {
    let (beats, mut conn, keys, _prefix) = registry().await;
    beats.beat("w1", Duration::from_secs(30), &[("pid", "1".into())]).await.unwrap();
    beats.beat("w2", Duration::from_millis(150), &[("pid", "2".into())]).await.unwrap();
    let alive = beats.alive().await.unwrap();
    assert_eq!(alive.len(), 2);
    assert_eq!(alive[0], ("w1".into(), vec![("pid".into(), "1".into())]));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let alive = beats.alive().await.unwrap();
    assert_eq!(alive.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["w1"]);

    beats.remove("w1").await.unwrap();
    assert!(beats.alive().await.unwrap().is_empty());

    // Nothing is left behind once every member is gone.
    beats.beat("w3", Duration::from_millis(100), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let left: Vec<String> = redis::cmd("KEYS").arg(keys.pattern()).query_async(&mut conn).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
