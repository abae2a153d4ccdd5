//! Operations: liveness, readiness and metrics, for load balancers,
//! orchestrators and Prometheus.

pub mod routes;
pub mod service;
pub use service::{Ops, Signals};
