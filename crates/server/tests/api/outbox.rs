//! The transactional outbox end to end: events commit with their change
//! (none for a rolled-back one), reach their stream in order once each,
//! wait out a Redis outage, and two worker processes relaying at once
//! neither lose nor repeat nor reorder any.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard::outbox::{self, Pass, Relay};
use switchyard_kit::testing::{RedisProcess, TestPrefix};
use switchyard_kit::{Event, EventStream, Keyspace, RedisConfig, RedisConnection};
use tokio_util::sync::CancellationToken;

use crate::binary::{switchyard, Running};
use crate::helpers::{redis_url, spawn_app, TestApp};

const RETENTION: Duration = Duration::from_secs(86_400);

fn relay(app: &TestApp) -> Relay {
    Relay::new(app.db.clone(), app.redis.clone(), app.keys.clone(), RETENTION)
}

/// Passes until nothing is left; returns how many rows were relayed.
async fn relay_all(relay: &Relay) -> usize {
    let mut total = 0;
    loop {
        match relay.pass().await.expect("a pass") {
            Pass::Relayed(0) => return total,
            Pass::Relayed(n) => total += n,
            Pass::Busy => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn all_events(redis: &RedisConnection, keys: &Keyspace, stream: &str) -> Vec<Event> {
    EventStream::new(redis.clone(), keys.clone(), stream).range(None, 100_000).await.unwrap()
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

#[tokio::test]
async fn a_user_created_updated_and_deleted_yields_three_events_once_each_in_order() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let path = format!("/v1/users/{}", user.id);
    let patch = app.authed(Method::PATCH, &path, &admin.access_token).json(&json!({"display_name": "Ada"}));
    assert_eq!(patch.send().await.unwrap().status(), 200);
    assert_eq!(app.authed(Method::DELETE, &path, &admin.access_token).send().await.unwrap().status(), 204);

    assert!(all_events(&app.redis, &app.keys, "sys:users").await.is_empty(), "nothing before the relay runs");
    let relay = relay(&app);
    // Each signup of the helpers, the role change of the admin is SQL.
    assert_eq!(relay_all(&relay).await, 4);
    assert_eq!(relay_all(&relay).await, 0, "a relayed row is not relayed again");

    let events = all_events(&app.redis, &app.keys, "sys:users").await;
    let theirs: Vec<&Event> = events.iter().filter(|e| data(e)["user_id"] == user.id.as_str()).collect();
    let kinds: Vec<&str> = theirs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["user.created", "user.updated", "user.deleted"]);
    let keys: Vec<i64> = events.iter().map(|e| e.key.as_deref().unwrap().parse().unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "in outbox order, once each: {keys:?}");
    let updated = data(theirs[1]);
    assert_eq!((updated["display_name"].as_str(), updated["changed"][0].as_str()), (Some("Ada"), Some("display_name")));
    assert!(chrono::DateTime::parse_from_rfc3339(updated["occurred_at"].as_str().unwrap()).is_ok());
    assert_eq!(data(theirs[2])["deleted_by"], admin.id.as_str());

    let relayed: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE relayed_at IS NOT NULL")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(relayed, 4);
    sqlx::query("UPDATE outbox SET relayed_at = now() - interval '2 days'").execute(&app.db).await.unwrap();
    assert_eq!(relay.purge().await.unwrap(), 4, "relayed rows past the retention are deleted");
}

#[tokio::test]
async fn a_rolled_back_change_produces_no_event() {
    let app = spawn_app().await;
    let mut tx = app.db.begin().await.unwrap();
    let id =
        outbox::enqueue(&mut tx, "sys:users", "nobody", "user.created", &json!({"user_id": "nobody"})).await.unwrap();
    assert!(id > 0);
    tx.rollback().await.unwrap();
    assert_eq!(relay(&app).pass().await.unwrap(), Pass::Relayed(0));
    assert!(all_events(&app.redis, &app.keys, "sys:users").await.is_empty());
}

/// Events about one thing (a key) commit one after the other, in order;
/// events about different things on the same stream do not wait for each
/// other.
#[tokio::test]
async fn producers_of_one_stream_wait_only_for_the_same_order_key() {
    let app = spawn_app().await;
    let enqueue = |key: &'static str, n: i64| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            outbox::enqueue(&mut tx, "room-events", key, "message.sent", &json!({"n": n})).await.unwrap();
            tx
        }
    };
    let first = enqueue("room-a", 1).await;
    // Another key goes ahead while the first transaction is open (this
    // would wait forever under a lock per stream; the bound only turns
    // that into a failure).
    let other = tokio::time::timeout(Duration::from_secs(30), enqueue("room-b", 2)).await.expect("not held up");
    other.commit().await.unwrap();
    // The same key waits for the first transaction's commit.
    let mut same = tokio::spawn(enqueue("room-a", 3));
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut same).await.is_err(), "the same key waits");
    first.commit().await.unwrap();
    same.await.unwrap().commit().await.unwrap();
    assert_eq!(relay_all(&relay(&app)).await, 3);
    let got: Vec<i64> =
        all_events(&app.redis, &app.keys, "room-events").await.iter().map(|e| data(e)["n"].as_i64().unwrap()).collect();
    let position = |n: i64| got.iter().position(|&g| g == n).unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(position(1) < position(3), "one key's events in commit order: {got:?}");
}

#[tokio::test]
async fn an_event_committed_while_redis_is_down_arrives_once_redis_is_back() {
    let app = spawn_app().await;
    let mut private = RedisProcess::start().expect("a redis-server of the test's own");
    let redis = RedisConnection::connect(&RedisConfig::new(&private.url()).unwrap()).await.unwrap();
    let shutdown = CancellationToken::new();
    let relay = Relay::new(app.db.clone(), redis.clone(), app.keys.clone(), RETENTION);
    let running = tokio::spawn(relay.clone().run(shutdown.clone()));

    private.stop();
    let user = app.new_user().await; // commits user.created while the relay's Redis is down
                                     // The relay was notified and failed: the row waits.
    let mut waiting = 0;
    for _ in 0..50 {
        waiting = relay.pending().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting, 1, "the event waits in the outbox");

    private.restart().unwrap();
    for _ in 0..500 {
        let appended = EventStream::new(redis.clone(), app.keys.clone(), "sys:users").range(None, 100).await;
        if appended.is_ok_and(|events| !events.is_empty()) && relay.pending().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(relay.pending().await.unwrap(), 0, "relayed after Redis came back");
    // A notified or polled pass later must not append it again.
    assert_eq!(relay.pass().await.unwrap(), Pass::Relayed(0));
    let theirs = all_events(&redis, &app.keys, "sys:users").await;
    assert_eq!(theirs.len(), 1, "exactly once: {theirs:?}");
    assert_eq!(
        (theirs[0].kind.as_str(), data(&theirs[0])["user_id"].as_str()),
        ("user.created", Some(user.id.as_str()))
    );
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn two_worker_processes_relay_ten_thousand_rows_once_each_in_order_per_stream() {
    const ROWS: i64 = 10_000;
    const STREAMS: i64 = 4;
    let app = spawn_app().await;
    let guard = TestPrefix::new(&redis_url());
    let prefix = guard.keyspace().prefix().to_owned();
    let url = redis_url();
    let database = app.state.settings.database_url.clone();
    let database = secrecy::ExposeSecret::expose_secret(&database).to_owned();
    let env = [("DATABASE_URL", database.as_str()), ("REDIS_URL", url.as_str()), ("REDIS_KEY_PREFIX", prefix.as_str())];
    let workers: Vec<Running> = (0..2)
        .map(|_| {
            Running::new(
                switchyard(&["worker", "--queues", "none"], &env)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();

    // Ten commits of a thousand rows each, spread over four streams, each
    // waking the relays; the workers race for every one.
    for batch in 0..10 {
        let mut tx = app.db.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO outbox (stream, kind, data)
             SELECT 'load-' || (g % $3), 'load.event', json_build_object('n', g)
             FROM generate_series($1, $2) g ORDER BY g",
        )
        .bind(batch * 1000 + 1)
        .bind(batch * 1000 + 1000)
        .bind(STREAMS)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("SELECT pg_notify($1, '')").bind(outbox::CHANNEL).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    let keys = guard.keyspace();
    let redis = app.redis.clone();
    for _ in 0..1500 {
        let mut total = 0;
        for s in 0..STREAMS {
            total += EventStream::new(redis.clone(), keys.clone(), &format!("load-{s}")).stats().await.unwrap().length;
        }
        if total >= ROWS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let a late duplicate, if any, land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(workers);

    let ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, stream FROM outbox ORDER BY id").fetch_all(&app.db).await.unwrap();
    assert_eq!(ids.len() as i64, ROWS);
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for (id, stream) in ids {
        expected.entry(stream).or_default().push(id.to_string());
    }
    let mut seen = 0;
    for s in 0..STREAMS {
        let stream = format!("load-{s}");
        let events = all_events(&redis, &keys, &stream).await;
        let got: Vec<String> = events.iter().map(|e| e.key.clone().unwrap()).collect();
        assert_eq!(got.len(), expected[&stream].len(), "{stream}: none missing, none doubled");
        assert!(got == expected[&stream], "{stream}: every row once, in id order");
        seen += got.len();
    }
    assert_eq!(seen as i64, ROWS);
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE relayed_at IS NULL").fetch_one(&app.db).await.unwrap();
    assert_eq!(pending, 0);
}
