//! API clients: registered by users, authenticated by rotating API keys.

pub mod keys;
pub mod routes;
pub mod service;
pub mod store;

pub use service::Clients;
