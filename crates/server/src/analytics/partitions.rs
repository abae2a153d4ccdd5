//! Daily partitions of `activity` (`activity_YYYYMMDD`, one UTC day each):
//! created ahead so rows land in their day's table, dropped when older
//! than the retention, so retention is a `DROP TABLE`, not a `DELETE`.
//!
//! Rows for a day without a partition land in `activity_default`.
//! PostgreSQL refuses to create a partition whose range has rows in the
//! default partition, so creating a day's partition first moves that
//! day's rows out of the default, creates the partition and puts the rows
//! back (now routed into it), in one transaction: nothing is lost or seen
//! twice.
//!
//! Invariants: the maintenance runs under one transaction-scoped advisory
//! lock, so concurrent runs (worker and server start-up, several workers)
//! take turns and each step is idempotent (`IF NOT EXISTS`, existence
//! checks). Table names are built here from dates, never from input.

use chrono::{Days, NaiveDate};
use sqlx::{AssertSqlSafe, PgPool};

/// The advisory lock key all partition maintenance takes (`activity` in
/// ASCII, arbitrary but fixed).
const LOCK_KEY: i64 = 0x0061_6374_6976_6974;

/// What one maintenance run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
    /// Rows moved out of the default partition into new partitions.
    pub moved: u64,
}

/// The partition of `day`'s rows.
pub fn partition_name(day: NaiveDate) -> String {
    format!("activity_{}", day.format("%Y%m%d"))
}

fn day_of(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("activity_")?;
    if digits.len() != 8 {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Creates the partitions of `today` and the `ahead` days after it
/// (moving any of their rows out of the default partition), and — when
/// `retention_days` is given — drops partitions of days before
/// `today - retention_days` and default rows that old.
pub async fn maintain(
    db: &PgPool,
    today: NaiveDate,
    ahead: u32,
    retention_days: Option<u32>,
) -> Result<Maintained, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await?;
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'activity'::regclass",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut done = Maintained::default();
    for offset in 0..=u64::from(ahead) {
        let Some(day) = today.checked_add_days(Days::new(offset)) else { break };
        let name = partition_name(day);
        if existing.contains(&name) {
            continue;
        }
        let Some(next) = day.succ_opt() else { break };
        // Dates format as YYYY-MM-DD: the literals below cannot carry SQL.
        sqlx::query("CREATE TEMP TABLE activity_moving (LIKE activity)").execute(&mut *tx).await?;
        // Dates format as YYYY-MM-DD: the literals below cannot carry SQL.
        sqlx::query(AssertSqlSafe(format!(
            "WITH moved AS (DELETE FROM activity_default WHERE occurred_at >= '{day}T00:00:00Z'
                            AND occurred_at < '{next}T00:00:00Z' RETURNING *)
             INSERT INTO activity_moving SELECT * FROM moved"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF activity
             FOR VALUES FROM ('{day}T00:00:00Z') TO ('{next}T00:00:00Z')"
        )))
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query("INSERT INTO activity SELECT * FROM activity_moving").execute(&mut *tx).await?;
        sqlx::query("DROP TABLE activity_moving").execute(&mut *tx).await?;
        done.moved += moved.rows_affected();
        done.created.push(name);
    }
    if let Some(days) = retention_days {
        if let Some(cutoff) = today.checked_sub_days(Days::new(u64::from(days))) {
            for name in &existing {
                if day_of(name).is_some_and(|day| day < cutoff) {
                    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}"))).execute(&mut *tx).await?;
                    done.dropped.push(name.clone());
                }
            }
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM activity_default WHERE occurred_at < '{cutoff}T00:00:00Z'"
            )))
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_to_their_day() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        assert_eq!(partition_name(day), "activity_20260309");
        assert_eq!(day_of(&partition_name(day)), Some(day));
        assert_eq!(day_of("activity_default"), None);
        assert_eq!(day_of("activity_2026030"), None);
    }
}
