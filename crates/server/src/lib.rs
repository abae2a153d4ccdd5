//! switchyard: the server crate. One module per capability (today:
//! `ops`, `actions`, `identity`, `clients`, `locks`, `leaderboards`, `ratelimit`), plus the shared edge (`http`), configuration, start-up and
//! telemetry. See ARCHITECTURE.md for the map.

pub mod actions;
pub mod cli;
pub mod clients;
pub mod config;
pub mod events;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod leaderboards;
pub mod locks;
pub mod mail;
pub mod notifications;
pub mod ops;
pub mod ratelimit;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod validation;
pub mod worker;
