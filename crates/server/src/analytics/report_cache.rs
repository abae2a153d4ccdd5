//! How reports are cached: over the kit's cache-aside `Cache` (family
//! `reports`: stampede protection, hit and miss counts), with an item name
//! per report and parameters, and a lifetime by whether the report can
//! still change.
//!
//! - Every item name starts with `CACHE_VERSION`: bumping the setting
//!   makes every cached report a miss (old entries expire on their TTL).
//! - A report whose days are all settled (before today, and past the
//!   moment the last batches of that day were counted) is immutable and
//!   kept for `CACHE_TTL_USAGE_DAILY` or `CACHE_TTL_USAGE_TOP`; one that
//!   includes today (or a day not yet settled) lives no longer than
//!   `ACTIVITY_FLUSH_INTERVAL_MS`, so it is as live as the counters.
//! - With `CACHE_HIT_TRACKING_ENABLED`, hits and misses are also counted
//!   per item, and each miss keeps the report's [`ReportKey`] as its
//!   recipe: the warmer reads the most-missed recipes back and recomputes
//!   them under the current version, whatever version they missed under.
//!
//! Invariant: the item name holds everything the report depends on (the
//! account for a user's usage, so one account never reads another's).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use switchyard_kit::{Cache, CacheStatus, KeyTracking, Keyspace, KitError, RedisConnection};
use uuid::Uuid;

use crate::config::AnalyticsSettings;

/// The kit cache family of the reports (its hit and miss totals are
/// exported as metrics under this name).
pub const FAMILY: &str = "reports";

/// How long per-item hit and miss counts live after their last lookup.
const TRACKING_TTL: Duration = Duration::from_secs(7 * 86_400);

/// How many report items the most-missed ranking keeps.
const RANKED_ITEMS: u32 = 1000;

/// The days `active-users` counts, ending today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// Today.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl Window {
    pub fn days(self) -> u64 {
        match self {
            Window::Day => 1,
            Window::Week => 7,
            Window::Month => 30,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
        }
    }
}

/// A report and its parameters: names the cached item, and is the recipe
/// the warmer recomputes it from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "kebab-case")]
pub enum ReportKey {
    UsageDaily {
        account: Uuid,
        client: Option<Uuid>,
        from: NaiveDate,
        to: NaiveDate,
    },
    TopClients {
        from: NaiveDate,
        to: NaiveDate,
        limit: u32,
    },
    TopRoutes {
        from: NaiveDate,
        to: NaiveDate,
        limit: u32,
    },
    /// Relative to today: the item names the day, the recipe does not.
    ActiveUsers {
        window: Window,
    },
    UniqueVisitors {
        date: NaiveDate,
    },
    TopUsers {
        date: NaiveDate,
        limit: u32,
    },
}

impl ReportKey {
    /// The cache item: `<version>/<report>/<parameters...>`.
    pub fn item(&self, version: &str, today: NaiveDate) -> String {
        let body = match self {
            ReportKey::UsageDaily { account, client, from, to } => {
                let client = client.map_or_else(|| "all".to_owned(), |c| c.to_string());
                format!("usage-daily/{account}/{client}/{from}/{to}")
            }
            ReportKey::TopClients { from, to, limit } => format!("top-clients/{from}/{to}/{limit}"),
            ReportKey::TopRoutes { from, to, limit } => format!("top-routes/{from}/{to}/{limit}"),
            ReportKey::ActiveUsers { window } => format!("active-users/{}/{today}", window.as_str()),
            ReportKey::UniqueVisitors { date } => format!("unique-visitors/{date}"),
            ReportKey::TopUsers { date, limit } => format!("top-users/{date}/{limit}"),
        };
        format!("{version}/{body}")
    }

    /// The last day the report covers.
    fn last_day(&self, today: NaiveDate) -> NaiveDate {
        match self {
            ReportKey::UsageDaily { to, .. } | ReportKey::TopClients { to, .. } | ReportKey::TopRoutes { to, .. } => {
                *to
            }
            ReportKey::ActiveUsers { .. } => today,
            ReportKey::UniqueVisitors { date } | ReportKey::TopUsers { date, .. } => *date,
        }
    }
}

/// The report cache (see the module docs).
#[derive(Debug, Clone)]
pub struct ReportCache {
    cache: Cache,
    version: String,
    ttl_daily: Duration,
    ttl_top: Duration,
    /// `ACTIVITY_FLUSH_INTERVAL_MS`: how stale a live report may be.
    live_ttl: Duration,
}

impl ReportCache {
    pub fn new(conn: RedisConnection, keys: Keyspace, settings: &AnalyticsSettings) -> Self {
        let mut cache = Cache::new(conn, keys, FAMILY);
        if settings.cache_hit_tracking {
            cache = cache.with_key_tracking(KeyTracking { ttl: TRACKING_TTL, ranked: RANKED_ITEMS });
        }
        Self {
            cache,
            version: settings.cache_version.clone(),
            ttl_daily: settings.cache_ttl_usage_daily,
            ttl_top: settings.cache_ttl_usage_top,
            live_ttl: settings.flush_interval,
        }
    }

    /// How long `key`'s report may be cached, computed at `now`: in full
    /// when its last day is settled (records of a day arrive up to a flush
    /// interval after it; twice that is the margin), else a flush interval.
    pub fn ttl(&self, key: &ReportKey, now: DateTime<Utc>) -> Duration {
        let margin = chrono::TimeDelta::from_std(self.live_ttl * 2).unwrap_or(chrono::TimeDelta::zero());
        let settled_before = (now - margin).date_naive();
        if key.last_day(now.date_naive()) >= settled_before {
            return self.live_ttl;
        }
        match key {
            ReportKey::UsageDaily { .. } => self.ttl_daily,
            _ => self.ttl_top,
        }
    }

    fn recipe(key: &ReportKey) -> Result<String, KitError> {
        serde_json::to_string(key).map_err(|e| KitError::Config(format!("unserialisable report key: {e}")))
    }

    /// The cached report of `key`, or `compute()`'s, cached.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        key: &ReportKey,
        now: DateTime<Utc>,
        compute: F,
    ) -> Result<(T, CacheStatus), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<KitError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let item = key.item(&self.version, now.date_naive());
        let recipe = Self::recipe(key)?;
        let ttl = self.ttl(key, now);
        let (value, status) = self
            .cache
            .get_or_load_with_recipe(&item, &recipe, ttl, || async move { compute().await.map(Some) })
            .await?;
        match value {
            Some(value) => Ok((value, status)),
            None => Err(KitError::Config("a computed report was not returned".into()).into()),
        }
    }

    /// Stores `value` as `key`'s report (the warmer's write).
    pub async fn put<T: Serialize>(&self, key: &ReportKey, now: DateTime<Utc>, value: &T) -> Result<(), KitError> {
        self.cache.put(&key.item(&self.version, now.date_naive()), value, self.ttl(key, now)).await
    }

    /// The distinct reports among the `limit` most-missed items, most
    /// missed first (items whose recipe no longer parses are skipped).
    pub async fn most_missed(&self, limit: usize) -> Result<Vec<ReportKey>, KitError> {
        let mut seen = HashSet::new();
        Ok(self
            .cache
            .most_missed(limit)
            .await?
            .into_iter()
            .filter_map(|missed| serde_json::from_str::<ReportKey>(&missed.recipe).ok())
            .filter(|key| seen.insert(key.clone()))
            .collect())
    }

    /// (hits, misses) of `key`'s item under the current version (zero
    /// without hit tracking).
    pub async fn key_stats(&self, key: &ReportKey, today: NaiveDate) -> Result<(u64, u64), KitError> {
        self.cache.key_stats(&key.item(&self.version, today)).await
    }
}
