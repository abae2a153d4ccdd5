//! Distributed locks against the real Redis: exclusion under concurrency,
//! holder-only release and extend, expiry, waiting, and fencing tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Keyspace, Locks, RedisConfig, RedisConnection};

async fn locks() -> (Locks, RedisConnection, Keyspace, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = RedisConnection::connect(&RedisConfig::new(&url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(&url);
    let keys = prefix.keyspace();
    (Locks::new(conn.clone(), keys.clone()), conn, keys, prefix)
}

#[tokio::test]
async fn only_the_holder_releases_and_fencing_tokens_grow() {
    let (locks, mut conn, keys, _prefix) = locks().await;
    let ttl = Duration::from_secs(10);
    let first = locks.acquire("r", ttl, None).await.unwrap().expect("free");
    assert!(locks.acquire("r", ttl, None).await.unwrap().is_none(), "held");
    assert!(!locks.release("r", "someone-else").await.unwrap());
    assert!(locks.release("r", &first.token).await.unwrap());
    assert!(!locks.release("r", &first.token).await.unwrap(), "already released");
    let second = locks.acquire("r", ttl, None).await.unwrap().expect("free again");
    assert!(second.fencing_token > first.fencing_token);
    assert_ne!(second.token, first.token);
    assert!(locks.release("r", &second.token).await.unwrap());

    let lock_key = keys.tagged("r", &["lock"]);
    let exists: bool = redis::cmd("EXISTS").arg(&lock_key).query_async(&mut conn).await.unwrap();
    assert!(!exists, "released locks leave no lock key");
    let fence_ttl: i64 =
        redis::cmd("PTTL").arg(keys.tagged("r", &["lock", "fence"])).query_async(&mut conn).await.unwrap();
    assert!(fence_ttl > 0, "the fencing counter expires eventually");
    assert!(locks.acquire("", ttl, None).await.is_err());
    assert!(locks.acquire("x", Duration::ZERO, None).await.is_err());
}

#[tokio::test]
async fn an_expired_lock_can_be_taken_and_the_old_holder_can_no_longer_act() {
    let (locks, _, _, _prefix) = locks().await;
    let old = locks.acquire("r", Duration::from_millis(50), None).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let new = locks.acquire("r", Duration::from_secs(10), None).await.unwrap().expect("expired lock is free");
    assert!(new.fencing_token > old.fencing_token);
    assert!(!locks.release("r", &old.token).await.unwrap());
    assert!(locks.extend("r", &old.token, Duration::from_secs(10)).await.unwrap().is_none());
}

#[tokio::test]
async fn the_holder_extends_past_the_original_ttl() {
    let (locks, _, _, _prefix) = locks().await;
    let lease = locks.acquire("r", Duration::from_millis(100), None).await.unwrap().unwrap();
    let extended = locks.extend("r", &lease.token, Duration::from_secs(10)).await.unwrap().unwrap();
    assert_eq!(extended.fencing_token, lease.fencing_token);
    assert!(extended.expires_at_ms > lease.expires_at_ms);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(locks.acquire("r", Duration::from_secs(1), None).await.unwrap().is_none(), "still held");
}

#[tokio::test]
async fn a_waiting_acquire_succeeds_when_the_holder_releases() {
    let (locks, _, _, _prefix) = locks().await;
    let held = locks.acquire("r", Duration::from_secs(10), None).await.unwrap().unwrap();
    let releaser = {
        let locks = locks.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            locks.release("r", &held.token).await.unwrap()
        })
    };
    let got = locks.acquire("r", Duration::from_secs(10), Some(Duration::from_secs(5))).await.unwrap();
    assert!(releaser.await.unwrap());
    assert!(got.is_some());
}

#[tokio::test]
async fn two_hundred_concurrent_acquires_yield_exactly_one_lease() {
    let (locks, _, _, _prefix) = locks().await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire("hot", Duration::from_secs(10), None).await.unwrap().is_some() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn waiting_holders_serialise_a_read_modify_write_and_fence_in_order() {
    let (locks, _, _, _prefix) = locks().await;
    let counter = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (locks, counter) = (locks.clone(), counter.clone());
            tokio::spawn(async move {
                let lease =
                    locks.acquire("rmw", Duration::from_secs(5), Some(Duration::from_secs(20))).await.unwrap().unwrap();
                // A deliberately racy read-modify-write: only the lock makes it safe.
                let seen = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(seen + 1, Ordering::SeqCst);
                assert!(locks.release("rmw", &lease.token).await.unwrap());
                (seen, lease.fencing_token)
            })
        })
        .collect();
    let mut observed = Vec::new();
    for task in tasks {
        observed.push(task.await.unwrap());
    }
    assert_eq!(counter.load(Ordering::SeqCst), 50);
    observed.sort();
    let fences: Vec<u64> = observed.iter().map(|(_, fence)| *fence).collect();
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "fencing tokens grow in acquisition order: {fences:?}");
}
