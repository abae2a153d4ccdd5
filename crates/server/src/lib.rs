//! switchyard: the server crate. Its modules form layers, each importing
//! only from the layers below it (the table in `layers.rs`, checked by a
//! test, and drawn in ARCHITECTURE.md):
//!
//! 1. leaves: `validation`, then `domain` (who is calling), `config`,
//!    `secrets`, `tls`;
//! 2. the toolkit capabilities are written with: `http`, `telemetry`,
//!    `mail`, `outbox`;
//! 3. capabilities, one module each, never importing one another: `ops`,
//!    `identity`, `clients`, `locks`, `ratelimit`, `leaderboards`,
//!    `events`, `actions`, `jobs`, `notifications`, `analytics`,
//!    `realtime`, `tasks`, `syslog`;
//! 4. the composition root and the processes: `app` (state, wiring,
//!    router, OpenAPI), `startup`, `worker`, `cli`, `shutdown`.

pub mod actions;
pub mod analytics;
pub mod app;
pub mod chat;
pub mod cli;
pub mod clients;
pub mod config;
pub mod domain;
pub mod eventlog;
pub mod events;
pub mod http;
pub mod identity;
pub mod jobs;
#[cfg(test)]
mod layers;
pub mod leaderboards;
pub mod locks;
pub mod mail;
pub mod notifications;
pub mod ops;
pub mod outbox;
pub mod ratelimit;
pub mod realtime;
pub mod secrets;
pub mod shutdown;
pub mod startup;
pub mod syslog;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod validation;
pub mod worker;
