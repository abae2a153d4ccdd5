//! Activity recording and analytics settings (`ACTIVITY_*`, `CACHE_*`):
//! how the recorder batches, spills and keeps request records, and how
//! the usage reports are cached.
//!
//! Invariants: batch size, flush interval, memory bound and retention are
//! non-zero and bounded; cache lifetimes are non-zero; `CACHE_VERSION` is
//! a short key-safe token (it is part of every report cache key).

use std::time::Duration;

use super::ConfigError;

/// Activity recording and report caching, validated.
#[derive(Clone, Debug)]
pub struct AnalyticsSettings {
    /// `ACTIVITY_ENABLED`: whether the server records requests at all.
    pub enabled: bool,
    /// `ACTIVITY_BATCH_SIZE`: records per write to PostgreSQL.
    pub batch_size: usize,
    /// `ACTIVITY_FLUSH_INTERVAL_MS`: the longest a record waits for a batch.
    pub flush_interval: Duration,
    /// `ACTIVITY_CHANNEL_CAPACITY`: records the request path may hand over
    /// before the recorder takes them; past it a record is dropped, counted.
    pub channel_capacity: usize,
    /// `ACTIVITY_MEMORY_MAX_RECORDS`: records held in memory while neither
    /// PostgreSQL nor Redis takes them; past it records are dropped, counted.
    pub memory_max_records: usize,
    /// `ACTIVITY_SPILL_MAXLEN`: cap of the Redis spill stream (entries are
    /// batches).
    pub spill_maxlen: u64,
    /// `ACTIVITY_RETENTION_DAYS`: daily partitions older than this are dropped.
    pub retention_days: u32,
    /// `ACTIVITY_PARTITIONS_AHEAD_DAYS`: partitions created ahead of today.
    pub partitions_ahead_days: u32,
    /// `CACHE_TTL_USAGE_DAILY`: lifetime of a cached daily-usage report.
    pub cache_ttl_usage_daily: Duration,
    /// `CACHE_TTL_USAGE_TOP`: lifetime of a cached top-N report.
    pub cache_ttl_usage_top: Duration,
    /// `CACHE_VERSION`: part of every report cache key; bumping it
    /// invalidates every cached report at once.
    pub cache_version: String,
    /// `CACHE_HIT_TRACKING_ENABLED`: count hits and misses per report key.
    pub cache_hit_tracking: bool,
    /// `CACHE_PREWARM_ENABLED`: fill the most-missed report keys at start-up.
    pub cache_prewarm: bool,
    /// `CACHE_PREWARM_CRON_ENABLED`: refresh them from a cron job in the worker.
    pub cache_prewarm_cron: bool,
}

/// These settings as written.
pub(super) struct RawAnalytics {
    pub(super) activity_enabled: bool,
    pub(super) activity_batch_size: usize,
    pub(super) activity_flush_interval_ms: u64,
    pub(super) activity_channel_capacity: usize,
    pub(super) activity_memory_max_records: usize,
    pub(super) activity_spill_maxlen: u64,
    pub(super) activity_retention_days: u32,
    pub(super) activity_partitions_ahead_days: u32,
    pub(super) cache_ttl_usage_daily: u64,
    pub(super) cache_ttl_usage_top: u64,
    pub(super) cache_version: String,
    pub(super) cache_hit_tracking_enabled: bool,
    pub(super) cache_prewarm_enabled: bool,
    pub(super) cache_prewarm_cron_enabled: bool,
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(setting: &str, value: T, min: T, max: T) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(setting, format!("must be between {min} and {max}")));
    }
    Ok(value)
}

pub(super) fn validate(raw: RawAnalytics) -> Result<AnalyticsSettings, ConfigError> {
    let batch_size = within("activity_batch_size", raw.activity_batch_size, 1, 10_000)?;
    let flush_ms = within("activity_flush_interval_ms", raw.activity_flush_interval_ms, 10, 600_000)?;
    let channel_capacity = within("activity_channel_capacity", raw.activity_channel_capacity, 1, 10_000_000)?;
    let memory_max_records = within("activity_memory_max_records", raw.activity_memory_max_records, 1, 100_000_000)?;
    let spill_maxlen = within("activity_spill_maxlen", raw.activity_spill_maxlen, 1, 100_000_000)?;
    let retention_days = within("activity_retention_days", raw.activity_retention_days, 1, 3660)?;
    let ahead = within("activity_partitions_ahead_days", raw.activity_partitions_ahead_days, 1, 60)?;
    let ttl_daily = within("cache_ttl_usage_daily", raw.cache_ttl_usage_daily, 1, 30 * 86_400)?;
    let ttl_top = within("cache_ttl_usage_top", raw.cache_ttl_usage_top, 1, 30 * 86_400)?;
    let version = raw.cache_version;
    if version.is_empty()
        || version.len() > 32
        || !version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::new("cache_version", "must be 1-32 characters of [A-Za-z0-9._-]"));
    }
    Ok(AnalyticsSettings {
        enabled: raw.activity_enabled,
        batch_size,
        flush_interval: Duration::from_millis(flush_ms),
        channel_capacity,
        memory_max_records,
        spill_maxlen,
        retention_days,
        partitions_ahead_days: ahead,
        cache_ttl_usage_daily: Duration::from_secs(ttl_daily),
        cache_ttl_usage_top: Duration::from_secs(ttl_top),
        cache_version: version,
        cache_hit_tracking: raw.cache_hit_tracking_enabled,
        cache_prewarm: raw.cache_prewarm_enabled,
        cache_prewarm_cron: raw.cache_prewarm_cron_enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::super::RawSettings;
    use super::*;

    fn raw() -> RawAnalytics {
        RawSettings::default().into_sections().analytics
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let s = validate(raw()).unwrap();
        assert!(s.enabled);
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.flush_interval, Duration::from_millis(5000));
        assert_eq!(s.retention_days, 30);
        assert_eq!(s.cache_ttl_usage_daily, Duration::from_secs(3600));
        assert_eq!(s.cache_ttl_usage_top, Duration::from_secs(3600));
    }

    #[test]
    fn bounds_and_the_cache_version_are_checked() {
        assert_eq!(
            validate(RawAnalytics { activity_batch_size: 0, ..raw() }).unwrap_err().setting,
            "ACTIVITY_BATCH_SIZE"
        );
        assert_eq!(
            validate(RawAnalytics { activity_retention_days: 0, ..raw() }).unwrap_err().setting,
            "ACTIVITY_RETENTION_DAYS"
        );
        assert_eq!(
            validate(RawAnalytics { cache_version: "a b".into(), ..raw() }).unwrap_err().setting,
            "CACHE_VERSION"
        );
    }
}
