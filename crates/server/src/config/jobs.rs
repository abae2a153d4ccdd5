//! Job queue and worker settings (`JOB_*`, `WEBHOOK_*`) and the recurring
//! jobs declared as `[[cron]]` in the config file.
//!
//! The cron-expression parser lives here so that a schedule the scheduler
//! cannot run is refused at start-up, by the same code the scheduler uses.
//!
//! Invariants: lease, default timeout and both retentions are non-zero;
//! prefetch is at most 16 per slot; cron names are unique, schedules parse
//! and `catch_up_secs` is at most [`MAX_CRON_CATCH_UP_SECS`]; the webhook
//! secret is at least 32 characters (required in production).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use cron::Schedule;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{secret_or_generated, ConfigError, Profile};

/// The job queue and its worker (`JOB_*`, `WEBHOOK_*`, `[[cron]]`).
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// How long a worker holds a job without a heartbeat before it is
    /// given to another worker.
    pub lease: Duration,
    /// The run-time limit of one attempt when the job sets no `timeout_ms`.
    pub default_timeout: Duration,
    /// How long finished jobs stay readable: succeeded or cancelled ones,
    /// and dead ones (kept longer: someone has to look at them).
    pub succeeded_retention: Duration,
    pub dead_retention: Duration,
    /// On shutdown, how long in-flight jobs may run before they are
    /// released back to their queue.
    pub shutdown_grace: Duration,
    /// Jobs a worker leases ahead of its free slots, per slot.
    pub prefetch_per_slot: usize,
    /// Signs webhook deliveries (HMAC-SHA256).
    pub webhook_secret: SecretString,
    /// Lets webhooks reach loopback and private addresses (off: SSRF guard).
    pub webhook_allow_private_networks: bool,
    pub cron: Vec<CronSetting>,
}

/// One recurring job: `[[cron]]` in the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CronSetting {
    /// Unique among cron entries: names the per-tick dedupe key.
    pub name: String,
    /// A cron expression with seconds: `0 */5 * * * *` (every 5 minutes).
    pub schedule: String,
    #[serde(default = "default_queue")]
    pub queue: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    /// A tick missed while no worker ran (a deploy, an outage) is still
    /// enqueued, once, by the first scheduler that starts within this many
    /// seconds after it; only the latest missed tick runs. 0 (the default):
    /// missed ticks are skipped. At most 86400.
    #[serde(default)]
    pub catch_up_secs: u64,
}

/// The longest `catch_up_secs`: every tick's dedupe key lives that long.
pub const MAX_CRON_CATCH_UP_SECS: u64 = 86_400;

fn default_queue() -> String {
    "default".into()
}

/// Parses a cron expression with a seconds field (`0 */5 * * * *`).
pub fn parse_schedule(expression: &str) -> Result<Schedule, String> {
    Schedule::from_str(expression)
        .map_err(|_| "schedule must be a cron expression with seconds, e.g. \"0 */5 * * * *\"".to_owned())
}

/// The job settings as written.
pub(super) struct RawJobs {
    pub(super) job_lease_ms: u64,
    pub(super) job_default_timeout_ms: u64,
    pub(super) job_succeeded_retention_secs: u64,
    pub(super) job_dead_retention_secs: u64,
    pub(super) job_shutdown_grace_secs: u64,
    pub(super) job_prefetch_per_slot: usize,
    pub(super) webhook_secret: Option<String>,
    pub(super) webhook_allow_private_networks: bool,
    pub(super) cron: Vec<CronSetting>,
}

/// The `JOB_*` settings: lease, default timeout and retentions non-zero,
/// then prefetch at most 16.
fn check_queue(raw: &RawJobs) -> Result<(), ConfigError> {
    for (name, value) in [
        ("job_lease_ms", raw.job_lease_ms),
        ("job_default_timeout_ms", raw.job_default_timeout_ms),
        ("job_succeeded_retention_secs", raw.job_succeeded_retention_secs),
        ("job_dead_retention_secs", raw.job_dead_retention_secs),
    ] {
        if value == 0 {
            return Err(ConfigError::new(name, "must be greater than 0"));
        }
    }
    if raw.job_prefetch_per_slot > 16 {
        return Err(ConfigError::new("job_prefetch_per_slot", "must be between 0 and 16"));
    }
    Ok(())
}

/// Checks, in order: the `JOB_*` settings ([`check_queue`]), `[[cron]]`
/// entry by entry (name unique, schedule, catch-up window), then
/// `WEBHOOK_SECRET`.
pub(super) fn validate(raw: RawJobs, profile: Profile) -> Result<JobSettings, ConfigError> {
    check_queue(&raw)?;
    let mut cron_names = HashSet::new();
    for entry in &raw.cron {
        if !cron_names.insert(entry.name.as_str()) {
            return Err(ConfigError::new("cron", format!("the name {} is used twice", entry.name)));
        }
        parse_schedule(&entry.schedule).map_err(|message| ConfigError::new("cron", message))?;
        if entry.catch_up_secs > MAX_CRON_CATCH_UP_SECS {
            let message = format!("catch_up_secs of {} must be at most {MAX_CRON_CATCH_UP_SECS}", entry.name);
            return Err(ConfigError::new("cron", message));
        }
    }
    let (webhook_secret, _) = secret_or_generated("webhook_secret", raw.webhook_secret, profile)?;
    Ok(JobSettings {
        lease: Duration::from_millis(raw.job_lease_ms.max(50)),
        default_timeout: Duration::from_millis(raw.job_default_timeout_ms),
        succeeded_retention: Duration::from_secs(raw.job_succeeded_retention_secs),
        dead_retention: Duration::from_secs(raw.job_dead_retention_secs),
        shutdown_grace: Duration::from_secs(raw.job_shutdown_grace_secs),
        prefetch_per_slot: raw.job_prefetch_per_slot,
        webhook_secret,
        webhook_allow_private_networks: raw.webhook_allow_private_networks,
        cron: raw.cron,
    })
}

#[cfg(test)]
mod tests {
    use super::super::RawSettings;
    use super::*;

    fn raw() -> RawJobs {
        RawSettings::default().into_sections().jobs
    }

    fn entry(name: &str, schedule: &str) -> CronSetting {
        CronSetting {
            name: name.into(),
            schedule: schedule.into(),
            queue: default_queue(),
            kind: "noop".into(),
            payload: serde_json::Value::Null,
            catch_up_secs: 0,
        }
    }

    #[test]
    fn schedules_need_a_seconds_field() {
        assert!(parse_schedule("0 */5 * * * *").is_ok());
        assert!(parse_schedule("*/5 * * * *").is_err());
    }

    #[test]
    fn refusals_name_the_setting() {
        let err = validate(RawJobs { job_dead_retention_secs: 0, ..raw() }, Profile::Dev).unwrap_err();
        assert_eq!(err, ConfigError::new("job_dead_retention_secs", "must be greater than 0"));
        let err = check_queue(&RawJobs { job_prefetch_per_slot: 17, ..raw() }).unwrap_err();
        assert_eq!(err.setting, "JOB_PREFETCH_PER_SLOT");

        let twice = vec![entry("nightly", "0 0 3 * * *"), entry("nightly", "0 0 4 * * *")];
        let err = validate(RawJobs { cron: twice, ..raw() }, Profile::Dev).unwrap_err();
        assert_eq!(err, ConfigError::new("cron", "the name nightly is used twice"));
        let err = validate(RawJobs { cron: vec![entry("nightly", "every night")], ..raw() }, Profile::Dev);
        assert_eq!(err.unwrap_err().setting, "CRON");

        let err = validate(raw(), Profile::Production).unwrap_err();
        assert_eq!(err.setting, "WEBHOOK_SECRET");
    }

    #[test]
    fn a_lease_is_at_least_50_ms() {
        let jobs = validate(RawJobs { job_lease_ms: 1, ..raw() }, Profile::Dev).unwrap();
        assert_eq!(jobs.lease, Duration::from_millis(50));
    }
}
