//! The daily roll-up: each finished UTC day of `activity` becomes its rows
//! of `usage_daily` (requests, errors and latency histogram per account,
//! client, method and route), from which reports read past days.
//!
//! A worker's cron job (`usage-rollup`, hourly) catches up every finished
//! day within `ACTIVITY_RETENTION_DAYS` that is not rolled yet, so a missed
//! run (workers down overnight) is made good by the next one.
//!
//! Invariants: a day is rolled in one transaction (replace its rows, mark
//! it in `usage_rollups`), so rerunning a day gives the same rows and a
//! report never sees half a day; today is never rolled. Records written
//! for a day after it was rolled (a spill replayed late) are not counted
//! unless the day is rolled again ([`Rollup::roll_day`]).

use chrono::{Days, NaiveDate};
use sqlx::PgPool;

use super::report_store;

/// Rolls finished days of activity into `usage_daily`.
#[derive(Debug, Clone)]
pub struct Rollup {
    db: PgPool,
    retention_days: u32,
}

impl Rollup {
    pub fn new(db: PgPool, retention_days: u32) -> Self {
        Self { db, retention_days }
    }

    /// Rolls up `day` (again, if it was); returns the rows written.
    pub async fn roll_day(&self, day: NaiveDate) -> Result<u64, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let written = report_store::roll_up_day(&mut tx, day).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Rolls up every finished day of the retention window before `today`
    /// that is not rolled yet, oldest first; returns those days.
    pub async fn catch_up(&self, today: NaiveDate) -> Result<Vec<NaiveDate>, sqlx::Error> {
        let Some(newest) = today.checked_sub_days(Days::new(1)) else { return Ok(Vec::new()) };
        let oldest = today.checked_sub_days(Days::new(u64::from(self.retention_days))).unwrap_or(newest);
        let days = report_store::unrolled_days(&self.db, oldest, newest).await?;
        for day in &days {
            let rows = self.roll_day(*day).await?;
            tracing::info!(%day, rows, "rolled up a day of activity");
        }
        Ok(days)
    }
}
