//! Jobs: the HTTP face of the kit's `Queue` (enqueue, inspect, cancel,
//! retry, per tenant) and the handlers the worker runs.

pub mod handlers;
pub mod routes;
pub mod runner;
pub mod service;
