//! Rate limiting: policies per route group and caller enforced by a
//! middleware with the standard headers (`enforcement`, `middleware`), and
//! rate limiting as a service (`/v1/ratelimit/*`: `service`, `routes`) for
//! other systems, both over the kit's `RateLimiter`.

pub mod enforcement;
pub mod middleware;
pub mod policy;
pub mod routes;
pub mod service;

pub use enforcement::RateLimits;
pub use service::CheckService;
