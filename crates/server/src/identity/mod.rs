//! Identity: users, passwords, sessions, access and refresh tokens,
//! one-time codes and password resets, and the extractors (`CurrentUser`,
//! `CurrentClient`, `Principal`) every endpoint authenticates with.

pub mod domain;
pub mod extract;
pub mod otp;
pub mod password;
pub mod routes;
pub mod service;
pub mod sessions;
pub mod store;
pub mod tokens;

pub use extract::{CurrentAdmin, CurrentClient, CurrentUser, Principal};
pub use service::Identity;
