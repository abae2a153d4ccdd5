//! switchyard's API tests: one binary, one module per area. Every test
//! starts the real application on an ephemeral port against the real
//! PostgreSQL (a fresh database of its own) and Redis (a key prefix of its
//! own), so tests run in parallel and leave nothing behind.

mod accounts;
mod actions;
mod activity;
mod analytics;
mod binary;
mod chat;
mod clients;
mod edge;
mod eventlog;
mod events;
mod helpers;
mod identity;
mod job_handlers;
mod jobs;
mod leaderboards;
mod locks;
mod mail;
mod notifications;
mod ops;
mod outbox;
mod presence;
mod ratelimit;
mod realtime;
mod realtime_load;
mod tasks;
mod users;
mod worker;
