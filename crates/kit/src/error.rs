//! The one error type of the kit layer; the server converts it at its edge.

/// Everything a kit primitive can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// Redis answered with an error, or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A network failure outside Redis's own client (e.g. a timed-out connect).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A configuration value handed to the kit is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A key prefix or key segment breaks the naming rules.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

impl KitError {
    /// True when the error means Redis could not be reached or did not answer
    /// in time (as opposed to Redis rejecting a command).
    pub fn is_unavailable(&self) -> bool {
        match self {
            KitError::Redis(e) => {
                e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            KitError::Io(_) => true,
            _ => false,
        }
    }
}
