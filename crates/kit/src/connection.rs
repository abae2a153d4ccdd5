//! One Redis connection for the whole process, whatever the topology.
//!
//! [`RedisConnection`] is a cheap-to-clone handle implementing redis-rs's
//! `ConnectionLike`, so primitives run commands, pipelines and scripts on it
//! without knowing whether they talk to one server (a multiplexed
//! `ConnectionManager` that reconnects on its own) or to a cluster (a
//! `ClusterConnection` that follows slot moves). Sentinel is a third variant
//! to add here, not a change for callers.
//!
//! Pub/sub and blocking commands need connections of their own; they are
//! opened from [`RedisConfig`] by the primitives that need them.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::KitError;

/// Where Redis is: parsed from one URL string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (or a proxy in front of several): `redis://host:port/db`.
    Standalone(String),
    /// A Redis Cluster, given as a comma-separated list of seed node URLs:
    /// `redis://a:7000,redis://b:7001`.
    Cluster(Vec<String>),
}

impl RedisTopology {
    /// Parses `redis://...` (standalone) or a comma-separated list of URLs
    /// (cluster seed nodes). Only the scheme is checked here; redis-rs
    /// validates the rest when connecting.
    pub fn parse(url: &str) -> Result<Self, KitError> {
        let urls: Vec<String> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
        for u in &urls {
            let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|s| u.starts_with(s));
            if !scheme_ok {
                return Err(KitError::Config("a Redis URL must start with redis://, rediss:// or unix://".into()));
            }
            redis::parse_redis_url(u).ok_or_else(|| KitError::Config("the Redis URL cannot be parsed".into()))?;
        }
        match urls.len() {
            0 => Err(KitError::Config("the Redis URL is empty".into())),
            1 => Ok(Self::Standalone(urls.into_iter().next().unwrap_or_default())),
            _ => Ok(Self::Cluster(urls)),
        }
    }
}

/// How to reach Redis and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub topology: RedisTopology,
    /// Bound on establishing one TCP connection.
    pub connect_timeout: Duration,
    /// Bound on one command's answer; a dead server surfaces as an error
    /// after this long instead of a hang.
    pub response_timeout: Duration,
}

impl RedisConfig {
    pub fn new(url: &str) -> Result<Self, KitError> {
        Ok(Self {
            topology: RedisTopology::parse(url)?,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        })
    }
}

/// A shared, reconnecting connection to Redis. Clone it freely: clones share
/// one multiplexed connection (per node, on a cluster).
#[derive(Clone)]
pub enum RedisConnection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standalone(_) => f.write_str("RedisConnection::Standalone"),
            Self::Cluster(_) => f.write_str("RedisConnection::Cluster"),
        }
    }
}

impl RedisConnection {
    /// Connects once (the first connection must succeed); afterwards the
    /// connection re-establishes itself when Redis goes away and comes back.
    pub async fn connect(config: &RedisConfig) -> Result<Self, KitError> {
        match &config.topology {
            RedisTopology::Standalone(url) => {
                let client = redis::Client::open(connection_info(url)?)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    // Reconnect quickly and keep trying: a request waits at
                    // most response_timeout, never for the whole back-off.
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_with_config(client, manager_config).await?;
                Ok(Self::Standalone(manager))
            }
            RedisTopology::Cluster(nodes) => {
                let nodes = nodes.iter().map(|url| connection_info(url)).collect::<Result<Vec<_>, _>>()?;
                let client = ClusterClientBuilder::new(nodes)
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.response_timeout)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// PING, for readiness checks.
    pub async fn ping(&self) -> Result<(), KitError> {
        let mut conn = self.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// The server's `maxmemory-policy`, or `None` when `CONFIG GET` is not
    /// allowed (managed services often disable it).
    pub async fn maxmemory_policy(&self) -> Result<Option<String>, KitError> {
        let mut conn = self.clone();
        let reply: redis::RedisResult<Vec<String>> =
            redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async(&mut conn).await;
        match reply {
            Ok(pair) => Ok(pair.into_iter().nth(1)),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// `url` with TCP_NODELAY set. Commands are small and wait for their
/// replies: with Nagle's algorithm on (redis-rs's default), a command
/// written while an earlier one on the multiplexed connection is still
/// unacknowledged is held back until that ACK arrives.
pub(crate) fn connection_info(url: &str) -> Result<redis::ConnectionInfo, KitError> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)?;
    Ok(info.set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true)))
}

/// Runs a pipeline made only of invocations of `scripts`. A pipeline sends
/// EVALSHA without loading the script first, so after a Redis restart or
/// `SCRIPT FLUSH` every invocation fails with NOSCRIPT and nothing runs;
/// then the scripts are loaded and the pipeline is sent once more. (A
/// pipeline mixing other commands must not be retried this way: they would
/// run twice. Use EVAL there.)
pub async fn query_pipeline<T: redis::FromRedisValue>(
    conn: &RedisConnection,
    pipe: &Pipeline,
    scripts: &[&redis::Script],
) -> Result<T, KitError> {
    let mut conn = conn.clone();
    match pipe.query_async(&mut conn).await {
        Err(e) if is_noscript(&e) => {
            load_scripts(&mut conn, scripts).await?;
            Ok(pipe.query_async(&mut conn).await?)
        }
        other => Ok(other?),
    }
}

/// Runs one `EVALSHA` of `script` built by hand (cheaper than a
/// `ScriptInvocation`, which allocates per argument), loading the script
/// and sending the command once more after NOSCRIPT, as
/// [`query_pipeline`] does.
pub async fn query_evalsha<T: redis::FromRedisValue>(
    conn: &RedisConnection,
    evalsha: &Cmd,
    script: &redis::Script,
) -> Result<T, KitError> {
    let mut conn = conn.clone();
    match evalsha.query_async(&mut conn).await {
        Err(e) if is_noscript(&e) => {
            load_scripts(&mut conn, &[script]).await?;
            Ok(evalsha.query_async(&mut conn).await?)
        }
        other => Ok(other?),
    }
}

/// NOSCRIPT: the server does not have the script, so nothing ran.
fn is_noscript(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

async fn load_scripts(conn: &mut RedisConnection, scripts: &[&redis::Script]) -> Result<(), KitError> {
    for script in scripts {
        script.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}

/// Whether a `maxmemory-policy` may evict keys that switchyard keeps as
/// durable state (sessions, queues, streams). Only `noeviction` is safe:
/// the `volatile-*` policies evict exactly the keys that carry a TTL, such
/// as sessions.
pub fn policy_can_evict(policy: &str) -> bool {
    policy != "noeviction"
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_standalone_and_a_list_is_a_cluster() {
        assert_eq!(
            RedisTopology::parse("redis://127.0.0.1:6379/0").unwrap(),
            RedisTopology::Standalone("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(
            RedisTopology::parse("redis://a:7000, redis://b:7001").unwrap(),
            RedisTopology::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        assert!(RedisTopology::parse("").is_err());
        assert!(RedisTopology::parse("http://localhost").is_err());
    }

    #[test]
    fn only_noeviction_is_safe_for_durable_keys() {
        assert!(!policy_can_evict("noeviction"));
        for p in ["allkeys-lru", "volatile-lru", "volatile-ttl", "allkeys-random"] {
            assert!(policy_can_evict(p), "{p}");
        }
    }
}
