//! Rate limiting: policies per route group and caller enforced by a
//! middleware with the standard headers, and rate limiting as a service
//! (`/v1/ratelimit/*`) for other systems, both over the kit's
//! `RateLimiter`.

pub mod check;
pub mod middleware;
pub mod policy;
pub mod routes;
pub mod service;

pub use service::RateLimits;
