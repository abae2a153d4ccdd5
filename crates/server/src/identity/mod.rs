//! Identity: users, passwords, sessions, access and refresh tokens,
//! one-time codes, password resets and user management (`users`). It verifies access tokens for the
//! authentication layer (`Identity::authenticate`); the extractors that
//! read the outcome are in `crate::http::auth`.
//!
//! Secrets are never compared as plain text: passwords go through Argon2's
//! verifier, JWT signatures through HMAC verification (both constant-time),
//! and refresh tokens, codes and API keys are compared or looked up by
//! their hashes, so a timing difference reveals nothing about the secret.

pub mod domain;
pub mod otp;
pub mod password;
pub mod routes;
pub mod service;
pub mod sessions;
pub mod store;
pub mod tokens;
pub mod user_routes;
pub mod users;

pub use service::{AccountKeys, Identity, MailOutbox, USERS_STREAM};
