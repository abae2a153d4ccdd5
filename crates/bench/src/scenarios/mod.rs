//! Benchmark scenarios as code, and the registry the CLI looks them up in.
//!
//! A scenario is one kind of request the service gets under load (a health
//! probe, an API-key authenticated call, a rate-limit check, a job enqueue,
//! ...). Keeping each one as a small Rust type, rather than as configuration,
//! lets it do real setup work (sign up a user, create an API key) and build
//! each request exactly as a client would.
//!
//! Setup runs once, through the ordinary `reqwest` client of [`Context`],
//! and is not measured. The measured requests are the hot path, and the
//! load generator shares the machine's cores with the server and Redis, so
//! whatever CPU it spends per request is taken from the system it measures
//! and distorts the figures. So a scenario builds everything constant once,
//! in [`Scenario::new`] or [`Scenario::setup`]: a [`PrebuiltRequest`] holds
//! the method, the origin-form path as an `http::Uri`, the header values
//! (`host` included) and the body as `Bytes`, and per request cloning it is
//! a few reference counts and two small allocations. The request is then
//! sent on the calling worker's own keep-alive [`Connection`], which returns
//! just the status once the body has been read.
//!
//! Adding a scenario takes two steps:
//! 1. a new file in this folder with a type implementing [`Scenario`];
//! 2. one `mod` line and one [`Entry::of`] line in [`ALL`] below.
//!
//! The engine is generic over the scenario type, so the request path is
//! monomorphised: no boxing or dynamic dispatch per request. Only the choice
//! of scenario by name goes through the [`Entry`] function pointer.

use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use futures::future::BoxFuture;
use http::StatusCode;
use reqwest::Client;

use crate::connection::{Connection, Target};
use crate::engine::{self, Interrupt, RunConfig, RunResult};

pub use self::prebuilt::PrebuiltRequest;

pub(crate) mod account;
pub mod actions;
pub mod apikey_auth;
pub mod events_batch;
pub mod events_publish;
pub mod health;
mod keyed_post;
mod prebuilt;
pub mod ratelimit_check;
pub mod token_auth;

/// Every scenario the tool knows, in the order `switchyard-bench list` shows them.
pub const ALL: &[Entry] = &[
    Entry::of::<health::Health>(),
    Entry::of::<apikey_auth::ApiKeyAuth>(),
    Entry::of::<token_auth::TokenAuth>(),
    Entry::of::<ratelimit_check::RateLimitCheck>(),
    Entry::of::<actions::Actions>(),
    Entry::of::<events_publish::EventsPublish>(),
    Entry::of::<events_batch::EventsBatch>(),
];

/// All registered scenarios.
pub fn all() -> &'static [Entry] {
    ALL
}

/// The scenario registered under `name`, if any.
pub fn find(name: &str) -> Option<&'static Entry> {
    ALL.iter().find(|entry| entry.name == name)
}

/// What a scenario gets to build its requests and do its setup: a client
/// for the setup and where the service is.
#[derive(Debug, Clone)]
pub struct Context {
    /// A general-purpose client (timeouts already set) for
    /// [`Scenario::setup`] only; measured requests go through the worker's
    /// [`Connection`].
    pub client: Client,
    /// Base URL of the service, without a trailing slash.
    pub base_url: String,
    /// The service as the workers' connections see it (address, `host`
    /// header, path prefix).
    pub target: Arc<Target>,
    /// Number of workers that will call [`Scenario::request`] concurrently;
    /// `worker` arguments are in `0..concurrency`.
    pub concurrency: usize,
}

impl Context {
    /// The context of a run against `base_url` (an `http://` URL).
    pub fn new(client: Client, base_url: &str, concurrency: usize) -> Result<Self> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let target = Arc::new(Target::parse(&base_url)?);
        Ok(Self { client, base_url, target, concurrency })
    }

    /// `path` (starting with `/`) resolved against the base URL, for the
    /// setup requests.
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
    /// Compares the `status` an answer had with the `expected` one.
    pub fn expect_status(status: StatusCode, expected: StatusCode) -> Self {
        if status == expected {
            Self::Success
        } else {
            Self::UnexpectedStatus(status)
        }
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

    /// Builds the scenario: precomputes its requests (see
    /// [`PrebuiltRequest`]). No network access here.
    fn new(ctx: &Context) -> Result<Self>;

    /// Runs once before the warm-up, e.g. to sign up a user or create an
    /// API key. Its requests are not measured. Does nothing by default.
    fn setup(&mut self, ctx: &Context) -> impl Future<Output = Result<()>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Sends one request on `conn`, the calling worker's connection.
    /// `worker` is the index of the calling worker (`0..concurrency`) and
    /// `seq` counts that worker's requests from 0 (warm-up included), so
    /// `(worker, seq)` is unique within a run.
    ///
    /// Return `Err` only for transport failures (as [`Connection::send`]
    /// does); an answer with the wrong status is
    /// `Ok(Outcome::UnexpectedStatus(..))`.
    fn request(&self, conn: &mut Connection, worker: usize, seq: u64) -> impl Future<Output = Result<Outcome>> + Send;
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

    fn context(base_url: &str) -> Context {
        switchyard::tls::install_tls_provider();
        Context::new(Client::new(), base_url, 1).unwrap()
    }

    #[test]
    fn context_url_joins_path() {
        let ctx = context("http://127.0.0.1:8080/");
        assert_eq!(ctx.base_url, "http://127.0.0.1:8080");
        assert_eq!(ctx.url("/health"), "http://127.0.0.1:8080/health");
    }

    #[test]
    fn prebuilt_request_has_host_path_and_headers() {
        let ctx = context("http://127.0.0.1:8080");
        let request = PrebuiltRequest::new(&ctx, http::Method::GET, "/health").unwrap().build();
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(request.uri(), "/health");
        assert_eq!(request.headers()[http::header::HOST], "127.0.0.1:8080");

        let ctx = context("http://localhost/prefix/");
        let request = PrebuiltRequest::new(&ctx, http::Method::POST, "/v1/actions")
            .unwrap()
            .header(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"))
            .build_with_body(bytes::Bytes::from_static(b"{}"));
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "/prefix/v1/actions");
        assert_eq!(request.headers()[http::header::HOST], "localhost");
        assert_eq!(request.headers()[http::header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn context_refuses_non_http_urls() {
        switchyard::tls::install_tls_provider();
        assert!(Context::new(Client::new(), "https://127.0.0.1:8080", 1).is_err());
        assert!(Context::new(Client::new(), "127.0.0.1:8080", 1).is_err());
    }
}
