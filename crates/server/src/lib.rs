//! switchyard: the server crate. One module per capability (today:
//! `ops`), plus the shared edge (`http`), configuration, start-up and
//! telemetry. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod config;
pub mod http;
pub mod ops;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod worker;
