//! Benchmark scenarios as code, and the registry the CLI looks them up in.
//!
//! A scenario is one kind of request the service gets under load (a health
//! probe, an API-key authenticated call, a rate-limit check, a job enqueue,
//! ...). Keeping each one as a small Rust type, rather than as configuration,
//! lets it do real setup work (sign up a user, create an API key) and build
//! each request exactly as a client would.
//!
//! Adding a scenario takes two steps:
//! 1. a new file in this folder with a type implementing [`Scenario`];
//! 2. one `mod` line and one [`Entry::of`] line in [`ALL`] below.
//!
//! The engine is generic over the scenario type, so the request path is
//! monomorphised: no boxing or dynamic dispatch per request. Only the choice
//! of scenario by name goes through the [`Entry`] function pointer.

use std::future::Future;

use anyhow::Result;
use futures::future::BoxFuture;
use reqwest::{Client, Response, StatusCode};

use crate::engine::{self, Interrupt, RunConfig, RunResult};

mod account;
pub mod actions;
pub mod apikey_auth;
pub mod health;
pub mod ratelimit_check;
pub mod token_auth;

/// Every scenario the tool knows, in the order `switchyard-bench list` shows them.
pub const ALL: &[Entry] = &[
    Entry::of::<health::Health>(),
    Entry::of::<apikey_auth::ApiKeyAuth>(),
    Entry::of::<token_auth::TokenAuth>(),
    Entry::of::<ratelimit_check::RateLimitCheck>(),
    Entry::of::<actions::Actions>(),
];

/// All registered scenarios.
pub fn all() -> &'static [Entry] {
    ALL
}

/// The scenario registered under `name`, if any.
pub fn find(name: &str) -> Option<&'static Entry> {
    ALL.iter().find(|entry| entry.name == name)
}

/// What a scenario gets to build its requests and do its setup: the shared
/// HTTP client and where the service is.
#[derive(Debug, Clone)]
pub struct Context {
    /// The client every worker shares (keep-alive pool, timeouts already set).
    pub client: Client,
    /// Base URL of the service, without a trailing slash.
    pub base_url: String,
    /// Number of workers that will call [`Scenario::request`] concurrently;
    /// `worker` arguments are in `0..concurrency`.
    pub concurrency: usize,
}

impl Context {
    /// `path` (starting with `/`) resolved against the base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// How one request of a scenario ended, when the service answered at all.
///
/// Transport failures (connection refused, timeout, broken body) are the
/// `Err` side of [`Scenario::request`]'s result instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The service answered as the scenario expects.
    Success,
    /// The service answered with a status the scenario did not expect.
    UnexpectedStatus(StatusCode),
}

impl Outcome {
    /// Reads `response`'s body to the end (so the keep-alive connection goes
    /// back to the pool) and compares its status with `expected`.
    pub async fn expect_status(response: Response, expected: StatusCode) -> Result<Self> {
        let status = response.status();
        response.bytes().await?;
        Ok(if status == expected { Self::Success } else { Self::UnexpectedStatus(status) })
    }
}

/// One benchmark scenario.
///
/// Implementations may write `async fn setup` / `async fn request` in their
/// `impl` block; the futures must be `Send` because workers are tokio tasks.
pub trait Scenario: Send + Sync + Sized + 'static {
    /// Name used on the command line (`switchyard-bench run <NAME>`).
    const NAME: &'static str;
    /// One-line description shown by `switchyard-bench list`.
    const DESCRIPTION: &'static str;

    /// Builds the scenario (precompute URLs, ...). No network access here.
    fn new(ctx: &Context) -> Self;

    /// Runs once before the warm-up, e.g. to sign up a user or create an
    /// API key. Its requests are not measured. Does nothing by default.
    fn setup(&mut self, ctx: &Context) -> impl Future<Output = Result<()>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Sends one request. `worker` is the index of the calling worker
    /// (`0..concurrency`) and `seq` counts that worker's requests from 0
    /// (warm-up included), so `(worker, seq)` is unique within a run.
    ///
    /// Return `Err` only for transport failures; an answer with the wrong
    /// status is `Ok(Outcome::UnexpectedStatus(..))`.
    fn request(&self, client: &Client, worker: usize, seq: u64) -> impl Future<Output = Result<Outcome>> + Send;
}

/// A registered scenario: its name, its description and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// See [`Scenario::NAME`].
    pub name: &'static str,
    /// See [`Scenario::DESCRIPTION`].
    pub description: &'static str,
    run: fn(RunConfig, Interrupt) -> BoxFuture<'static, Result<RunResult>>,
}

impl Entry {
    /// The registry entry for scenario type `S`.
    pub const fn of<S: Scenario>() -> Self {
        Self { name: S::NAME, description: S::DESCRIPTION, run: run_boxed::<S> }
    }

    /// Runs this scenario with the engine.
    pub fn run(&self, config: RunConfig, interrupt: Interrupt) -> BoxFuture<'static, Result<RunResult>> {
        (self.run)(config, interrupt)
    }
}

fn run_boxed<S: Scenario>(config: RunConfig, interrupt: Interrupt) -> BoxFuture<'static, Result<RunResult>> {
    Box::pin(engine::run::<S>(config, interrupt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_descriptions_one_line() {
        let mut names: Vec<_> = all().iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().len(), "duplicate scenario name");
        for entry in all() {
            assert!(!entry.name.is_empty());
            assert!(!entry.description.is_empty());
            assert!(!entry.description.contains('\n'), "{}", entry.name);
        }
    }

    #[test]
    fn find_by_name() {
        assert_eq!(find("health").map(|e| e.name), Some("health"));
        assert!(find("no-such-scenario").is_none());
    }

    #[test]
    fn context_url_joins_path() {
        switchyard::startup::install_tls_provider();
        let ctx = Context { client: Client::new(), base_url: "http://127.0.0.1:8080".into(), concurrency: 1 };
        assert_eq!(ctx.url("/health"), "http://127.0.0.1:8080/health");
    }
}
