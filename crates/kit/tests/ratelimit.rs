//! The rate limiter against real Redis: exactness under concurrency for
//! every algorithm, refill, window reset, cost handling, several limits per
//! request, script reloading and batching.

use std::time::Duration;

use switchyard_kit::testing::RedisProcess;
use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Check, Keyspace, Limit, RateLimiter, RedisConfig, RedisConnection, Verdict};

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

async fn zcard(conn: &mut RedisConnection, key: &str) -> u64 {
    redis::cmd("ZCARD").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn a_sliding_log_charges_a_cost_of_a_million_as_one_entry() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let limits = [Limit::SlidingWindowLog { limit: 1_000_000, window: MINUTE }];
    let all = limiter.check(&check("big", &limits, &["p"], 1_000_000)).await.unwrap();
    assert!(all.allowed, "{all:?}");
    assert_eq!(all.decisions[0].remaining, 0);
    let denied = limiter.check(&check("big", &limits, &["p"], 1)).await.unwrap();
    assert!(!denied.allowed, "{denied:?}");
    let retry = denied.decisions[0].retry_after.expect("a cost of 1 fits once the million leaves");
    assert!(retry > Duration::ZERO && retry <= MINUTE, "{retry:?}");
    assert_eq!(denied.decisions[0].remaining, 0);
    let key = keys.tagged("big", &["rl", "p", "sliding_log"]);
    assert_eq!(zcard(&mut conn, &key).await, 1, "one entry for the whole cost, none for the denial");
}

#[tokio::test]
async fn a_sliding_log_is_exact_across_costs_and_frees_everything_after_a_window() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let window = Duration::from_secs(1);
    let limits = [Limit::SlidingWindowLog { limit: 10, window }];
    let c = |cost| check("mixed", &limits, &["p"], cost);
    for expected in [7, 4, 1] {
        let v = limiter.check(&c(3)).await.unwrap();
        assert!(v.allowed && v.decisions[0].remaining == expected, "{v:?}");
    }
    let denied = limiter.check(&c(2)).await.unwrap();
    assert!(!denied.allowed, "{denied:?}");
    let d = denied.decisions[0];
    assert_eq!(d.remaining, 1, "nothing consumed");
    assert!(d.retry_after.unwrap() > Duration::ZERO && d.retry_after.unwrap() <= window, "{d:?}");
    let last = limiter.check(&c(1)).await.unwrap();
    assert!(last.allowed && last.decisions[0].remaining == 0, "{last:?}");
    assert!(!limiter.check(&c(1)).await.unwrap().allowed);
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    let fresh = limiter.check(&c(10)).await.unwrap();
    assert!(fresh.allowed && fresh.decisions[0].remaining == 0, "the whole limit is back: {fresh:?}");
    let key = keys.tagged("mixed", &["rl", "p", "sliding_log"]);
    assert_eq!(zcard(&mut conn, &key).await, 1, "the expired entries were trimmed by the write");
}

#[tokio::test]
async fn a_denied_sliding_log_request_waits_for_just_enough_entries_to_leave() {
    let (limiter, _, _, _prefix) = limiter().await;
    let window = Duration::from_secs(2);
    let limits = [Limit::SlidingWindowLog { limit: 6, window }];
    let c = |cost| check("retry", &limits, &["p"], cost);
    // Entries of cost 1, 2, 1, 2 at least 40 ms apart: a denied cost of k
    // waits for the entries holding the oldest k units to leave.
    for cost in [1, 2, 1, 2] {
        assert!(limiter.check(&c(cost)).await.unwrap().allowed);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let retry = |v: Verdict| {
        assert!(!v.allowed, "{v:?}");
        v.decisions[0].retry_after.unwrap()
    };
    // 6 used: a cost of 4 needs the first three entries (4 units) gone, a
    // cost of 1 only the first. Asked later, the cost of 1 reports no more.
    let four = retry(limiter.peek(&c(4)).await.unwrap());
    let one = retry(limiter.peek(&c(1)).await.unwrap());
    assert!(four <= window && one > Duration::ZERO, "{four:?} {one:?}");
    assert!(four >= one + Duration::from_millis(79), "the third entry is 80 ms younger: {four:?} {one:?}");
    let six = retry(limiter.peek(&c(6)).await.unwrap());
    assert!(six >= one + Duration::from_millis(119) && six <= window, "the newest: {six:?} {one:?}");
    tokio::time::sleep(four).await;
    let fits = limiter.check(&c(4)).await.unwrap();
    assert!(fits.allowed, "after retry_after it fits: {fits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_concurrent_checks_on_a_sliding_log_allow_exactly_its_limit() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let tasks: Vec<_> = (0..600)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let limits = [Limit::SlidingWindowLog { limit: 137, window: MINUTE }];
                limiter.check(&check("crowd", &limits, &["p"], 1)).await.unwrap().allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    assert_eq!(allowed, 137);
    let key = keys.tagged("crowd", &["rl", "p", "sliding_log"]);
    assert_eq!(zcard(&mut conn, &key).await, 137);
}

#[tokio::test]
async fn peeks_and_costs_of_zero_leave_the_sliding_log_untouched() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let limits = [Limit::SlidingWindowLog { limit: 5, window: MINUTE }];
    let key = keys.tagged("quiet", &["rl", "p", "sliding_log"]);
    let peeked = limiter.peek(&check("quiet", &limits, &["p"], 3)).await.unwrap();
    assert!(peeked.allowed && peeked.decisions[0].remaining == 5, "{peeked:?}");
    let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.unwrap();
    assert!(!exists, "a peek writes nothing");
    for _ in 0..2 {
        assert!(limiter.check(&check("quiet", &limits, &["p"], 2)).await.unwrap().allowed);
        let free = limiter.check(&check("quiet", &limits, &["p"], 0)).await.unwrap();
        assert!(free.allowed, "{free:?}");
    }
    assert_eq!(zcard(&mut conn, &key).await, 2, "a cost of 0 adds no entry");
    assert_eq!(limiter.peek(&check("quiet", &limits, &["p"], 1)).await.unwrap().decisions[0].remaining, 1);
    assert_eq!(zcard(&mut conn, &key).await, 2);
}

#[tokio::test]
async fn expired_sliding_log_entries_count_for_nothing_and_are_trimmed_a_bounded_number_at_a_time() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let window = Duration::from_millis(500);
    let limits = [Limit::SlidingWindowLog { limit: 200, window }];
    let batch: Vec<_> = (0..200).map(|_| check("backlog", &limits, &["p"], 1)).collect();
    let verdicts = limiter.check_many(&batch).await.unwrap();
    assert!(verdicts.iter().all(|v| v.allowed));
    let key = keys.tagged("backlog", &["rl", "p", "sliding_log"]);
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    // 200 expired entries remain until writes trim them (at most 64 each),
    // but none of them counts: the whole limit is available.
    let fresh = limiter.check(&check("backlog", &limits, &["p"], 200)).await.unwrap();
    assert!(fresh.allowed, "{fresh:?}");
    assert!(zcard(&mut conn, &key).await <= 200 - 64 + 1);
    assert!(!limiter.check(&check("backlog", &limits, &["p"], 1)).await.unwrap().allowed);
}

#[tokio::test]
async fn a_sliding_log_in_the_earlier_format_is_left_alone_not_misread() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    // The earlier script kept one member '<now_us>-<n>' per unit of cost
    // under the key named after the algorithm.
    let old = keys.tagged("legacy", &["rl", "p", "sliding_window"]);
    let now_us: i64 = {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        secs * 1_000_000 + micros
    };
    for n in 1..=4 {
        let _: () =
            redis::cmd("ZADD").arg(&old).arg(now_us).arg(format!("{now_us}-{n}")).query_async(&mut conn).await.unwrap();
    }
    let limits = [Limit::SlidingWindowLog { limit: 5, window: MINUTE }];
    let v = limiter.check(&check("legacy", &limits, &["p"], 5)).await.unwrap();
    assert!(v.allowed && v.decisions[0].remaining == 0, "{v:?}");
    assert_eq!(zcard(&mut conn, &old).await, 4, "the old log is not written to");
    assert_eq!(zcard(&mut conn, &keys.tagged("legacy", &["rl", "p", "sliding_log"])).await, 1);
}

async fn redis_now_us(conn: &mut RedisConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test]
async fn sliding_log_retry_times_match_a_scan_of_the_whole_log() {
    let (limiter, mut conn, keys, _prefix) = limiter().await;
    let window = MINUTE;
    let limits = [Limit::SlidingWindowLog { limit: 1000, window }];
    // Fill the log with entries of pseudo-random costs 1..=9 (a fixed LCG).
    let mut seed: u64 = 42;
    let mut used = 0;
    loop {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let cost = 1 + (seed >> 33) % 9;
        if used + cost > 1000 {
            break;
        }
        assert!(limiter.check(&check("scan", &limits, &["p"], cost)).await.unwrap().allowed);
        used += cost;
    }
    let key = keys.tagged("scan", &["rl", "p", "sliding_log"]);
    let log: Vec<(String, i64)> =
        redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut conn).await.unwrap();
    assert!(log.len() > 150, "{} entries", log.len());
    let costs: Vec<u64> = log.iter().map(|(member, _)| member.split_once(':').unwrap().1.parse().unwrap()).collect();
    assert_eq!(costs.iter().sum::<u64>(), used);
    // A denied cost k waits for the first entry by which k - (1000 - used)
    // units have left; Redis time moves on between the scan and the answer,
    // so the answer lies between what the scan gives before and after it.
    let expected = |need: u64, now_us: i64| {
        let mut freed = 0;
        let (_, at) = log
            .iter()
            .zip(&costs)
            .find(|(_, cost)| {
                freed += **cost;
                freed >= need
            })
            .unwrap()
            .0;
        let window_us = i64::try_from(window.as_micros()).unwrap();
        u64::try_from((at + window_us - now_us + 999) / 1000).unwrap().max(1)
    };
    for k in (1000 - used + 1..=1000).step_by(7).chain([1000]) {
        let before = redis_now_us(&mut conn).await;
        let verdict = limiter.peek(&check("scan", &limits, &["p"], k)).await.unwrap();
        let after = redis_now_us(&mut conn).await;
        assert!(!verdict.allowed, "{k}: {verdict:?}");
        assert_eq!(verdict.decisions[0].remaining, 1000 - used);
        let retry = u64::try_from(verdict.decisions[0].retry_after.unwrap().as_millis()).unwrap();
        let need = k - (1000 - used);
        assert!(
            (expected(need, after)..=expected(need, before)).contains(&retry),
            "cost {k}: {retry} ms, the scan says {}..={}",
            expected(need, after),
            expected(need, before)
        );
    }
}
