//! Mail settings (`MAIL_TRANSPORT`, `SMTP_URL`, `MAIL_FROM`): where the
//! mail switchyard sends (one-time codes, password resets) goes.
//!
//! Invariant: with `MAIL_TRANSPORT=smtp` there is an `smtp://` or
//! `smtps://` URL; it stays a secret (it may carry a password).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `MAIL_TRANSPORT`: where mail goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportSetting {
    /// Stored in the `email_outbox` table (dev and tests).
    Outbox,
    /// Sent through `SMTP_URL`.
    Smtp,
}

/// Where mail goes (`MAIL_TRANSPORT`, `SMTP_URL`, `MAIL_FROM`).
#[derive(Clone, Debug)]
pub struct MailConfig {
    pub transport: MailTransportSetting,
    pub smtp_url: Option<SecretString>,
    pub from: String,
}

/// The mail settings as written.
pub(super) struct RawMail {
    pub(super) mail_transport: MailTransportSetting,
    pub(super) smtp_url: Option<String>,
    pub(super) mail_from: String,
}

/// Checks `SMTP_URL` when the transport is SMTP.
pub(super) fn validate(raw: RawMail) -> Result<MailConfig, ConfigError> {
    if raw.mail_transport == MailTransportSetting::Smtp {
        match &raw.smtp_url {
            Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {}
            _ => {
                return Err(ConfigError::new("smtp_url", "must be an smtp:// or smtps:// URL when MAIL_TRANSPORT=smtp"))
            }
        }
    }
    Ok(MailConfig {
        transport: raw.mail_transport,
        smtp_url: raw.smtp_url.map(SecretString::from),
        from: raw.mail_from,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::RawSettings;
    use super::*;

    fn raw() -> RawMail {
        RawSettings::default().into_sections().mail
    }

    #[test]
    fn smtp_needs_an_smtp_url() {
        let err = validate(RawMail { mail_transport: MailTransportSetting::Smtp, ..raw() }).unwrap_err();
        assert_eq!(err.setting, "SMTP_URL");
        let err = validate(RawMail {
            mail_transport: MailTransportSetting::Smtp,
            smtp_url: Some("http://mail.example.com".into()),
            ..raw()
        })
        .unwrap_err();
        assert_eq!(err.setting, "SMTP_URL");
        let mail = validate(RawMail {
            mail_transport: MailTransportSetting::Smtp,
            smtp_url: Some("smtps://user:pw@mail.example.com".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(mail.smtp_url.unwrap().expose_secret(), "smtps://user:pw@mail.example.com");
    }

    #[test]
    fn the_outbox_needs_no_url() {
        let mail = validate(raw()).unwrap();
        assert_eq!(mail.transport, MailTransportSetting::Outbox);
        assert!(mail.smtp_url.is_none());
        assert_eq!(mail.from, "switchyard <no-reply@localhost>");
    }
}
