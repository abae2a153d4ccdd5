//! Jobs: the HTTP face of the kit's `Queue` (enqueue, inspect, cancel,
//! retry, per tenant; queue operations for admins), the handlers the
//! worker runs, the runner that runs them, and recurring (cron) jobs.

pub mod cron;
pub mod handlers;
pub mod queue_routes;
mod request_schema;
pub mod routes;
pub mod runner;
pub mod service;

pub use service::Jobs;
