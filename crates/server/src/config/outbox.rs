//! Transactional outbox settings (`OUTBOX_RETENTION_SECS`): how long a
//! relayed outbox row is kept (for inspection and audits) before the relay
//! deletes it.
//!
//! Invariant: the retention is at least a minute and at most 30 days, so
//! the table neither loses rows someone is looking at nor grows unbounded.

use std::time::Duration;

use super::ConfigError;

/// The outbox's settings, validated.
#[derive(Clone, Debug)]
pub struct OutboxSettings {
    /// `OUTBOX_RETENTION_SECS`: relayed rows older than this are deleted.
    pub retention: Duration,
}

/// These settings as written.
pub(super) struct RawOutbox {
    pub(super) outbox_retention_secs: u64,
}

pub(super) const MAX_RETENTION_SECS: u64 = 30 * 86_400;

pub(super) fn validate(raw: RawOutbox) -> Result<OutboxSettings, ConfigError> {
    if !(60..=MAX_RETENTION_SECS).contains(&raw.outbox_retention_secs) {
        return Err(ConfigError::new("outbox_retention_secs", format!("must be between 60 and {MAX_RETENTION_SECS}")));
    }
    Ok(OutboxSettings { retention: Duration::from_secs(raw.outbox_retention_secs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retention_is_bounded_and_named() {
        let settings = validate(RawOutbox { outbox_retention_secs: 86_400 }).unwrap();
        assert_eq!(settings.retention, Duration::from_secs(86_400));
        for bad in [0, 59, MAX_RETENTION_SECS + 1] {
            let error = validate(RawOutbox { outbox_retention_secs: bad }).unwrap_err();
            assert_eq!(error.setting, "OUTBOX_RETENTION_SECS");
        }
    }
}
