//! `mail` {to, subject, body}: delivers one message through the configured
//! transport. Enqueued by switchyard itself (login codes, reset links) with
//! a sensitive payload: the queue deletes it once delivered, and nothing
//! here logs it.

use serde_json::{json, Value};

use super::{JobContext, JobFailure};
use crate::mail::{Email, MailError, Mailer};

#[derive(Clone, Debug)]
pub struct MailHandler {
    mailer: Mailer,
}

impl MailHandler {
    pub fn new(mailer: Mailer) -> Self {
        Self { mailer }
    }

    async fn deliver(&self, job: JobContext) -> Result<Value, JobFailure> {
        let email = email_of(&job.payload).ok_or_else(|| JobFailure::fatal("the mail payload is malformed"))?;
        match self.mailer.send(&email).await {
            Ok(()) => Ok(json!({"delivered": true})),
            Err(error @ MailError::InvalidAddress(_)) => Err(JobFailure::fatal(error.to_string())),
            Err(error) => Err(JobFailure::retry(error.to_string())),
        }
    }
}

impl super::Handler for MailHandler {
    fn run(&self, job: JobContext) -> super::HandlerFuture {
        let this = self.clone();
        Box::pin(async move { this.deliver(job).await })
    }
}

/// The payload of a mail job.
pub fn payload_of(email: &Email) -> Value {
    json!({"to": email.to, "subject": email.subject, "body": email.body})
}

fn email_of(payload: &Value) -> Option<Email> {
    let field = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Email { to: field("to")?, subject: field("subject")?, body: field("body")? })
}

pub fn check(payload: &Value) -> Option<(&'static str, String)> {
    email_of(payload).is_none().then(|| ("to", "to, subject and body must be strings".to_owned()))
}
