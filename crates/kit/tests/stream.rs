//! Event streams against the real Redis: ordered replay from any point,
//! trimming, consumer groups that deliver each event to one consumer,
//! reclaiming what a crashed consumer left, dead-lettering after too many
//! deliveries, exclusivity under concurrent consumers and reclaimers, and
//! the pool of connections blocking reads borrow.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_kit::testing::{redis_url, TestPrefix};
use switchyard_kit::{BlockingConnections, EventStream, NewEvent, RedisConfig, RedisConnection, StartAt};

async fn connect() -> RedisConnection {
    RedisConnection::connect(&RedisConfig::new(&redis_url()).unwrap()).await.unwrap()
}

async fn stream() -> (EventStream, TestPrefix) {
    let prefix = TestPrefix::new(&redis_url());
    (EventStream::new(connect().await, prefix.keyspace(), "users"), prefix)
}

fn event(n: usize) -> NewEvent {
    NewEvent::new("user.created", &format!("{{\"n\":{n}}}"))
}

/// Publishes events 0..count, a hundred per round trip.
async fn publish_events(s: &EventStream, count: usize) {
    for start in (0..count).step_by(100) {
        s.publish_many(&(start..count.min(start + 100)).map(event).collect::<Vec<_>>()).await.unwrap();
    }
}

/// Every task's items, in task order.
async fn joined<T>(tasks: Vec<tokio::task::JoinHandle<Vec<T>>>) -> Vec<T> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

#[tokio::test]
async fn events_are_replayed_in_order_from_any_point() {
    let (s, _prefix) = stream().await;
    let mut ids = vec![s.publish(&event(0)).await.unwrap()];
    ids.extend(s.publish_many(&(1..10).map(event).collect::<Vec<_>>()).await.unwrap());
    assert_eq!(ids.len(), 10);

    let all = s.range(None, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids, "stored in the order published");
    assert_eq!((all[3].kind.as_str(), all[3].data.as_str()), ("user.created", "{\"n\":3}"));
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let at = all[0].timestamp_ms().unwrap();
    assert!(at <= now_ms + 1000 && at + 60_000 > now_ms, "the id carries the append time: {at} vs {now_ms}");

    let page = s.range(Some(&ids[3]), 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids[4..7]);
    assert!(s.range(Some(&ids[9]), 10).await.unwrap().is_empty(), "nothing after the last");
    assert!(s.publish_many(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stream_keeps_about_its_maximum_length() {
    let (s, _prefix) = stream().await;
    let s = s.with_max_len(10);
    publish_events(&s, 1000).await;
    let length = s.stats().await.unwrap().length;
    // `MAXLEN ~` trims whole radix-tree nodes (100 entries by default).
    assert!((10..=110).contains(&length), "1000 published, about 10 kept: {length}");
    let newest = s.range(None, 1000).await.unwrap().pop().unwrap();
    assert_eq!(newest.data, "{\"n\":999}", "trimming drops the oldest");
}

#[tokio::test]
async fn a_group_delivers_each_event_to_one_consumer_until_acknowledged() {
    let (s, _prefix) = stream().await;
    assert!(s.create_group("mailer", StartAt::Beginning).await.unwrap());
    assert!(!s.create_group("mailer", StartAt::Beginning).await.unwrap(), "exists already");
    let ids = s.publish_many(&(0..3).map(event).collect::<Vec<_>>()).await.unwrap();

    let a = s.read_group("mailer", "a", 2).await.unwrap();
    let b = s.read_group("mailer", "b", 10).await.unwrap();
    let got: Vec<String> = a.iter().chain(&b).map(|d| d.event.id.clone()).collect();
    assert_eq!(got, ids, "in order, each to one consumer");
    assert!(a.iter().chain(&b).all(|d| d.deliveries == 1));
    assert!(s.read_group("mailer", "c", 10).await.unwrap().is_empty(), "nothing left to deliver");

    let stats = s.stats().await.unwrap();
    assert_eq!(stats.length, 3);
    assert_eq!((stats.first_id.as_deref(), stats.last_id.as_deref()), (Some(ids[0].as_str()), Some(ids[2].as_str())));
    let group = &stats.groups[0];
    assert_eq!((group.name.as_str(), group.consumers, group.pending, group.lag), ("mailer", 2, 3, Some(0)));
    assert_eq!(group.last_delivered_id, ids[2]);

    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(s.ack("mailer", &refs).await.unwrap(), 3);
    assert_eq!(s.ack("mailer", &refs).await.unwrap(), 0, "acknowledging twice changes nothing");
    assert_eq!(s.stats().await.unwrap().groups[0].pending, 0);

    assert!(s.delete_group("mailer").await.unwrap());
    assert!(!s.delete_group("mailer").await.unwrap(), "deleted already");
    assert!(s.stats().await.unwrap().groups.is_empty());
    let (missing, _other) = stream().await;
    assert!(!missing.delete_group("mailer").await.unwrap(), "no stream, no group");
}

#[tokio::test]
async fn a_group_started_at_the_end_sees_only_new_events_and_groups_are_independent() {
    let (s, _prefix) = stream().await;
    s.publish(&event(0)).await.unwrap();
    s.create_group("live", StartAt::End).await.unwrap();
    s.create_group("audit", StartAt::Beginning).await.unwrap();
    let new = s.publish(&event(1)).await.unwrap();
    let live = s.read_group("live", "a", 10).await.unwrap();
    assert_eq!(live.iter().map(|d| d.event.id.clone()).collect::<Vec<_>>(), [new]);
    assert_eq!(s.read_group("audit", "a", 10).await.unwrap().len(), 2, "another group gets everything again");
    let stats = s.stats().await.unwrap();
    assert_eq!(stats.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["audit", "live"]);
}

#[tokio::test]
async fn a_waiting_read_returns_when_an_event_arrives() {
    let (s, _prefix) = stream().await;
    s.create_group("g", StartAt::End).await.unwrap();
    let waiter = connect().await;
    let reader = {
        let s = s.clone();
        tokio::spawn(async move { s.read_group_waiting(&waiter, "g", "a", 10, Duration::from_secs(10)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = s.publish(&event(7)).await.unwrap();
    let got = reader.await.unwrap();
    assert_eq!(got.iter().map(|d| d.event.id.clone()).collect::<Vec<_>>(), [id]);
    let waiter = connect().await;
    assert!(s.read_group_waiting(&waiter, "g", "a", 10, Duration::from_millis(20)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_events_through_four_concurrent_consumers_are_each_delivered_once() {
    let (s, _prefix) = stream().await;
    s.create_group("workers", StartAt::Beginning).await.unwrap();
    publish_events(&s, 1000).await;
    let mut tasks = Vec::new();
    for consumer in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let batch = s.read_group("workers", &format!("c{consumer}"), 7).await.unwrap();
                if batch.is_empty() {
                    return seen;
                }
                let ids: Vec<&str> = batch.iter().map(|d| d.event.id.as_str()).collect();
                assert_eq!(s.ack("workers", &ids).await.unwrap(), u64::try_from(ids.len()).unwrap());
                seen.extend(batch.into_iter().map(|d| d.event.data));
            }
        }));
    }
    let all = joined(tasks).await;
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (1000, 1000), "every event once, none twice");
    assert_eq!(s.stats().await.unwrap().groups[0].pending, 0);
}

#[tokio::test]
async fn unacknowledged_events_are_reclaimed_and_dead_lettered_after_too_many_deliveries() {
    let (s, _prefix) = stream().await;
    s.create_group("billing", StartAt::Beginning).await.unwrap();
    let id = s.publish(&NewEvent::new("invoice.due", "{\"amount\":5}")).await.unwrap();
    assert_eq!(s.read_group("billing", "crashed", 10).await.unwrap()[0].deliveries, 1);

    let fresh = s.reclaim("billing", "b", Duration::from_secs(60), 10, 3).await.unwrap();
    assert!(fresh.claimed.is_empty() && fresh.dead.is_empty(), "not idle long enough: {fresh:?}");
    let second = s.reclaim("billing", "b", Duration::ZERO, 10, 3).await.unwrap();
    assert_eq!(second.claimed.len(), 1);
    assert_eq!((second.claimed[0].event.id.as_str(), second.claimed[0].deliveries), (id.as_str(), 2));
    assert_eq!(second.claimed[0].event.data, "{\"amount\":5}");
    let third = s.reclaim("billing", "c", Duration::ZERO, 10, 3).await.unwrap();
    assert_eq!(third.claimed[0].deliveries, 3);

    // Delivered three times and still not acknowledged: dead, not again.
    let fourth = s.reclaim("billing", "d", Duration::ZERO, 10, 3).await.unwrap();
    assert!(fourth.claimed.is_empty());
    assert_eq!(fourth.dead, std::slice::from_ref(&id));
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.groups[0].pending, stats.dead_letters, stats.length), (0, 1, 1));
    let dead = s.dead(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].event.id.as_str(), dead[0].event.kind.as_str()), (id.as_str(), "invoice.due"));
    assert_eq!((dead[0].group.as_str(), dead[0].deliveries), ("billing", 3));
    assert!(s.dead(Some(&dead[0].id), 10).await.unwrap().is_empty());
    assert!(s.reclaim("billing", "d", Duration::ZERO, 10, 3).await.unwrap().dead.is_empty(), "dead once");
}

#[tokio::test]
async fn an_event_trimmed_away_while_pending_is_dropped_by_the_reclaim() {
    let (s, _prefix) = stream().await;
    s.create_group("g", StartAt::Beginning).await.unwrap();
    let id = s.publish(&event(0)).await.unwrap();
    s.read_group("g", "crashed", 10).await.unwrap();
    let mut conn = connect().await;
    redis::cmd("XDEL").arg(s.key()).arg(&id).query_async::<()>(&mut conn).await.unwrap();
    let reclaimed = s.reclaim("g", "b", Duration::ZERO, 10, 3).await.unwrap();
    assert!(reclaimed.claimed.is_empty() && reclaimed.dead.is_empty(), "{reclaimed:?}");
    assert_eq!(s.stats().await.unwrap().groups[0].pending, 0, "no longer pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reclaimers_never_take_the_same_event() {
    let (s, _prefix) = stream().await;
    s.create_group("g", StartAt::Beginning).await.unwrap();
    publish_events(&s, 200).await;
    assert_eq!(s.read_group("g", "crashed", 200).await.unwrap().len(), 200);
    // A reclaim takes entries idle for a second; a taken entry's idle time
    // starts again, so no second reclaimer can take it within the test.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut tasks = Vec::new();
    for reclaimer in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            loop {
                let got = s.reclaim("g", &format!("r{reclaimer}"), Duration::from_secs(1), 9, 10).await.unwrap();
                if got.claimed.is_empty() {
                    return taken;
                }
                taken.extend(got.claimed.into_iter().map(|d| (d.event.id, d.deliveries)));
            }
        }));
    }
    let all = joined(tasks).await;
    let distinct: HashSet<&String> = all.iter().map(|(id, _)| id).collect();
    assert_eq!((all.len(), distinct.len()), (200, 200), "each pending event taken by exactly one reclaimer");
    assert!(all.iter().all(|(_, deliveries)| *deliveries == 2));
}

#[tokio::test]
async fn a_stream_that_does_not_exist_has_empty_stats() {
    let (s, _prefix) = stream().await;
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.length, stats.first_id, stats.groups.len(), stats.dead_letters), (0, None, 0, 0));
}

#[tokio::test]
async fn blocking_connections_are_bounded_and_reused_only_after_their_command_completed() {
    let (s, _prefix) = stream().await;
    s.create_group("g", StartAt::End).await.unwrap();
    let pool = BlockingConnections::new(&RedisConfig::new(&redis_url()).unwrap(), 1, Duration::from_secs(5));
    let first = pool.try_get().await.unwrap().expect("one connection is free");
    assert!(pool.try_get().await.unwrap().is_none(), "the only one is lent out: no waiting for it");
    let waited = s.read_group_waiting(first.connection(), "g", "a", 1, Duration::from_millis(10)).await.unwrap();
    assert!(waited.is_empty());
    first.done();

    // Dropped without `done` (its caller went away mid-wait): the permit is
    // free again, and the next borrower gets a fresh connection that works.
    let abandoned = pool.try_get().await.unwrap().expect("returned after done");
    drop(abandoned);
    let next = pool.try_get().await.unwrap().expect("the permit came back");
    let id = s.publish(&event(1)).await.unwrap();
    let got = s.read_group_waiting(next.connection(), "g", "a", 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[0].event.id, id);
}

#[tokio::test]
async fn an_idempotency_key_is_stored_only_when_given_and_read_back_everywhere() {
    let (s, _prefix) = stream().await;
    assert!(s.create_group("audit", StartAt::Beginning).await.unwrap());
    let keyed = NewEvent::new("user.created", "{}").with_key("42");
    assert_eq!(keyed.key.as_deref(), Some("42"));
    let ids = s.publish_many(&[keyed, event(1)]).await.unwrap();

    let replayed = s.range(None, 10).await.unwrap();
    assert_eq!(replayed[0].key.as_deref(), Some("42"));
    assert_eq!(replayed[1].key, None, "no key given, none stored");
    let mut conn = connect().await;
    let fields: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(s.key()).arg(&ids[1]).arg(&ids[1]).query_async(&mut conn).await.unwrap();
    assert!(fields[0].1.iter().all(|(f, _)| f != "key"), "no empty key field: {fields:?}");

    let delivered = s.read_group("audit", "c1", 10).await.unwrap();
    assert_eq!(delivered[0].event.key.as_deref(), Some("42"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reclaimed = s.reclaim("audit", "c2", Duration::from_millis(1), 10, 1).await.unwrap();
    assert_eq!(reclaimed.dead, ids, "delivered once, the limit: dead-lettered");
    let dead = s.dead(None, 10).await.unwrap();
    assert_eq!(dead[0].event.key.as_deref(), Some("42"), "the dead letter keeps the key");
}
