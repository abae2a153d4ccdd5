//! The connection against real Redis servers: the shared one for plain
//! commands, and a private one this test may kill and restart.

use std::time::Duration;

use redis::AsyncCommands;
use switchyard_kit::testing::RedisProcess;
use switchyard_kit::{Keyspace, RedisConfig, RedisConnection};

fn shared_redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn test_keyspace() -> Keyspace {
    Keyspace::new(&format!("sy-test-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

#[tokio::test]
async fn commands_pipelines_and_scripts_run_through_the_connection() {
    let conn = RedisConnection::connect(&RedisConfig::new(&shared_redis_url()).unwrap()).await.unwrap();
    conn.ping().await.unwrap();
    let ks = test_keyspace();
    let key = ks.tagged("t", &["counter"]);
    let mut c = conn.clone();

    let (a, b): (i64, i64) =
        redis::pipe().incr(&key, 2).incr(&key, 3).expire(&key, 60).ignore().query_async(&mut c).await.unwrap();
    assert_eq!((a, b), (2, 5));

    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let c2: i64 = script.key(&key).arg(10).invoke_async(&mut c).await.unwrap();
    assert_eq!(c2, 15);

    let _: () = c.del(&key).await.unwrap();
    let policy = conn.maxmemory_policy().await.unwrap();
    assert!(policy.is_some(), "a local redis allows CONFIG GET");
}

#[tokio::test]
async fn the_connection_comes_back_after_redis_restarts() {
    let mut server = RedisProcess::start().unwrap();
    let mut config = RedisConfig::new(&server.url()).unwrap();
    config.response_timeout = Duration::from_millis(500);
    let conn = RedisConnection::connect(&config).await.unwrap();
    let mut c = conn.clone();
    let _: () = c.set("k", "v1").await.unwrap();

    server.stop();
    let down = conn.ping().await.unwrap_err();
    assert!(down.is_unavailable(), "a stopped server is reported unavailable: {down}");

    server.restart().unwrap();
    // The manager reconnects in the background; the first command after the
    // restart may still see the old, broken socket.
    let mut ok = false;
    for _ in 0..50 {
        if conn.ping().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the connection recovered after the restart");
    let _: () = c.set("k", "v2").await.unwrap();
    let v: String = c.get("k").await.unwrap();
    assert_eq!(v, "v2");
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_instead_of_hanging() {
    let port = switchyard_kit::testing::free_port().unwrap();
    let mut config = RedisConfig::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    config.connect_timeout = Duration::from_millis(300);
    let err = RedisConnection::connect(&config).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}
