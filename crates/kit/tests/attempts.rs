//! Attempt counters against the real Redis.

use std::time::Duration;

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Attempts, RedisConfig, RedisConnection};

async fn attempts() -> (Attempts, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = RedisConnection::connect(&RedisConfig::new(&url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(&url);
    (Attempts::new(conn, prefix.keyspace(), "failures"), prefix)
}

#[tokio::test]
async fn exactly_limit_hits_are_allowed_under_concurrency() {
    let (a, _prefix) = attempts().await;
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.hit("subject", 100, Duration::from_secs(60)).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap().is_none() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 100);
}

#[tokio::test]
async fn recorded_failures_block_until_the_window_ends_and_clear_resets() {
    let (a, _prefix) = attempts().await;
    assert_eq!(a.blocked(&[("e", 2), ("ip", 3)]).await.unwrap(), None);
    a.record(&["e", "ip"], Duration::from_millis(200)).await.unwrap();
    a.record(&["e", "ip"], Duration::from_millis(200)).await.unwrap();
    let wait = a.blocked(&[("e", 2), ("ip", 3)]).await.unwrap().expect("email blocked");
    assert!(wait <= Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(a.blocked(&[("e", 2)]).await.unwrap(), None, "the window passed");

    a.record(&["e"], Duration::from_secs(60)).await.unwrap();
    a.record(&["e"], Duration::from_secs(60)).await.unwrap();
    assert!(a.blocked(&[("e", 2)]).await.unwrap().is_some());
    a.clear("e").await.unwrap();
    assert_eq!(a.blocked(&[("e", 2)]).await.unwrap(), None);
}
