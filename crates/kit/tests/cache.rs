//! Cache-aside against the real Redis: hits and misses, TTL, versioned
//! invalidation and stampede protection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Cache, CacheStatus, KeyTracking, KitError, RedisConfig, RedisConnection};

async fn cache(family: &str) -> (Cache, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = RedisConnection::connect(&RedisConfig::new(&url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(&url);
    (Cache::new(conn, prefix.keyspace(), family), prefix)
}

async fn load(n: u32) -> Result<Option<u32>, KitError> {
    Ok(Some(n))
}

#[tokio::test]
async fn misses_load_and_cache_then_hit_until_the_ttl_or_a_version_bump() {
    let (c, _prefix) = cache("things").await;
    let ttl = Duration::from_millis(200);
    assert_eq!(c.get_or_load("a:b", ttl, || load(1)).await.unwrap(), (Some(1), CacheStatus::Miss));
    assert_eq!(c.get_or_load("a:b", ttl, || load(2)).await.unwrap(), (Some(1), CacheStatus::Hit));
    assert_eq!(c.get::<u32>("a:b").await.unwrap(), Some(1));

    c.bump_version().await.unwrap();
    assert_eq!(c.get_or_load("a:b", ttl, || load(3)).await.unwrap(), (Some(3), CacheStatus::Miss));
    c.invalidate("a:b").await.unwrap();
    assert_eq!(c.get::<u32>("a:b").await.unwrap(), None);

    c.put("x", &7u32, ttl).await.unwrap();
    assert_eq!(c.get::<u32>("x").await.unwrap(), Some(7));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.get::<u32>("x").await.unwrap(), None, "expired");

    let none: (Option<u32>, _) = c.get_or_load("absent", ttl, || async { Ok::<_, KitError>(None) }).await.unwrap();
    assert_eq!(none, (None, CacheStatus::Miss));
    let (hits, misses) = c.stats().await.unwrap();
    assert_eq!((hits, misses), (3, 5));
}

#[tokio::test]
async fn a_hundred_concurrent_misses_load_once() {
    let (c, _prefix) = cache("stampede").await;
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (c, loads) = (c.clone(), loads.clone());
            tokio::spawn(async move {
                c.get_or_load("hot", Duration::from_secs(60), || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, KitError>(Some(42u32))
                })
                .await
                .unwrap()
                .0
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Some(42));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn key_tracking_counts_each_item_and_ranks_the_most_missed_with_their_recipes() {
    let (c, _prefix) = cache("tracked").await;
    let c = c.with_key_tracking(KeyTracking { ttl: Duration::from_secs(60), ranked: 2 });
    let ttl = Duration::from_secs(60);
    for (item, recipe) in [("a:1", "recipe a"), ("b/2", "recipe b"), ("c", "recipe c")] {
        // Each item misses as often as its rank says: c three times, b twice.
        let times = match item {
            "c" => 3,
            "b/2" => 2,
            _ => 1,
        };
        for _ in 0..times {
            c.bump_version().await.unwrap();
            let (_, status) = c.get_or_load_with_recipe(item, recipe, ttl, || load(1)).await.unwrap();
            assert_eq!(status, CacheStatus::Miss);
        }
    }
    let (_, status) = c.get_or_load_with_recipe("c", "recipe c", ttl, || load(1)).await.unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(c.key_stats("c").await.unwrap(), (1, 3));
    assert_eq!(c.key_stats("b/2").await.unwrap(), (0, 2));
    assert_eq!(c.stats().await.unwrap(), (1, 6), "the family's counts still add up");

    let ranked = c.most_missed(10).await.unwrap();
    let ranked: Vec<(&str, &str, u64)> =
        ranked.iter().map(|m| (m.item.as_str(), m.recipe.as_str(), m.misses)).collect();
    // Capped at two: the least missed item ("a:1") and its recipe are gone.
    assert_eq!(ranked, [("c", "recipe c", 3), ("b/2", "recipe b", 2)]);
}
