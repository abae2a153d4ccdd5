//! Mail: the one function (`Mailer::send`) through which switchyard sends
//! login codes and reset links, over one of two transports: the
//! `email_outbox` table (dev and tests; a person or a relay reads it) or
//! SMTP (lettre). Identity does not call it directly: its mail outbox (wired
//! by the composition root) enqueues `mail` jobs, and the worker's `mail`
//! handler calls `send`, so a mail outage delays messages instead of
//! losing them.
//!
//! Invariant: message bodies carry secrets (codes, reset tokens) and are
//! never logged.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransport {
    Outbox,
    Smtp,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub smtp_url: Option<SecretString>,
    /// The sender, e.g. `switchyard <no-reply@example.com>`.
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("storing the message failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("the {0} address is not valid")]
    InvalidAddress(&'static str),
    #[error("building the message failed: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("mail configuration: {0}")]
    Config(String),
}

/// One plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Email {
    pub fn otp_code(to: &str, code: &str, valid_minutes: u64) -> Self {
        Self {
            to: to.to_owned(),
            subject: "Your sign-in code".into(),
            body: format!(
                "Your sign-in code is {code}\n\nIt is valid for {valid_minutes} minutes and can be used once.\n\
                 If you did not ask for it, ignore this message.\n"
            ),
        }
    }

    pub fn password_reset(to: &str, token: &str, valid_minutes: u64) -> Self {
        Self {
            to: to.to_owned(),
            subject: "Reset your password".into(),
            body: format!(
                "Someone asked to reset the password of this account.\n\nReset token: {token}\n\n\
                 Send it with your new password to POST /v1/auth/password/reset \
                 ({{\"token\": \"...\", \"new_password\": \"...\"}}).\n\
                 It is valid for {valid_minutes} minutes and can be used once. \
                 If you did not ask for this, ignore this message.\n"
            ),
        }
    }
}

#[derive(Clone)]
enum Transport {
    Outbox(PgPool),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends mail through the configured transport.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Outbox(_) => "outbox",
            Transport::Smtp(_) => "smtp",
        };
        f.debug_struct("Mailer").field("transport", &kind).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings, db: PgPool) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|_| MailError::InvalidAddress("MAIL_FROM"))?;
        let transport = match settings.transport {
            MailTransport::Outbox => Transport::Outbox(db),
            MailTransport::Smtp => {
                let url = settings.smtp_url.as_ref().ok_or_else(|| MailError::Config("SMTP_URL is required".into()))?;
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|_| MailError::Config("SMTP_URL cannot be parsed".into()))?
                    .build();
                Transport::Smtp(transport)
            }
        };
        Ok(Self { from, transport })
    }

    /// Delivers one message (or stores it in the outbox).
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Mailbox = email.to.parse().map_err(|_| MailError::InvalidAddress("recipient"))?;
        match &self.transport {
            Transport::Outbox(db) => {
                sqlx::query("INSERT INTO email_outbox (recipient, subject, body) VALUES ($1, $2, $3)")
                    .bind(&email.to)
                    .bind(&email.subject)
                    .bind(&email.body)
                    .execute(db)
                    .await?;
            }
            Transport::Smtp(smtp) => {
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(&email.subject)
                    .body(email.body.clone())?;
                smtp.send(message).await?;
            }
        }
        let domain = email.to.rsplit('@').next().unwrap_or_default();
        tracing::info!(recipient_domain = domain, subject = %email.subject, "mail sent");
        Ok(())
    }
}
