//! The job queue against the real Redis: priorities and FIFO, delays,
//! unique keys, retries with back-off, dead jobs, expired leases, stale
//! workers, cancellation, exactly-once processing without failures, and
//! the operator's side: blocking waits, pausing, dead-letter handling,
//! overview counts and the queue registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Backoff, Failed, Keyspace, NewJob, Queue, RedisConfig, RedisConnection};

const LEASE: Duration = Duration::from_secs(30);
const KEEP: Duration = Duration::from_secs(600);

fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn connect() -> RedisConnection {
    RedisConnection::connect(&RedisConfig::new(&redis_url()).unwrap()).await.unwrap()
}

async fn queue() -> (Queue, TestPrefix) {
    let prefix = TestPrefix::new(&redis_url());
    (Queue::new(connect().await, prefix.keyspace(), "default"), prefix)
}

/// (queued, scheduled or retrying, running, dead)
async fn counts(q: &Queue) -> (u64, u64, u64, u64) {
    let o = q.overview().await.unwrap();
    (o.queued, o.scheduled + o.retrying, o.running, o.dead)
}

fn job(kind: &str) -> NewJob {
    let mut job = NewJob::new(kind, "{}");
    job.backoff = Backoff::Fixed(Duration::from_millis(1));
    job
}

#[tokio::test]
async fn higher_priority_first_and_fifo_within_a_priority() {
    let (q, _prefix) = queue().await;
    for (kind, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -3)] {
        let mut j = job(kind);
        j.priority = priority;
        q.enqueue(&j).await.unwrap();
    }
    let mut order = Vec::new();
    while let Some(leased) = q.fetch(LEASE).await.unwrap() {
        order.push(leased.kind.clone());
    }
    assert_eq!(order, ["b", "d", "a", "c", "e"]);
}

#[tokio::test]
async fn a_delayed_job_waits_until_it_is_due() {
    let (q, _prefix) = queue().await;
    let mut j = job("later");
    j.delay = Duration::from_millis(150);
    let (id, _) = q.enqueue(&j).await.unwrap();
    assert_eq!(q.job(&id).await.unwrap().unwrap()["state"], "scheduled");
    assert!(q.fetch(LEASE).await.unwrap().is_none(), "not yet due");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(q.fetch(LEASE).await.unwrap().unwrap().id, id);
}

#[tokio::test]
async fn a_unique_key_returns_the_pending_job_until_it_finishes() {
    let (q, _prefix) = queue().await;
    let mut j = job("mail");
    j.unique_key = Some("welcome:42".into());
    let (first, created) = q.enqueue(&j).await.unwrap();
    assert!(created);
    assert_eq!(q.enqueue(&j).await.unwrap(), (first.clone(), false));
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    assert!(q.ack(&leased, "ok", KEEP).await.unwrap());
    let (second, created) = q.enqueue(&j).await.unwrap();
    assert!(created && second != first);
}

#[tokio::test]
async fn a_job_failing_twice_then_succeeding_ends_succeeded_after_three_attempts() {
    let (q, _prefix) = queue().await;
    let (id, _) = q.enqueue(&job("flaky")).await.unwrap();
    for attempt in 1..=2 {
        let leased = fetch_soon(&q).await;
        assert_eq!(leased.attempt, attempt);
        assert_eq!(q.fail(&leased, &format!("boom {attempt}"), false, KEEP).await.unwrap(), Some(Failed::Retrying));
    }
    let leased = fetch_soon(&q).await;
    assert!(q.ack(&leased, "{\"done\":true}", KEEP).await.unwrap());
    let record = q.job(&id).await.unwrap().unwrap();
    assert_eq!((record["state"].as_str(), record["attempts"].as_str()), ("succeeded", "3"));
    assert_eq!(record["result"], "{\"done\":true}");
}

/// Fetches, waiting out a short retry back-off.
async fn fetch_soon(q: &Queue) -> switchyard_kit::Leased {
    for _ in 0..100 {
        if let Some(leased) = q.fetch(LEASE).await.unwrap() {
            return leased;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no job became ready");
}

#[tokio::test]
async fn a_job_that_always_fails_is_dead_after_max_attempts_with_every_error() {
    let (q, _prefix) = queue().await;
    let (id, _) = q.enqueue(&job("doomed")).await.unwrap();
    let mut last = None;
    for attempt in 1..=3 {
        let leased = fetch_soon(&q).await;
        last = q.fail(&leased, &format!("error {attempt}"), false, KEEP).await.unwrap();
    }
    assert_eq!(last, Some(Failed::Dead));
    let record = q.job(&id).await.unwrap().unwrap();
    assert_eq!(record["state"], "dead");
    assert_eq!(record["last_error"], "error 3");
    let history: serde_json::Value = serde_json::from_str(&record["errors"]).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(counts(&q).await, (0, 0, 0, 1));
    assert!(q.fetch(LEASE).await.unwrap().is_none());
}

#[tokio::test]
async fn an_expired_lease_returns_the_job_and_the_stale_worker_cannot_settle_it() {
    let (q, _prefix) = queue().await;
    let (id, _) = q.enqueue(&job("slow")).await.unwrap();
    let stale = q.fetch(Duration::from_millis(50)).await.unwrap().unwrap();
    assert!(q.heartbeat(&stale, Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(q.reclaim_expired(100, KEEP).await.unwrap(), 1);
    let fresh = fetch_soon(&q).await;
    assert_eq!((fresh.id.as_str(), fresh.attempt), (id.as_str(), 2));
    assert!(!q.ack(&stale, "late", KEEP).await.unwrap(), "the stale attempt cannot ack");
    assert_eq!(q.fail(&stale, "late", false, KEEP).await.unwrap(), None);
    assert!(!q.heartbeat(&stale, LEASE).await.unwrap());
    assert!(q.ack(&fresh, "ok", KEEP).await.unwrap());
    let record = q.job(&id).await.unwrap().unwrap();
    assert!(record["errors"].contains("lease expired"));
}

#[tokio::test]
async fn only_waiting_jobs_can_be_cancelled() {
    let (q, _prefix) = queue().await;
    let (queued, _) = q.enqueue(&job("x")).await.unwrap();
    let mut later = job("y");
    later.delay = Duration::from_secs(60);
    let (scheduled, _) = q.enqueue(&later).await.unwrap();
    assert_eq!(q.cancel(&scheduled, KEEP).await.unwrap(), Some(true));
    let running = q.fetch(LEASE).await.unwrap().unwrap();
    assert_eq!(running.id, queued);
    assert_eq!(q.cancel(&queued, KEEP).await.unwrap(), Some(false), "running jobs are not cancelled");
    assert_eq!(q.cancel("nope", KEEP).await.unwrap(), None);
    assert_eq!(q.job(&scheduled).await.unwrap().unwrap()["state"], "cancelled");
    assert!(q.fetch(LEASE).await.unwrap().is_none());
}

#[tokio::test]
async fn ten_thousand_jobs_through_four_consumers_are_each_processed_exactly_once() {
    let (q, _prefix) = queue().await;
    let total = 10_000;
    for i in 0..total {
        q.enqueue(&NewJob::new("noop", &format!("{{\"n\":{i}}}"))).await.unwrap();
    }
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let (q, seen) = (q.clone(), seen.clone());
            tokio::spawn(async move {
                while let Some(leased) = q.fetch(LEASE).await.unwrap() {
                    *seen.lock().unwrap().entry(leased.payload.clone()).or_default() += 1;
                    assert!(q.ack(&leased, "", Duration::from_secs(60)).await.unwrap());
                }
            })
        })
        .collect();
    for consumer in consumers {
        consumer.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), total);
    assert!(seen.values().all(|&n| n == 1), "every job processed exactly once");
    assert_eq!(counts(&q).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn dead_jobs_can_be_retried_and_ids_name_their_queue() {
    let (q, _prefix) = queue().await;
    let mut j = job("doomed");
    j.max_attempts = 1;
    j.owner = "user:1".into();
    let (id, _) = q.enqueue(&j).await.unwrap();
    assert_eq!(Queue::queue_of(&id), Some("default"));
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    assert_eq!(q.fail(&leased, "no", false, KEEP).await.unwrap(), Some(Failed::Dead));
    assert_eq!(q.retry(&id).await.unwrap(), Some(true));
    let again = q.fetch(LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempt, 1);
    assert_eq!(q.retry(&id).await.unwrap(), Some(false), "a running job is not retried");
    assert_eq!(q.job(&id).await.unwrap().unwrap()["owner"], "user:1");
}

#[tokio::test]
async fn a_batch_enqueues_in_one_call_and_keeps_unique_keys() {
    let (q, _prefix) = queue().await;
    let mut unique = job("u");
    unique.unique_key = Some("same".into());
    let results = q.enqueue_many(&[job("a"), unique.clone(), unique, job("b")]).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0].1 && results[1].1 && !results[2].1 && results[3].1);
    assert_eq!(results[1].0, results[2].0);
    assert_eq!(counts(&q).await.0, 3);
}

#[tokio::test]
async fn fetch_many_leases_in_priority_order_and_says_when_the_next_job_is_due() {
    let (q, _prefix) = queue().await;
    for (kind, priority) in [("low", -1), ("high", 9), ("mid", 0)] {
        let mut j = job(kind);
        j.priority = priority;
        q.enqueue(&j).await.unwrap();
    }
    let mut later = job("later");
    later.delay = Duration::from_secs(30);
    q.enqueue(&later).await.unwrap();
    let fetched = q.fetch_many(LEASE, 2).await.unwrap();
    let kinds: Vec<_> = fetched.jobs.iter().map(|j| j.kind.as_str()).collect();
    assert_eq!(kinds, ["high", "mid"]);
    let due = fetched.next_due.expect("a scheduled job exists");
    assert!(due > Duration::from_secs(25) && due <= Duration::from_secs(30), "{due:?}");
    let rest = q.fetch_many(LEASE, 10).await.unwrap();
    assert_eq!(rest.jobs.len(), 1);
    assert_eq!(rest.jobs[0].kind, "low");
}

#[tokio::test]
async fn a_blocked_worker_wakes_when_a_job_is_enqueued_and_times_out_otherwise() {
    let (q, _prefix) = queue().await;
    let waiter = connect().await;
    assert!(!q.wait_for_work(&waiter, Duration::from_millis(50)).await.unwrap(), "nothing enqueued: times out");
    let sleeper = {
        let (q, waiter) = (q.clone(), waiter.clone());
        tokio::spawn(async move { q.wait_for_work(&waiter, Duration::from_secs(1)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.enqueue(&job("wake")).await.unwrap();
    assert!(sleeper.await.unwrap(), "woken by the enqueue, not by the timeout");
    assert_eq!(q.fetch(LEASE).await.unwrap().unwrap().kind, "wake");
}

#[tokio::test]
async fn a_released_job_is_queued_again_without_spending_an_attempt() {
    let (q, _prefix) = queue().await;
    let (id, _) = q.enqueue(&job("interrupted")).await.unwrap();
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    assert!(q.release(&leased).await.unwrap());
    assert!(!q.release(&leased).await.unwrap(), "released once");
    assert!(!q.ack(&leased, "", KEEP).await.unwrap(), "the released attempt cannot ack");
    let again = q.fetch(LEASE).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempt), (id.as_str(), 1));
}

#[tokio::test]
async fn a_final_failure_is_dead_at_once() {
    let (q, _prefix) = queue().await;
    let (id, _) = q.enqueue(&job("rejected")).await.unwrap();
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    assert_eq!(q.fail(&leased, "HTTP 400", true, KEEP).await.unwrap(), Some(Failed::Dead));
    let record = q.job(&id).await.unwrap().unwrap();
    assert_eq!((record["state"].as_str(), record["attempts"].as_str()), ("dead", "1"));
}

#[tokio::test]
async fn concurrent_enqueues_with_one_dedupe_key_create_one_job_even_after_it_ran() {
    let (q, _prefix) = queue().await;
    let mut tick = job("cron");
    tick.dedupe = Some(("nightly:1700000000".into(), Duration::from_secs(60)));
    let attempts: Vec<_> = (0..200)
        .map(|_| {
            let (q, tick) = (q.clone(), tick.clone());
            tokio::spawn(async move { q.enqueue(&tick).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for attempt in attempts {
        let (id, was_created) = attempt.await.unwrap();
        created += u32::from(was_created);
        ids.insert(id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    assert!(q.ack(&leased, "", KEEP).await.unwrap());
    assert!(!q.enqueue(&tick).await.unwrap().1, "still deduplicated after it succeeded");
    assert_eq!(counts(&q).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn a_sensitive_payload_is_deleted_once_the_job_succeeds_or_dies() {
    let (q, _prefix) = queue().await;
    let mut mail = job("mail");
    mail.payload = r#"{"body":"your code is 123456"}"#.into();
    mail.sensitive = true;
    let (id, _) = q.enqueue(&mail).await.unwrap();
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    assert!(leased.payload.contains("123456"));
    assert!(q.ack(&leased, "", KEEP).await.unwrap());
    let record = q.job(&id).await.unwrap().unwrap();
    assert_eq!(record["state"], "succeeded");
    assert!(!record.contains_key("payload"));

    mail.max_attempts = 1;
    let (dead, _) = q.enqueue(&mail).await.unwrap();
    let leased = q.fetch(LEASE).await.unwrap().unwrap();
    q.fail(&leased, "smtp down", false, KEEP).await.unwrap();
    let record = q.job(&dead).await.unwrap().unwrap();
    assert_eq!(record["state"], "dead");
    assert!(!record.contains_key("payload"), "nor kept once dead");
}

#[tokio::test]
async fn a_paused_queue_leases_nothing_until_resumed() {
    let (q, _prefix) = queue().await;
    q.pause().await.unwrap();
    q.enqueue(&job("held")).await.unwrap();
    assert!(q.fetch(LEASE).await.unwrap().is_none());
    assert!(q.overview().await.unwrap().paused);
    q.resume().await.unwrap();
    assert_eq!(q.fetch(LEASE).await.unwrap().unwrap().kind, "held");
}

#[tokio::test]
async fn the_overview_counts_every_state_the_lag_and_recent_throughput() {
    let (q, _prefix) = queue().await;
    for kind in ["ok", "retry", "dead", "waiting"] {
        let mut j = job(kind);
        j.max_attempts = if kind == "dead" { 1 } else { 3 };
        j.backoff = Backoff::Fixed(Duration::from_secs(60));
        q.enqueue(&j).await.unwrap();
    }
    let mut later = job("later");
    later.delay = Duration::from_secs(60);
    q.enqueue(&later).await.unwrap();
    for _ in 0..3 {
        let leased = q.fetch(LEASE).await.unwrap().unwrap();
        match leased.kind.as_str() {
            "ok" => assert!(q.ack(&leased, "", KEEP).await.unwrap()),
            _ => {
                q.fail(&leased, "no", false, KEEP).await.unwrap();
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let o = q.overview().await.unwrap();
    assert_eq!((o.queued, o.scheduled, o.retrying, o.running, o.dead), (1, 1, 1, 0, 1));
    assert!(o.oldest_queued_age.unwrap() >= Duration::from_millis(20));
    assert_eq!((o.processed_last_minute, o.failed_last_minute), (1, 2));
    let _running = q.fetch(LEASE).await.unwrap().unwrap();
    let o = q.overview().await.unwrap();
    assert_eq!((o.queued, o.running, o.oldest_queued_age), (0, 1, None));
}

#[tokio::test]
async fn dead_jobs_are_listed_retried_by_id_or_all_and_purged() {
    let (q, _prefix) = queue().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut j = job(&format!("doomed{n}"));
        j.max_attempts = 1;
        ids.push(q.enqueue(&j).await.unwrap().0);
        let leased = q.fetch(LEASE).await.unwrap().unwrap();
        q.fail(&leased, &format!("error {n}"), false, KEEP).await.unwrap();
    }
    // Oldest death first (deaths within one millisecond: by id).
    let all: Vec<String> = q.dead(0, 10).await.unwrap().into_iter().map(|d| d.id).collect();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    let mut sorted_all = all.clone();
    sorted_all.sort();
    assert_eq!(sorted_all, sorted_ids);
    let page = q.dead(1, 2).await.unwrap();
    assert_eq!(page.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), all[1..3]);
    assert!(page[0].record["last_error"].starts_with("error "));
    assert_eq!(q.retry_dead(&[all[0].clone(), "default.missing".into()]).await.unwrap(), 1);
    assert_eq!(counts(&q).await, (1, 0, 0, 4));
    assert_eq!(q.retry_all_dead().await.unwrap(), 4);
    assert_eq!(counts(&q).await, (5, 0, 0, 0));
    for _ in 0..5 {
        let leased = q.fetch(LEASE).await.unwrap().unwrap();
        q.fail(&leased, "again", false, KEEP).await.unwrap();
    }
    assert_eq!(q.purge_dead().await.unwrap(), 5);
    assert_eq!(counts(&q).await, (0, 0, 0, 0));
    assert!(q.job(&ids[0]).await.unwrap().is_none(), "purged records are gone");
}

#[tokio::test]
async fn queues_register_their_names() {
    let prefix = TestPrefix::new(&redis_url());
    let conn = connect().await;
    let keys: Keyspace = prefix.keyspace();
    for name in ["mail", "default", "mail"] {
        Queue::new(conn.clone(), keys.clone(), name).register().await.unwrap();
    }
    assert_eq!(Queue::registered(&conn, &keys).await.unwrap(), ["default", "mail"]);
}

#[tokio::test]
async fn a_queue_registers_itself_with_its_first_job_and_again_after_redis_lost_its_keys() {
    let prefix = TestPrefix::new(&redis_url());
    let conn = connect().await;
    let keys: Keyspace = prefix.keyspace();
    let (mail, batch) =
        (Queue::new(conn.clone(), keys.clone(), "mail"), Queue::new(conn.clone(), keys.clone(), "batch"));
    mail.enqueue(&job("a")).await.unwrap();
    batch.enqueue_many(&[job("b"), job("c")]).await.unwrap();
    assert_eq!(Queue::registered(&conn, &keys).await.unwrap(), ["batch", "mail"]);

    // Only the first job registers: later ones cost no extra round trip.
    let mut raw = conn.clone();
    redis::cmd("DEL").arg(keys.key(&["queues"])).query_async::<()>(&mut raw).await.unwrap();
    mail.enqueue(&job("d")).await.unwrap();
    assert!(Queue::registered(&conn, &keys).await.unwrap().is_empty());

    // Redis loses every key (a restart without persistence): the next job
    // of each queue registers it again.
    let all: Vec<String> = redis::cmd("KEYS").arg(keys.pattern()).query_async(&mut raw).await.unwrap();
    redis::cmd("DEL").arg(&all).query_async::<()>(&mut raw).await.unwrap();
    mail.enqueue(&job("e")).await.unwrap();
    batch.enqueue_many(&[job("f")]).await.unwrap();
    assert_eq!(Queue::registered(&conn, &keys).await.unwrap(), ["batch", "mail"]);
}

#[tokio::test]
async fn many_attempts_are_acked_in_one_call_and_stale_ones_are_refused() {
    let (q, _prefix) = queue().await;
    for _ in 0..3 {
        q.enqueue(&job("burst")).await.unwrap();
    }
    let leased = q.fetch_many(LEASE, 3).await.unwrap().jobs;
    let mut stale = leased[2].clone();
    stale.attempt += 1;
    let results = vec![(&leased[0], "1"), (&leased[1], "2"), (&stale, "x")];
    assert_eq!(q.ack_many(&results, KEEP).await.unwrap(), [true, true, false]);
    assert_eq!(q.job(&leased[1].id).await.unwrap().unwrap()["result"], "2");
    let o = q.overview().await.unwrap();
    assert_eq!((o.running, o.processed_last_minute), (1, 2));
}

#[tokio::test]
async fn a_queue_new_to_the_registry_is_announced_once() {
    let (queue, prefix) = queue().await;
    let hub = switchyard_kit::PubSubHub::connect(&RedisConfig::new(&redis_url()).unwrap()).await.unwrap();
    let mut announcements = hub.subscribe(&Queue::registry_channel(&prefix.keyspace())).await.unwrap();
    queue.register().await.unwrap();
    queue.register().await.unwrap();
    let other = Queue::new(connect().await, prefix.keyspace(), "second");
    other.register().await.unwrap();
    let mut names = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(5), announcements.next()).await {
            Ok(Some(switchyard_kit::HubMessage::Message(name))) => names.push(name.to_string()),
            other => panic!("an announcement arrives: {other:?}"),
        }
    }
    // Registering the same name again announced nothing: the next is the other queue.
    assert_eq!(names, [queue.name(), "second"]);
}
