//! The rate limiter against real Redis: exactness under concurrency for
//! every algorithm, refill, window reset, cost handling, several limits per
//! request, script reloading and batching.

use std::time::Duration;

use switchyard_kit::testing::RedisProcess;
use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Check, Keyspace, Limit, RateLimiter, RedisConfig, RedisConnection};

async fn limiter_on(url: &str) -> (RateLimiter, RedisConnection, Keyspace, TestPrefix) {
    let conn = RedisConnection::connect(&RedisConfig::new(url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(url);
    let keys = prefix.keyspace();
    (RateLimiter::new(conn.clone(), keys.clone()), conn, keys, prefix)
}

async fn limiter() -> (RateLimiter, RedisConnection, Keyspace, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    limiter_on(&url).await
}

fn check<'a>(subject: &'a str, limits: &'a [Limit], names: &'a [&'a str], cost: u64) -> Check<'a> {
    Check { subject, names, limits, cost }
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_thousand_concurrent_requests_against_100_allow_exactly_100_for_every_algorithm() {
    let (limiter, _, _, _prefix) = limiter().await;
    let algorithms = [
        Limit::FixedWindow { limit: 100, window: MINUTE },
        Limit::SlidingWindowLog { limit: 100, window: MINUTE },
        Limit::SlidingWindowCounter { limit: 100, window: MINUTE },
        Limit::TokenBucket { capacity: 100, refill_per_sec: 0.0001 },
        Limit::Gcra { rate: 0.0001, burst: 99 },
    ];
    for limit in algorithms {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let limits = [limit];
                    limiter.check(&check("subject", &limits, &["p"], 1)).await.unwrap().allowed
                })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(task.await.unwrap());
        }
        assert_eq!(allowed, 100, "{}", limit.algorithm());
    }
}

#[tokio::test]
async fn a_token_bucket_refills_at_its_rate() {
    let (limiter, _, _, _prefix) = limiter().await;
    let limits = [Limit::TokenBucket { capacity: 5, refill_per_sec: 50.0 }];
    for _ in 0..5 {
        assert!(limiter.check(&check("s", &limits, &["p"], 1)).await.unwrap().allowed);
    }
    let denied = limiter.check(&check("s", &limits, &["p"], 1)).await.unwrap();
    assert!(!denied.allowed);
    let retry = denied.decisions[0].retry_after.unwrap();
    assert!(retry <= Duration::from_millis(20) && retry >= Duration::from_millis(1), "{retry:?}");
    tokio::time::sleep(Duration::from_millis(65)).await; // 3.25 tokens at 50/s
                                                         // Only the lower bound depends on the sleep, so a slow machine cannot
                                                         // make this fail; `retry` above already pins the rate from above.
    let refilled = limiter.check(&check("s", &limits, &["p"], 3)).await.unwrap();
    assert!(refilled.allowed, "3 tokens came back: {refilled:?}");
}

#[tokio::test]
async fn windows_reset_and_report_when() {
    let (limiter, _, _, _prefix) = limiter().await;
    for limit in [
        Limit::FixedWindow { limit: 3, window: Duration::from_millis(150) },
        Limit::SlidingWindowLog { limit: 3, window: Duration::from_millis(150) },
        Limit::SlidingWindowCounter { limit: 3, window: Duration::from_millis(150) },
    ] {
        let limits = [limit];
        let subject = limit.algorithm();
        for _ in 0..3 {
            assert!(limiter.check(&check(subject, &limits, &["p"], 1)).await.unwrap().allowed);
        }
        let denied = limiter.check(&check(subject, &limits, &["p"], 1)).await.unwrap();
        assert!(!denied.allowed, "{subject}");
        let d = denied.decisions[0];
        assert_eq!((d.limit, d.remaining), (3, 0), "{subject}");
        assert!(d.retry_after.unwrap() <= Duration::from_millis(300), "{subject} {d:?}");
        tokio::time::sleep(Duration::from_millis(320)).await;
        assert!(limiter.check(&check(subject, &limits, &["p"], 1)).await.unwrap().allowed, "{subject} after reset");
    }
}

#[tokio::test]
async fn a_cost_above_what_remains_is_denied_without_consuming() {
    let (limiter, _, _, _prefix) = limiter().await;
    for limit in [
        Limit::FixedWindow { limit: 10, window: MINUTE },
        Limit::SlidingWindowLog { limit: 10, window: MINUTE },
        Limit::SlidingWindowCounter { limit: 10, window: MINUTE },
        Limit::TokenBucket { capacity: 10, refill_per_sec: 0.0001 },
        Limit::Gcra { rate: 0.0001, burst: 9 },
    ] {
        let limits = [limit];
        let s = limit.algorithm();
        let first = limiter.check(&check(s, &limits, &["p"], 7)).await.unwrap();
        assert!(first.allowed, "{s}");
        assert_eq!(first.decisions[0].remaining, 3, "{s}");
        let too_much = limiter.check(&check(s, &limits, &["p"], 5)).await.unwrap();
        assert!(!too_much.allowed, "{s}");
        assert_eq!(too_much.decisions[0].remaining, 3, "{s}: nothing consumed");
        assert!(limiter.check(&check(s, &limits, &["p"], 3)).await.unwrap().allowed, "{s}: the rest still fits");
        let never = limiter.check(&check(s, &limits, &["p"], 11)).await.unwrap();
        assert_eq!(never.decisions[0].retry_after, None, "{s}: a cost above the limit never fits");
    }
}

#[tokio::test]
async fn several_limits_are_decided_together_and_a_denial_consumes_from_none() {
    let (limiter, _, _, _prefix) = limiter().await;
    let limits = [Limit::FixedWindow { limit: 3, window: MINUTE }, Limit::FixedWindow { limit: 100, window: MINUTE }];
    let names = ["burst", "hourly"];
    for _ in 0..3 {
        assert!(limiter.check(&check("u", &limits, &names, 1)).await.unwrap().allowed);
    }
    let denied = limiter.check(&check("u", &limits, &names, 1)).await.unwrap();
    assert!(!denied.allowed);
    assert!(!denied.decisions[0].allowed && denied.decisions[1].allowed);
    assert_eq!(denied.binding().unwrap().limit, 3);
    let now = limiter.peek(&check("u", &limits, &names, 1)).await.unwrap();
    assert_eq!(now.decisions[1].remaining, 97, "the hourly limit was not charged for denied requests");
    let again = limiter.peek(&check("u", &limits, &names, 1)).await.unwrap();
    assert_eq!(again.decisions[1].remaining, 97, "peeking consumes nothing");
}

#[tokio::test]
async fn keys_carry_the_subject_tag_and_expire_on_their_own() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let limits = [
        Limit::FixedWindow { limit: 5, window: MINUTE },
        Limit::SlidingWindowLog { limit: 5, window: MINUTE },
        Limit::SlidingWindowCounter { limit: 5, window: MINUTE },
        Limit::TokenBucket { capacity: 5, refill_per_sec: 1.0 },
        Limit::Gcra { rate: 1.0, burst: 4 },
    ];
    limiter.check(&check("tenant-7", &limits, &["a", "b", "c", "d", "e"], 1)).await.unwrap();
    let found: Vec<String> = redis::cmd("KEYS").arg(keys.pattern()).query_async(&mut conn).await.unwrap();
    assert_eq!(found.len(), 5, "{found:?}");
    for key in found {
        assert!(key.contains("{tenant-7}"), "{key}");
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{key} has a TTL");
    }
}

#[tokio::test]
async fn token_bucket_state_left_as_a_hash_by_an_earlier_version_is_carried_over() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let limits = [Limit::TokenBucket { capacity: 10, refill_per_sec: 0.0001 }];
    // The earlier script kept {tokens, ts} in a hash; 2 tokens were left.
    let key = keys.tagged("legacy", &["rl", "p", "token_bucket"]);
    let now_us: i64 = {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        secs * 1_000_000 + micros
    };
    let _: () =
        redis::cmd("HSET").arg(&key).arg("tokens").arg("2").arg("ts").arg(now_us).query_async(&mut conn).await.unwrap();
    let first = limiter.check(&check("legacy", &limits, &["p"], 1)).await.unwrap();
    assert!(first.allowed && first.decisions[0].remaining == 1, "{first:?}");
    let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "string", "the hash was replaced");
    assert!(limiter.check(&check("legacy", &limits, &["p"], 1)).await.unwrap().allowed);
    assert!(!limiter.check(&check("legacy", &limits, &["p"], 1)).await.unwrap().allowed, "2 tokens, not 10");
}

#[tokio::test]
async fn extreme_parameters_decide_without_a_redis_error() {
    let (limiter, _, _, _prefix) = limiter().await;
    // Each state key's TTL would exceed what Redis accepts for PX.
    let ages = Duration::from_secs(u64::MAX / 4_000);
    for (i, limit) in [
        Limit::FixedWindow { limit: 10, window: ages },
        Limit::SlidingWindowLog { limit: 10, window: ages },
        Limit::SlidingWindowCounter { limit: 10, window: ages },
        Limit::TokenBucket { capacity: u64::MAX, refill_per_sec: 1e-9 },
        Limit::TokenBucket { capacity: 1, refill_per_sec: 1e12 },
        Limit::Gcra { rate: 1e-9, burst: 1_000 },
    ]
    .into_iter()
    .enumerate()
    {
        let (limits, name) = ([limit], format!("p{i}"));
        for _ in 0..3 {
            let verdict = limiter.check(&check("extreme", &limits, &[&name], 1)).await.unwrap();
            assert!(verdict.allowed, "{limit:?}: {verdict:?}");
        }
    }
}

#[tokio::test]
async fn script_flush_and_a_redis_restart_do_not_surface_as_errors() {
    let mut server = RedisProcess::start().unwrap();
    let (limiter, mut conn, _, _prefix) = limiter_on(&server.url()).await;
    let limits = [Limit::FixedWindow { limit: 100, window: MINUTE }];
    limiter.check(&check("s", &limits, &["p"], 1)).await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    limiter.check(&check("s", &limits, &["p"], 1)).await.expect("reloaded after SCRIPT FLUSH");
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    let batch = [check("a", &limits, &["p"], 1), check("b", &limits, &["p"], 1)];
    limiter.check_many(&batch).await.expect("a batch reloads the script too");

    server.stop();
    server.restart().unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if limiter.check(&check("s", &limits, &["p"], 1)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "decisions work again after the restart (script reloaded)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_in_flight_during_a_script_flush_are_reloaded_and_still_exact() {
    // Own server: SCRIPT FLUSH would disturb the tests sharing the local one.
    let server = RedisProcess::start().unwrap();
    let (limiter, mut conn, _, _prefix) = limiter_on(&server.url()).await;
    let limits = [Limit::FixedWindow { limit: 100, window: MINUTE }];
    limiter.check(&check("warm", &limits, &["p"], 1)).await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    // 300 concurrent checks meet NOSCRIPT; each must be retried once after
    // the reload, never twice.
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let limits = [Limit::FixedWindow { limit: 100, window: MINUTE }];
                limiter.check(&check("flushed", &limits, &["p"], 1)).await.unwrap().allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    assert_eq!(allowed, 100);
}

#[tokio::test]
async fn a_batch_decides_many_subjects_in_one_call() {
    let (limiter, _, _, _prefix) = limiter().await;
    let limits = [Limit::FixedWindow { limit: 1, window: MINUTE }];
    let batch = [check("a", &limits, &["p"], 1), check("b", &limits, &["p"], 1), check("a", &limits, &["p"], 1)];
    let verdicts = limiter.check_many(&batch).await.unwrap();
    assert_eq!(verdicts.iter().map(|v| v.allowed).collect::<Vec<_>>(), [true, true, false]);
}
