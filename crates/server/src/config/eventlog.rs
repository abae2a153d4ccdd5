//! Event log and quota settings (`EVENTS_*`, `LEADERBOARDS_MAX_PER_ACCOUNT`,
//! `LOG_ERROR_ALERT_PER_MINUTE`): how many streams and boards an account
//! may create, and how the worker's built-in consumer groups reclaim and
//! dead-letter what a crashed consumer left.
//!
//! Invariants: every bound is non-zero and capped, so no setting makes a
//! quota unbounded or a reclaim never happen.

use std::time::Duration;

use super::ConfigError;

/// The event log's and the quotas' settings, validated.
#[derive(Clone, Debug)]
pub struct EventLogSettings {
    /// `EVENTS_MAX_STREAMS_PER_ACCOUNT`: streams one account may create.
    pub max_streams_per_account: u64,
    /// `LEADERBOARDS_MAX_PER_ACCOUNT`: boards one account may create.
    pub max_boards_per_account: u64,
    /// `EVENTS_RECLAIM_IDLE_MS`: an event a built-in group's consumer left
    /// unacknowledged this long is taken over by another.
    pub reclaim_idle: Duration,
    /// `EVENTS_MAX_DELIVERIES`: an event delivered this often goes to the
    /// dead-letter stream instead.
    pub max_deliveries: u64,
    /// `LOG_ERROR_ALERT_PER_MINUTE`: more `system.error` events than this in
    /// one minute notify the account.
    pub error_alert_per_minute: u64,
}

/// These settings as written.
pub(super) struct RawEventLog {
    pub(super) events_max_streams_per_account: u64,
    pub(super) leaderboards_max_per_account: u64,
    pub(super) events_reclaim_idle_ms: u64,
    pub(super) events_max_deliveries: u64,
    pub(super) log_error_alert_per_minute: u64,
}

fn within(setting: &str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(setting, format!("must be between {min} and {max}")));
    }
    Ok(value)
}

pub(super) fn validate(raw: RawEventLog) -> Result<EventLogSettings, ConfigError> {
    Ok(EventLogSettings {
        max_streams_per_account: within(
            "events_max_streams_per_account",
            raw.events_max_streams_per_account,
            1,
            1_000_000,
        )?,
        max_boards_per_account: within("leaderboards_max_per_account", raw.leaderboards_max_per_account, 1, 1_000_000)?,
        reclaim_idle: Duration::from_millis(within(
            "events_reclaim_idle_ms",
            raw.events_reclaim_idle_ms,
            1,
            86_400_000,
        )?),
        max_deliveries: within("events_max_deliveries", raw.events_max_deliveries, 1, 1000)?,
        error_alert_per_minute: within("log_error_alert_per_minute", raw.log_error_alert_per_minute, 1, 1_000_000)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawEventLog {
        RawEventLog {
            events_max_streams_per_account: 1000,
            leaderboards_max_per_account: 1000,
            events_reclaim_idle_ms: 30_000,
            events_max_deliveries: 5,
            log_error_alert_per_minute: 60,
        }
    }

    #[test]
    fn defaults_are_valid_and_bounds_name_the_setting() {
        assert!(validate(raw()).is_ok());
        let error = validate(RawEventLog { events_max_streams_per_account: 0, ..raw() }).unwrap_err();
        assert_eq!(error.setting, "EVENTS_MAX_STREAMS_PER_ACCOUNT");
        let error = validate(RawEventLog { events_max_deliveries: 0, ..raw() }).unwrap_err();
        assert_eq!(error.setting, "EVENTS_MAX_DELIVERIES");
        let error = validate(RawEventLog { events_reclaim_idle_ms: 0, ..raw() }).unwrap_err();
        assert_eq!(error.setting, "EVENTS_RECLAIM_IDLE_MS");
    }
}
