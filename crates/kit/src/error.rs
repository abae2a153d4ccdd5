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
    /// A value is outside what the primitive accepts (e.g. a score that
    /// would overflow); nothing was changed.
    #[error("out of range: {0}")]
    OutOfRange(String),
}

impl KitError {
    /// True when the error means Redis is not answering yet: it could not be
    /// reached, did not answer in time, or said it cannot serve now (still
    /// loading its data, a script running too long, a cluster or replica
    /// not ready), as opposed to Redis rejecting a command. Retrying later
    /// can succeed.
    pub fn is_unavailable(&self) -> bool {
        use redis::{ErrorKind, ServerErrorKind};
        match self {
            KitError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        ErrorKind::Server(
                            ServerErrorKind::BusyLoading
                                | ServerErrorKind::TryAgain
                                | ServerErrorKind::ClusterDown
                                | ServerErrorKind::MasterDown
                                | ServerErrorKind::ReadOnly
                        )
                    )
                    || e.code() == Some("BUSY")
            }
            KitError::Io(_) => true,
            _ => false,
        }
    }
}
