//! Logs and metrics: how the process tells operators what it is doing.

pub mod logging;
pub mod metrics;
