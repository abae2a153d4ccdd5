//! Job handlers: what the worker runs for each job type, and the catalog
//! of types callers may enqueue (with each type's payload check, so a bad
//! payload is a 422 at enqueue time rather than a dead job later).
//!
//! A handler gets a [`JobContext`] and returns a JSON result or a
//! [`JobFailure`]; a failure is retried after back-off unless it is final
//! (a webhook answered 4xx: trying again cannot help).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::validation::FieldError;

pub mod basic;
pub mod mail;
pub mod notify;
pub mod webhook;

/// One attempt of one job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: String,
    pub kind: String,
    pub payload: Value,
    pub attempt: u32,
    pub max_attempts: u32,
}

/// Why an attempt failed, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub message: String,
    pub is_final: bool,
}

impl JobFailure {
    /// A failure worth retrying (a timeout, a 5xx, a dropped connection).
    pub fn retry(message: impl Into<String>) -> Self {
        Self { message: message.into(), is_final: false }
    }

    /// A failure no retry can fix: the job goes dead at once.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { message: message.into(), is_final: true }
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, JobFailure>> + Send>>;

/// Runs one attempt of a job type.
pub trait Handler: Send + Sync + 'static {
    fn run(&self, job: JobContext) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobFailure>> + Send + 'static,
{
    fn run(&self, job: JobContext) -> HandlerFuture {
        Box::pin(self(job))
    }
}

/// The handlers a worker runs, by job type.
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.by_type.keys().collect();
        types.sort();
        f.debug_struct("Handlers").field("types", &types).finish()
    }
}

impl Handlers {
    /// Every built-in handler: mail through `mailer`, webhooks with
    /// `settings`, notifications into `notifications`.
    pub fn builtin(
        mailer: crate::mail::Mailer,
        settings: &crate::config::JobSettings,
        notifications: Arc<dyn notify::NotificationSink>,
    ) -> Self {
        Self::default()
            .with("noop", basic::noop)
            .with("sleep", basic::sleep)
            .with("flaky", basic::flaky)
            .with("mail", mail::MailHandler::new(mailer))
            .with("webhook", webhook::WebhookHandler::new(settings))
            .with("notify", notify::NotifyHandler::new(notifications))
    }

    /// Adds (or replaces) the handler of `kind`.
    pub fn with(mut self, kind: &str, handler: impl Handler) -> Self {
        self.by_type.insert(kind.to_owned(), Arc::new(handler));
        self
    }

    /// Runs `job` with its type's handler; an unknown type fails for good.
    pub fn run(&self, job: JobContext) -> HandlerFuture {
        match self.by_type.get(&job.kind) {
            Some(handler) => handler.run(job),
            None => {
                let message = format!("this worker has no handler for job type {}", job.kind);
                Box::pin(async move { Err(JobFailure::fatal(message)) })
            }
        }
    }
}

/// Who may enqueue a job type over the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Any authenticated caller.
    Everyone,
    /// The operator (admins and their API clients) and switchyard itself:
    /// the type acts on other users, so a self-service account must not
    /// reach it.
    Operators,
    /// switchyard itself only (mail carries login codes: no open relay).
    Internal,
}

/// What an enqueuer may ask for, by the job types' audiences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clearance {
    /// Any signed-up user or their API client.
    Member,
    /// An admin, or an API client an admin owns.
    Operator,
    /// switchyard itself (identity's mail, cron).
    System,
}

/// The owner of jobs switchyard enqueues for itself.
pub const SYSTEM_OWNER: &str = "system";

/// Rolls finished days of activity into `usage_daily` (a built-in cron
/// job; its handler is wired by the composition root over analytics).
pub const USAGE_ROLLUP: &str = "usage-rollup";
/// Recomputes the most-missed cached usage reports (likewise).
pub const REPORT_PREWARM: &str = "report-prewarm";

const CATALOG: &[(&str, Audience)] = &[
    ("noop", Audience::Everyone),
    ("sleep", Audience::Everyone),
    ("flaky", Audience::Everyone),
    ("webhook", Audience::Everyone),
    ("notify", Audience::Operators),
    ("mail", Audience::Internal),
    (USAGE_ROLLUP, Audience::Internal),
    (REPORT_PREWARM, Audience::Internal),
];

/// A payload field as a whole number: an integer, or a number with a zero
/// fraction (`238.0`, which JSON Schema counts as an integer).
pub fn whole_number(value: &Value) -> Option<u64> {
    let exact = |f: &f64| *f >= 0.0 && crate::http::json::is_exact_whole(*f);
    value.as_u64().or_else(|| value.as_f64().filter(exact).map(|f| f as u64))
}

/// The job types callers may enqueue over the API, each with the schema
/// of its payload, for the OpenAPI document.
pub fn api_payload_schemas() -> Vec<(&'static str, Value)> {
    CATALOG
        .iter()
        .filter(|(_, audience)| *audience != Audience::Internal)
        .map(|(kind, _)| {
            let schema = match *kind {
                "sleep" => basic::sleep_schema(),
                "flaky" => basic::flaky_schema(),
                "webhook" => webhook::payload_schema(),
                "notify" => notify::payload_schema(),
                _ => basic::noop_schema(),
            };
            (*kind, schema)
        })
        .collect()
}

/// Checks that an enqueuer of `clearance` may enqueue `kind` (`Err` with
/// the reason when not: the caller lacks the standing, a 403), and that the
/// payload suits the type (the fields that do not). `at` prefixes field
/// names (`jobs[3].`).
pub fn check(kind: &str, payload: &Value, clearance: Clearance, at: &str) -> Result<Vec<FieldError>, String> {
    let allowed = |audience: Audience| match audience {
        Audience::Everyone => true,
        Audience::Operators => clearance != Clearance::Member,
        Audience::Internal => clearance == Clearance::System,
    };
    let Some((_, audience)) = CATALOG.iter().find(|(name, _)| *name == kind) else {
        let names: Vec<&str> = CATALOG.iter().filter(|(_, a)| allowed(*a)).map(|(n, _)| *n).collect();
        return Ok(vec![FieldError::new(format!("{at}type"), format!("must be one of {}", names.join(", ")))]);
    };
    if !allowed(*audience) {
        return Err(match audience {
            Audience::Operators => format!("{kind} jobs can only be enqueued by an admin or an admin's API client"),
            _ => format!("{kind} jobs are used by switchyard itself and cannot be enqueued over the API"),
        });
    }
    let payload_error = match kind {
        "sleep" => basic::check_sleep(payload),
        "flaky" => basic::check_flaky(payload),
        "webhook" => webhook::check(payload),
        "notify" => notify::check(payload),
        "mail" => mail::check(payload),
        _ => None,
    };
    Ok(payload_error
        .map(|(field, message)| FieldError::new(format!("{at}payload.{field}"), message))
        .into_iter()
        .collect())
}
