//! The job queue against the real Redis: priorities and FIFO, delays,
//! unique keys, retries with back-off, dead jobs, expired leases, stale
//! workers, cancellation, and exactly-once processing without failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_kit::testing::TestPrefix;
use switchyard_kit::{Backoff, Failed, NewJob, Queue, RedisConfig, RedisConnection};

const LEASE: Duration = Duration::from_secs(30);
const KEEP: Duration = Duration::from_secs(600);

async fn queue() -> (Queue, TestPrefix) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = RedisConnection::connect(&RedisConfig::new(&url).unwrap()).await.unwrap();
    let prefix = TestPrefix::new(&url);
    (Queue::new(conn, prefix.keyspace(), "default"), prefix)
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
        assert_eq!(q.fail(&leased, &format!("boom {attempt}"), KEEP).await.unwrap(), Some(Failed::Retrying));
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
        last = q.fail(&leased, &format!("error {attempt}"), KEEP).await.unwrap();
    }
    assert_eq!(last, Some(Failed::Dead));
    let record = q.job(&id).await.unwrap().unwrap();
    assert_eq!(record["state"], "dead");
    assert_eq!(record["last_error"], "error 3");
    let history: serde_json::Value = serde_json::from_str(&record["errors"]).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(q.counts().await.unwrap(), (0, 0, 0, 1));
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
    assert_eq!(q.fail(&stale, "late", KEEP).await.unwrap(), None);
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
    assert_eq!(q.counts().await.unwrap(), (0, 0, 0, 0));
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
    assert_eq!(q.fail(&leased, "no", KEEP).await.unwrap(), Some(Failed::Dead));
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
    assert_eq!(q.counts().await.unwrap().0, 3);
}
