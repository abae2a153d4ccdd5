//! Leaderboards over HTTP: named boards per tenant (a user and the API
//! clients it owns share one namespace, so tenants never see each other's
//! boards), plus the global, read-only `actions` board that the action flow
//! feeds.

pub mod routes;
pub mod service;
pub use service::BoardService;
