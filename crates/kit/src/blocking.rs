//! Connections for blocking commands (`XREADGROUP BLOCK`, `BLPOP`).
//!
//! A blocking command holds its connection for the whole wait, and on the
//! shared multiplexed connection every other command would queue behind it.
//! So each wait borrows a connection of its own from this pool: at most
//! `max` exist at once (a request that finds none free does not wait, it is
//! told so), and each allows a reply as late as the longest wait plus the
//! usual response timeout. A connection goes back to the pool only after
//! its command completed: one dropped mid-wait (the caller went away) still
//! has the command outstanding, so it is closed instead of reused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{KitError, RedisConfig, RedisConnection};

/// See the module documentation. Clones share the pool.
#[derive(Clone, Debug)]
pub struct BlockingConnections {
    config: RedisConfig,
    idle: Arc<Mutex<Vec<RedisConnection>>>,
    permits: Arc<Semaphore>,
    max_wait: Duration,
}

/// One borrowed connection; give it back with [`BlockingConnection::done`].
#[derive(Debug)]
pub struct BlockingConnection {
    conn: RedisConnection,
    pool: BlockingConnections,
    _permit: OwnedSemaphorePermit,
}

impl BlockingConnections {
    /// A pool of at most `max` connections to the Redis of `config`, for
    /// waits of at most `max_wait`.
    pub fn new(config: &RedisConfig, max: usize, max_wait: Duration) -> Self {
        let mut config = config.clone();
        config.response_timeout += max_wait;
        Self { config, idle: Arc::default(), permits: Arc::new(Semaphore::new(max)), max_wait }
    }

    /// The longest wait a borrowed connection allows.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// A connection for one blocking command, or `None` when all `max` are
    /// in use.
    pub async fn try_get(&self) -> Result<Option<BlockingConnection>, KitError> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else { return Ok(None) };
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(conn) => conn,
            None => RedisConnection::connect(&self.config).await?,
        };
        Ok(Some(BlockingConnection { conn, pool: self.clone(), _permit: permit }))
    }
}

impl BlockingConnection {
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// Returns the connection to the pool once its command completed.
    pub fn done(self) {
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.push(self.conn);
        }
    }
}
