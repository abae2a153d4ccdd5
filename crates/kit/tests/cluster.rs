//! The same connection type against a real three-node Redis Cluster:
//! commands are routed by slot, and a script over keys that share a hash
//! tag runs on the node that owns the tag (a hand-written one, and the
//! event stream's reclaim-to-dead-letter script).

use std::process::Command;

use redis::AsyncCommands;
use switchyard_kit::testing::RedisProcess;
use switchyard_kit::{EventStream, Keyspace, NewEvent, RedisConfig, RedisConnection, RedisTopology, StartAt};

#[tokio::test]
async fn a_cluster_runs_commands_and_tagged_scripts_through_the_same_connection() {
    let nodes: Vec<RedisProcess> = (0..3)
        .map(|_| RedisProcess::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]).unwrap())
        .collect();
    let mut create = Command::new(std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into()));
    create.arg("--cluster").arg("create");
    for node in &nodes {
        create.arg(format!("127.0.0.1:{}", node.port()));
    }
    let output = create.args(["--cluster-replicas", "0", "--cluster-yes"]).output().expect("redis-cli runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));

    let urls: Vec<String> = nodes.iter().map(RedisProcess::url).collect();
    let config = RedisConfig::new(&urls.join(",")).unwrap();
    assert!(matches!(config.topology, RedisTopology::Cluster(_)));

    // The cluster needs a moment to agree on its slots after creation.
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = RedisConnection::connect(&config).await {
            if c.ping().await.is_ok() {
                let mut probe = c.clone();
                if probe.set::<_, _, ()>("probe-a", 1).await.is_ok()
                    && probe.set::<_, _, ()>("probe-z", 1).await.is_ok()
                {
                    conn = Some(c);
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let conn = conn.expect("cluster becomes ready");
    let mut c = conn.clone();

    let keys = Keyspace::new("sy").unwrap();
    // Keys in many different slots.
    for i in 0..50 {
        let _: () = c.set(keys.key(&["plain", &i.to_string()]), i).await.unwrap();
    }
    let v: i64 = c.get(keys.key(&["plain", "42"])).await.unwrap();
    assert_eq!(v, 42);

    // A multi-key script is legal only because both keys share the tag.
    let (a, b) = (keys.tagged("tenant-9", &["a"]), keys.tagged("tenant-9", &["b"]));
    let moved: i64 = redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1] * 2); return redis.call('GET', KEYS[2])",
    )
    .key(&a)
    .key(&b)
    .arg(21)
    .invoke_async(&mut c)
    .await
    .unwrap();
    assert_eq!(moved, 42);

    // The event stream's reclaim script moves an entry from the stream to
    // its dead-letter stream: two keys, one tag.
    let stream = EventStream::new(conn.clone(), keys.clone(), "orders");
    assert!(stream.create_group("billing", StartAt::Beginning).await.unwrap());
    let id = stream.publish(&NewEvent::new("order.placed", "{}")).await.unwrap();
    assert_eq!(stream.read_group("billing", "a", 10).await.unwrap().len(), 1);
    let reclaimed = stream.reclaim("billing", "b", std::time::Duration::ZERO, 10, 1).await.unwrap();
    assert_eq!(reclaimed.dead, std::slice::from_ref(&id));
    assert_eq!(stream.dead(None, 10).await.unwrap()[0].event.id, id);
}
