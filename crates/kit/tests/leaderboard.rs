//! Leaderboards against the real Redis: modes, exact totals under
//! concurrency, rank order with ties, pages and neighbourhoods.

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Leaderboards, RedisConfig, RedisConnection, ScoreMode};

async fn boards() -> (Leaderboards, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = RedisConnection::connect(&RedisConfig::new(&url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(&url);
    (Leaderboards::new(conn, prefix.keyspace()), prefix)
}

#[tokio::test]
async fn set_increment_and_max_combine_scores_as_named() {
    let (lb, _prefix) = boards().await;
    assert_eq!(lb.submit("b", "ann", 10.0, ScoreMode::Set).await.unwrap().score, 10.0);
    assert_eq!(lb.submit("b", "ann", 2.5, ScoreMode::Increment).await.unwrap().score, 12.5);
    assert_eq!(lb.submit("b", "ann", 5.0, ScoreMode::Max).await.unwrap().score, 12.5);
    assert_eq!(lb.submit("b", "ann", 20.0, ScoreMode::Max).await.unwrap().score, 20.0);
    assert_eq!(lb.submit("b", "ann", 1.0, ScoreMode::Set).await.unwrap().score, 1.0);
    assert_eq!(lb.submit("b", "bob", 3.0, ScoreMode::Max).await.unwrap().rank, 1);
    assert!(lb.submit("b", "x", f64::NAN, ScoreMode::Set).await.is_err());
}

#[tokio::test]
async fn two_hundred_concurrent_increments_give_the_exact_total() {
    let (lb, _prefix) = boards().await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let lb = lb.clone();
            tokio::spawn(async move { lb.submit("b", "m", 1.5, ScoreMode::Increment).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(lb.member("b", "m").await.unwrap().unwrap().score, 300.0);
}

#[tokio::test]
async fn ranks_are_descending_with_ties_ordered_by_member_descending() {
    let (lb, _prefix) = boards().await;
    for (member, score) in [("a", 5.0), ("b", 9.0), ("c", 5.0), ("d", 1.0), ("e", 7.0)] {
        lb.submit("b", member, score, ScoreMode::Set).await.unwrap();
    }
    let top = lb.top("b", 10).await.unwrap();
    let order: Vec<(u64, &str)> = top.iter().map(|s| (s.rank, s.member.as_str())).collect();
    assert_eq!(order, [(1, "b"), (2, "e"), (3, "c"), (4, "a"), (5, "d")]);
    assert_eq!(lb.member("b", "a").await.unwrap().unwrap().rank, 4);
    assert_eq!(lb.member("b", "zz").await.unwrap(), None);

    let (page, total) = lb.page("b", 2, 2).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(page.iter().map(|s| (s.rank, s.member.as_str())).collect::<Vec<_>>(), [(3, "c"), (4, "a")]);

    let around = lb.around("b", "c", 1).await.unwrap().unwrap();
    assert_eq!(around.iter().map(|s| (s.rank, s.member.as_str())).collect::<Vec<_>>(), [(2, "e"), (3, "c"), (4, "a")]);
    let edge = lb.around("b", "b", 2).await.unwrap().unwrap();
    assert_eq!(edge.iter().map(|s| s.rank).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(lb.around("b", "nobody", 2).await.unwrap(), None);

    assert!(lb.remove("b", "e").await.unwrap());
    assert!(!lb.remove("b", "e").await.unwrap());
    assert_eq!(lb.member("b", "c").await.unwrap().unwrap().rank, 2);
    assert!(lb.reset("b").await.unwrap());
    assert!(lb.top("b", 10).await.unwrap().is_empty());
}
