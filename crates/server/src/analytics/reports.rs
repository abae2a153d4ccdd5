//! `Reports`: the usage reports. Past days come from `usage_daily` (the
//! roll-up), today — and any finished day the roll-up has not reached
//! yet — from the live Redis counters, so a report is as live as the
//! counters; every report goes through the report cache.
//!
//! Invariants: dates are UTC days; a range is `from <= to` and at most
//! [`MAX_RANGE_DAYS`] days; a day is read from exactly one source (rolled
//! days from PostgreSQL, the others from Redis), so nothing counts twice;
//! a caller reads only its own account's usage unless it is an operator,
//! and another account's client is "not found".

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use switchyard_kit::{CacheStatus, Keyspace, KitError, RedisConnection};
use utoipa::ToSchema;
use uuid::Uuid;

use super::counters::{Breakdown, Counters, Subject, HASH_KEEP_DAYS, LIVE_DAYS};
use super::report_cache::{ReportCache, ReportKey, Window};
use super::report_store::{self, Filter, Grouping};
use super::rollup::Rollup;
use super::usage::Usage;
use crate::config::AnalyticsSettings;
use crate::domain::{Principal, PrincipalId};
use crate::validation::FieldError;

/// The longest range a report covers, in days.
pub const MAX_RANGE_DAYS: u64 = 366;
/// The most entries a top-N report lists.
pub const MAX_LIMIT: u32 = 100;
/// How many of the most-missed reports a warm-up recomputes.
pub const PREWARM_REPORTS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn invalid(field: &str, message: &str) -> ReportError {
    ReportError::Validation(vec![FieldError::new(field, message)])
}

/// One day of an account's (or one client's) usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayUsage {
    /// UTC day, `YYYY-MM-DD`.
    pub date: NaiveDate,
    pub requests: u64,
    /// Responses with status 400 or above.
    pub errors: u64,
    /// Median latency in ms: the upper bound of the histogram bucket
    /// holding it; null on a day without requests.
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency in ms, read like `p50_ms`.
    pub p99_ms: Option<f64>,
}

/// One entry per day of the range, days without requests included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageDaily {
    pub days: Vec<DayUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClientUsage {
    pub client_id: Uuid,
    /// Null when the client has been deleted since.
    pub name: Option<String>,
    pub requests: u64,
    pub errors: u64,
}

/// The API clients with the most requests in the range, most first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopClients {
    pub clients: Vec<ClientUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteUsage {
    pub method: String,
    /// The route template (`/v1/leaderboards/{board}`).
    pub route: String,
    pub requests: u64,
    pub errors: u64,
    /// 99th-percentile latency in ms (upper bound of its bucket).
    pub p99_ms: Option<f64>,
}

/// The routes with the most requests in the range, most first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopRoutes {
    pub routes: Vec<RouteUsage>,
}

/// Distinct accounts with requests in the window (an estimate: a
/// HyperLogLog, standard error 0.81 %).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActiveUsers {
    pub window: Window,
    pub count: u64,
}

/// Distinct client addresses on the day (a HyperLogLog estimate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UniqueVisitors {
    pub date: NaiveDate,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserRequests {
    /// The account: a user, with its API clients' requests counted in.
    pub user_id: Uuid,
    pub requests: u64,
}

/// The accounts with the most requests on the day, most first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopUsers {
    pub users: Vec<UserRequests>,
}

/// A report and whether it came from the cache.
pub type Reported<T> = Result<(T, CacheStatus), ReportError>;

/// The usage reports (see the module docs).
#[derive(Debug)]
pub struct Reports {
    db: PgPool,
    counters: Arc<Counters>,
    cache: ReportCache,
    rollup: Rollup,
}

fn account_of(principal: &Principal) -> Uuid {
    match principal.account() {
        PrincipalId::User(id) | PrincipalId::Client(id) => id,
    }
}

/// Checks a `[from, to]` range.
fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), ReportError> {
    if from > to {
        return Err(invalid("from", "must not be after to"));
    }
    if to.signed_duration_since(from).num_days() >= i64::try_from(MAX_RANGE_DAYS).unwrap_or(i64::MAX) {
        return Err(invalid("to", "must be less than 366 days after from (a range covers at most 366 days)"));
    }
    Ok(())
}

fn check_limit(limit: u32) -> Result<u32, ReportError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(invalid("limit", "must be between 1 and 100"));
    }
    Ok(limit)
}

/// Checks that `date` is one of the days the live counters keep.
fn check_live_date(date: NaiveDate, today: NaiveDate) -> Result<(), ReportError> {
    let oldest = today.checked_sub_days(Days::new(LIVE_DAYS - 1)).unwrap_or(today);
    if date < oldest || date > today {
        return Err(invalid("date", "must be today or one of the 31 days before it (UTC)"));
    }
    Ok(())
}

/// Every day of `[from, to]`.
fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |day| *day <= to)
}

impl Reports {
    pub fn new(db: PgPool, redis: RedisConnection, keys: Keyspace, settings: &AnalyticsSettings) -> Self {
        Self {
            counters: Arc::new(Counters::new(redis.clone(), keys.clone())),
            cache: ReportCache::new(redis, keys, settings),
            rollup: Rollup::new(db.clone(), settings.retention_days),
            db,
        }
    }

    /// The live counters: the recorder's `counters` batch observer.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn rollup(&self) -> &Rollup {
        &self.rollup
    }

    pub fn cache(&self) -> &ReportCache {
        &self.cache
    }

    /// Days of `[from, to]` to read from the live counters: the ones not
    /// rolled up that the counters still hold.
    async fn live_days(&self, from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Result<Vec<NaiveDate>, ReportError> {
        let oldest = today.checked_sub_days(Days::new(HASH_KEEP_DAYS)).unwrap_or(today).max(from);
        let newest = to.min(today);
        if oldest > newest {
            return Ok(Vec::new());
        }
        let rolled = report_store::rolled_days(&self.db, oldest, newest).await?;
        Ok(days(oldest, newest).filter(|day| !rolled.contains(day)).collect())
    }

    /// The caller's account's daily usage (or one client's of it; an
    /// operator may name any client).
    pub async fn usage_daily(
        &self,
        caller: &Principal,
        client: Option<Uuid>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Reported<UsageDaily> {
        check_range(from, to)?;
        let account = match client {
            None => account_of(caller),
            Some(client) => {
                let owner = report_store::client_owner(&self.db, client).await?.ok_or(ReportError::NotFound)?;
                if owner != account_of(caller) && !caller.is_operator() {
                    return Err(ReportError::NotFound);
                }
                owner
            }
        };
        let key = ReportKey::UsageDaily { account, client, from, to };
        let now = Utc::now();
        self.cache.get_or_compute(&key, now, || self.compute_usage_daily(account, client, from, to, now)).await
    }

    async fn compute_usage_daily(
        &self,
        account: Uuid,
        client: Option<Uuid>,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<UsageDaily, ReportError> {
        let filter = Filter { account: Some(account), client };
        let mut by_day: HashMap<String, Usage> =
            report_store::usage(&self.db, Grouping::Day, filter, from, to).await?.into_iter().collect();
        let live = self.live_days(from, to, now.date_naive()).await?;
        let subject = client.map_or(Subject::Account(account), Subject::Client);
        for (day, usage) in live.iter().zip(self.counters.subject_usage(&live, subject).await?) {
            by_day.entry(day.to_string()).or_default().add(&usage);
        }
        let days = days(from, to)
            .map(|date| {
                let usage = by_day.remove(&date.to_string()).unwrap_or_default();
                DayUsage {
                    date,
                    requests: usage.requests,
                    errors: usage.errors,
                    p50_ms: usage.p50_ms(),
                    p99_ms: usage.p99_ms(),
                }
            })
            .collect();
        Ok(UsageDaily { days })
    }

    /// Usage per client id or per `<METHOD> <route>` over `[from, to]`.
    async fn breakdown(
        &self,
        by: Breakdown,
        from: NaiveDate,
        to: NaiveDate,
        today: NaiveDate,
    ) -> Result<Vec<(String, Usage)>, ReportError> {
        let grouping = match by {
            Breakdown::Clients => Grouping::Client,
            Breakdown::Routes => Grouping::Route,
        };
        let mut totals: HashMap<String, Usage> =
            report_store::usage(&self.db, grouping, Filter::default(), from, to).await?.into_iter().collect();
        for day in self.live_days(from, to, today).await? {
            for (subject, usage) in self.counters.breakdown(day, by).await? {
                totals.entry(subject).or_default().add(&usage);
            }
        }
        let mut ranked: Vec<(String, Usage)> = totals.into_iter().collect();
        ranked.sort_by(|(a, x), (b, y)| y.requests.cmp(&x.requests).then_with(|| a.cmp(b)));
        Ok(ranked)
    }

    /// The clients with the most requests over `[from, to]`.
    pub async fn top_clients(&self, from: NaiveDate, to: NaiveDate, limit: u32) -> Reported<TopClients> {
        check_range(from, to)?;
        let key = ReportKey::TopClients { from, to, limit: check_limit(limit)? };
        let now = Utc::now();
        self.cache.get_or_compute(&key, now, || self.compute_top_clients(from, to, limit, now.date_naive())).await
    }

    async fn compute_top_clients(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        limit: u32,
        today: NaiveDate,
    ) -> Result<TopClients, ReportError> {
        let top: Vec<(Uuid, Usage)> = self
            .breakdown(Breakdown::Clients, from, to, today)
            .await?
            .into_iter()
            .filter_map(|(client, usage)| Some((client.parse().ok()?, usage)))
            .take(limit as usize)
            .collect();
        let ids: Vec<Uuid> = top.iter().map(|(id, _)| *id).collect();
        let names: HashMap<Uuid, String> = report_store::client_names(&self.db, &ids).await?.into_iter().collect();
        let clients = top
            .into_iter()
            .map(|(client_id, usage)| ClientUsage {
                client_id,
                name: names.get(&client_id).cloned(),
                requests: usage.requests,
                errors: usage.errors,
            })
            .collect();
        Ok(TopClients { clients })
    }

    /// The routes with the most requests over `[from, to]`.
    pub async fn top_routes(&self, from: NaiveDate, to: NaiveDate, limit: u32) -> Reported<TopRoutes> {
        check_range(from, to)?;
        let key = ReportKey::TopRoutes { from, to, limit: check_limit(limit)? };
        let now = Utc::now();
        self.cache.get_or_compute(&key, now, || self.compute_top_routes(from, to, limit, now.date_naive())).await
    }

    async fn compute_top_routes(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        limit: u32,
        today: NaiveDate,
    ) -> Result<TopRoutes, ReportError> {
        let routes = self
            .breakdown(Breakdown::Routes, from, to, today)
            .await?
            .into_iter()
            .take(limit as usize)
            .map(|(key, usage)| {
                let (method, route) = key.split_once(' ').unwrap_or(("", &key));
                RouteUsage {
                    method: method.to_owned(),
                    route: route.to_owned(),
                    requests: usage.requests,
                    errors: usage.errors,
                    p99_ms: usage.p99_ms(),
                }
            })
            .collect();
        Ok(TopRoutes { routes })
    }

    /// Distinct accounts active in the window ending today.
    pub async fn active_users(&self, window: Window) -> Reported<ActiveUsers> {
        let now = Utc::now();
        let key = ReportKey::ActiveUsers { window };
        self.cache.get_or_compute(&key, now, || self.compute_active_users(window, now.date_naive())).await
    }

    async fn compute_active_users(&self, window: Window, today: NaiveDate) -> Result<ActiveUsers, ReportError> {
        let first = today.checked_sub_days(Days::new(window.days() - 1)).unwrap_or(today);
        let window_days: Vec<NaiveDate> = days(first, today).collect();
        Ok(ActiveUsers { window, count: self.counters.active_users(&window_days).await? })
    }

    /// Distinct client addresses on `date`.
    pub async fn unique_visitors(&self, date: NaiveDate) -> Reported<UniqueVisitors> {
        let now = Utc::now();
        check_live_date(date, now.date_naive())?;
        let key = ReportKey::UniqueVisitors { date };
        self.cache.get_or_compute(&key, now, || self.compute_unique_visitors(date)).await
    }

    async fn compute_unique_visitors(&self, date: NaiveDate) -> Result<UniqueVisitors, ReportError> {
        Ok(UniqueVisitors { date, count: self.counters.unique_visitors(date).await? })
    }

    /// The accounts with the most requests on `date`.
    pub async fn top_users(&self, date: NaiveDate, limit: u32) -> Reported<TopUsers> {
        let now = Utc::now();
        check_live_date(date, now.date_naive())?;
        let key = ReportKey::TopUsers { date, limit: check_limit(limit)? };
        self.cache.get_or_compute(&key, now, || self.compute_top_users(date, limit)).await
    }

    async fn compute_top_users(&self, date: NaiveDate, limit: u32) -> Result<TopUsers, ReportError> {
        let users = self
            .counters
            .top_users(date, u64::from(limit))
            .await?
            .into_iter()
            .filter_map(|(user, requests)| Some(UserRequests { user_id: user.parse().ok()?, requests }))
            .collect();
        Ok(TopUsers { users })
    }

    /// Recomputes `key`'s report and caches it.
    async fn warm(&self, key: &ReportKey, now: DateTime<Utc>) -> Result<(), ReportError> {
        let today = now.date_naive();
        let cache = &self.cache;
        match *key {
            ReportKey::UsageDaily { account, client, from, to } => {
                cache.put(key, now, &self.compute_usage_daily(account, client, from, to, now).await?).await?
            }
            ReportKey::TopClients { from, to, limit } => {
                cache.put(key, now, &self.compute_top_clients(from, to, limit, today).await?).await?
            }
            ReportKey::TopRoutes { from, to, limit } => {
                cache.put(key, now, &self.compute_top_routes(from, to, limit, today).await?).await?
            }
            ReportKey::ActiveUsers { window } => {
                cache.put(key, now, &self.compute_active_users(window, today).await?).await?
            }
            ReportKey::UniqueVisitors { date } => {
                cache.put(key, now, &self.compute_unique_visitors(date).await?).await?
            }
            ReportKey::TopUsers { date, limit } => {
                cache.put(key, now, &self.compute_top_users(date, limit).await?).await?
            }
        }
        Ok(())
    }

    /// Fills the cache with the `limit` most-missed reports (recorded with
    /// `CACHE_HIT_TRACKING_ENABLED`), recomputed now under the current
    /// `CACHE_VERSION`; returns the reports warmed. A report that fails is
    /// logged and skipped.
    pub async fn prewarm(&self, limit: usize) -> Result<usize, ReportError> {
        let now = Utc::now();
        let mut warmed = 0;
        for key in self.cache.most_missed(limit).await? {
            match self.warm(&key, now).await {
                Ok(()) => warmed += 1,
                Err(error) => tracing::warn!(%error, ?key, "could not pre-warm a report"),
            }
        }
        Ok(warmed)
    }
}
