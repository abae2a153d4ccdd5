//! Tasks: an account's work items moving from open to completed. This
//! module owns the `tasks` table; `task.created` and `task.completed` go
//! through the outbox (in the change's transaction) to the account's
//! stream `tasks` (`<account>/tasks`, e.g. `user:<id>/tasks`).
//!
//! Invariants: another account's task is a 404; a task is completed once
//! (the completing UPDATE only matches an open task, and its row lock makes
//! concurrent completions wait and then miss, so exactly one wins and the
//! others get a 409).

pub mod routes;
pub mod service;
pub mod store;

pub use service::Tasks;
