//! Live usage counters: the `counters` [`BatchObserver`] counts each batch
//! of activity records into per-day Redis keys, and the reports read today
//! (and any finished day the roll-up has not reached yet) from them.
//!
//! Key layout (every key built by the kit's `Keyspace`):
//! - `{usage:<day>}:requests` and `{usage:<day>}:errors`: hashes of
//!   counts per subject: `c:<client id>`, `a:<account id>`,
//!   `r:<METHOD> <route template>`;
//! - `{usage:<day>}:latency`: a hash of latency-bucket counts per client,
//!   account and route: `<subject>:<bucket>` (bounds in [`super::usage`]);
//! - `{usage-hll}:visitors:<day>` and `{usage-hll}:users:<day>`:
//!   HyperLogLogs of distinct client addresses and distinct accounts;
//! - the kit leaderboard `usage-top-users:<day>`: requests per account.
//!
//! The day's hashes share the day's hash tag. The HyperLogLogs share one
//! tag across days, because a week's or month's active users is one
//! PFCOUNT over many days' keys, which Redis Cluster allows only within a
//! slot. The batch's pipeline is not a transaction, so on a cluster it is
//! split by slot (one round trip per node instead of one in all).
//!
//! Invariants: one pipeline per batch, with one HINCRBY per distinct
//! (day, field) and one PFADD per day and HyperLogLog; every key expires:
//! the hashes [`HASH_KEEP_DAYS`] after their day (the roll-up reads
//! PostgreSQL, not these), the HyperLogLogs and boards [`LIVE_DAYS`] after.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{Days, NaiveDate};
use futures::future::BoxFuture;
use switchyard_kit::connection::query_pipeline;
use switchyard_kit::{Keyspace, KitError, Leaderboards, RedisConnection};
use uuid::Uuid;

use super::record::IpText;
use super::usage::{bucket_of, Usage, BUCKETS};
use super::{ActivityRecord, BatchObserver};

/// Days after its own that a day's count hashes are kept: long enough for
/// the roll-up to take the day over from them.
pub const HASH_KEEP_DAYS: u64 = 3;

/// Days (counting today) for which visitors, active users and top users
/// can be asked: their keys live this long after their day.
pub const LIVE_DAYS: u64 = 32;

/// Whose counts a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Client(Uuid),
    Account(Uuid),
}

impl Subject {
    fn field(self) -> String {
        match self {
            Subject::Client(id) => format!("c:{id}"),
            Subject::Account(id) => format!("a:{id}"),
        }
    }
}

/// Which subjects of a day to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakdown {
    /// By client id (`<uuid>`).
    Clients,
    /// By route (`<METHOD> <route>`).
    Routes,
}

impl Breakdown {
    fn prefix(self) -> &'static str {
        match self {
            Breakdown::Clients => "c:",
            Breakdown::Routes => "r:",
        }
    }
}

fn route_field(method: &str, route: &str) -> String {
    format!("r:{method} {route}")
}

/// The per-day counters in Redis: written by the observer, read by reports.
#[derive(Debug, Clone)]
pub struct Counters {
    conn: RedisConnection,
    keys: Keyspace,
    boards: Leaderboards,
}

/// What a count hash field is about, borrowed from the batch's records:
/// a batch is aggregated without building a string per record; each
/// distinct field's name is formatted once, when the pipeline is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field<'a> {
    Subject(Subject),
    /// (method, route template).
    Route(&'a str, &'a str),
}

impl Field<'_> {
    fn name(self) -> String {
        match self {
            Field::Subject(subject) => subject.field(),
            Field::Route(method, route) => route_field(method, route),
        }
    }
}

/// One day's share of a batch, aggregated before anything is sent. The
/// maps hash with foldhash (randomly seeded per map), not SipHash: hashing
/// is most of the per-record work, and a map holds one batch's entries
/// (ten batches' at most), too few for colliding keys to matter.
#[derive(Debug, Default)]
struct DayTally<'a> {
    /// Requests, errors and latency buckets per field; the `Account`
    /// entries also feed the active users and the top-users board.
    fields: foldhash::HashMap<Field<'a>, Usage>,
    visitors: foldhash::HashSet<IpAddr>,
}

impl<'a> DayTally<'a> {
    fn count(&mut self, record: &'a ActivityRecord) {
        let bucket = bucket_of(record.latency_us);
        let errors = u64::from(record.is_error());
        let client = record.client_id.map(|id| Field::Subject(Subject::Client(id)));
        let account = record.account_id.map(|id| Field::Subject(Subject::Account(id)));
        let route = Some(Field::Route(&record.method, &record.route));
        for field in [client, account, route].into_iter().flatten() {
            let usage = self.fields.entry(field).or_default();
            usage.requests += 1;
            usage.errors += errors;
            usage.histogram[bucket] += 1;
        }
        if let Some(ip) = record.client_ip {
            self.visitors.insert(ip);
        }
    }

    /// Requests per account.
    fn accounts(&self) -> impl Iterator<Item = (Uuid, u64)> + '_ {
        self.fields.iter().filter_map(|(field, usage)| match field {
            Field::Subject(Subject::Account(id)) => Some((*id, usage.requests)),
            _ => None,
        })
    }
}

/// Seconds since the epoch at which a key of `day` should vanish.
fn expiry(day: NaiveDate, keep_days: u64) -> i64 {
    let end = day.checked_add_days(Days::new(keep_days + 1)).unwrap_or(day);
    end.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp())
}

impl Counters {
    pub fn new(conn: RedisConnection, keys: Keyspace) -> Self {
        let boards = Leaderboards::new(conn.clone(), keys.clone());
        Self { conn, keys, boards }
    }

    fn day_key(&self, day: NaiveDate, name: &str) -> String {
        self.keys.tagged(&format!("usage:{day}"), &[name])
    }

    fn hll_key(&self, name: &str, day: NaiveDate) -> String {
        self.keys.tagged("usage-hll", &[name, &day.to_string()])
    }

    /// The kit leaderboard holding `day`'s requests per account.
    pub fn top_users_board(day: NaiveDate) -> String {
        format!("usage-top-users:{day}")
    }

    /// Counts a batch: aggregated in memory, then one pipeline.
    pub async fn count(&self, batch: &[ActivityRecord]) -> Result<(), KitError> {
        let mut days: BTreeMap<NaiveDate, DayTally<'_>> = BTreeMap::new();
        for record in batch {
            days.entry(record.occurred_at.date_naive()).or_default().count(record);
        }
        if days.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (day, tally) in &days {
            let hashes_expire = expiry(*day, HASH_KEEP_DAYS);
            let live_expire = expiry(*day, LIVE_DAYS);
            let (requests, errors, latency) =
                (self.day_key(*day, "requests"), self.day_key(*day, "errors"), self.day_key(*day, "latency"));
            let mut any_errors = false;
            for (field, usage) in &tally.fields {
                let name = field.name();
                pipe.hincr(&requests, &name, usage.requests).ignore();
                if usage.errors > 0 {
                    pipe.hincr(&errors, &name, usage.errors).ignore();
                    any_errors = true;
                }
                for (bucket, by) in usage.histogram.iter().enumerate().filter(|(_, by)| **by > 0) {
                    pipe.hincr(&latency, format!("{name}:{bucket}"), *by).ignore();
                }
            }
            if !tally.fields.is_empty() {
                pipe.expire_at(&requests, hashes_expire).ignore();
                pipe.expire_at(&latency, hashes_expire).ignore();
            }
            if any_errors {
                pipe.expire_at(&errors, hashes_expire).ignore();
            }
            let accounts: Vec<(String, u64)> = tally.accounts().map(|(id, by)| (id.to_string(), by)).collect();
            let visitors: Vec<IpText> = tally.visitors.iter().copied().map(IpText::new).collect();
            let visitors: Vec<&str> = visitors.iter().map(IpText::as_str).collect();
            for (name, members) in
                [("visitors", visitors), ("users", accounts.iter().map(|(id, _)| id.as_str()).collect())]
            {
                if members.is_empty() {
                    continue;
                }
                let key = self.hll_key(name, *day);
                pipe.pfadd(&key, members).ignore();
                pipe.expire_at(&key, live_expire).ignore();
            }
            if !accounts.is_empty() {
                let board = Self::top_users_board(*day);
                for (account, by) in &accounts {
                    // Counts stay far below 2^53: exact as a score.
                    self.boards.increment_in(&mut pipe, &board, account, *by as f64);
                }
                pipe.expire_at(self.boards.key(&board), live_expire).ignore();
            }
        }
        query_pipeline::<()>(&self.conn, &pipe, &[]).await
    }

    /// One subject's usage on each of `days`, in order (one round trip).
    pub async fn subject_usage(&self, days: &[NaiveDate], subject: Subject) -> Result<Vec<Usage>, KitError> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let field = subject.field();
        let latency_fields: Vec<String> = (0..BUCKETS).map(|bucket| format!("{field}:{bucket}")).collect();
        let mut pipe = redis::pipe();
        for day in days {
            pipe.hget(self.day_key(*day, "requests"), &field);
            pipe.hget(self.day_key(*day, "errors"), &field);
            pipe.cmd("HMGET").arg(self.day_key(*day, "latency")).arg(&latency_fields);
        }
        type Reply = (Option<u64>, Option<u64>, Vec<Option<u64>>);
        let replies: Vec<Reply> = query_pipeline(&self.conn, &pipe, &[]).await?;
        Ok(replies
            .into_iter()
            .map(|(requests, errors, buckets)| {
                let mut usage =
                    Usage { requests: requests.unwrap_or(0), errors: errors.unwrap_or(0), histogram: [0; BUCKETS] };
                for (slot, count) in usage.histogram.iter_mut().zip(buckets) {
                    *slot = count.unwrap_or(0);
                }
                usage
            })
            .collect())
    }

    /// Every client's or route's usage on `day`, by client id or by
    /// `<METHOD> <route>`.
    pub async fn breakdown(&self, day: NaiveDate, by: Breakdown) -> Result<HashMap<String, Usage>, KitError> {
        let mut pipe = redis::pipe();
        for name in ["requests", "errors", "latency"] {
            pipe.hgetall(self.day_key(day, name));
        }
        type Counts = HashMap<String, u64>;
        let (requests, errors, latency): (Counts, Counts, Counts) = query_pipeline(&self.conn, &pipe, &[]).await?;
        let prefix = by.prefix();
        let mut out: HashMap<String, Usage> = HashMap::new();
        for (field, count) in requests {
            if let Some(subject) = field.strip_prefix(prefix) {
                out.entry(subject.to_owned()).or_default().requests = count;
            }
        }
        for (field, count) in errors {
            if let Some(subject) = field.strip_prefix(prefix) {
                out.entry(subject.to_owned()).or_default().errors = count;
            }
        }
        for (field, count) in latency {
            // The bucket is after the last colon (routes may hold colons).
            let Some((subject, bucket)) = field.strip_prefix(prefix).and_then(|rest| rest.rsplit_once(':')) else {
                continue;
            };
            if let (Some(usage), Ok(bucket)) = (out.get_mut(subject), bucket.parse::<usize>()) {
                if let Some(slot) = usage.histogram.get_mut(bucket) {
                    *slot = count;
                }
            }
        }
        Ok(out)
    }

    /// Distinct accounts seen on any of `days` (one PFCOUNT over them all).
    pub async fn active_users(&self, days: &[NaiveDate]) -> Result<u64, KitError> {
        self.distinct("users", days).await
    }

    /// Distinct client addresses seen on `day`.
    pub async fn unique_visitors(&self, day: NaiveDate) -> Result<u64, KitError> {
        self.distinct("visitors", &[day]).await
    }

    async fn distinct(&self, name: &str, days: &[NaiveDate]) -> Result<u64, KitError> {
        let keys: Vec<String> = days.iter().map(|day| self.hll_key(name, *day)).collect();
        let mut conn = self.conn.clone();
        Ok(redis::cmd("PFCOUNT").arg(keys).query_async(&mut conn).await?)
    }

    /// The accounts with the most requests on `day`, most first.
    pub async fn top_users(&self, day: NaiveDate, limit: u64) -> Result<Vec<(String, u64)>, KitError> {
        let top = self.boards.top(&Self::top_users_board(day), limit).await?;
        // Scores are whole counts.
        Ok(top.into_iter().map(|standing| (standing.member, standing.score as u64)).collect())
    }
}

impl BatchObserver for Counters {
    fn name(&self) -> &'static str {
        "counters"
    }

    fn observe<'a>(&'a self, batch: &'a [ActivityRecord]) -> BoxFuture<'a, Result<(), KitError>> {
        Box::pin(self.count(batch))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::analytics::PrincipalKind;

    fn record(client: Option<Uuid>, account: Uuid, route: &str, status: u16, latency_us: u64) -> ActivityRecord {
        ActivityRecord {
            id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            request_id: String::new(),
            principal_kind: if client.is_some() { PrincipalKind::Client } else { PrincipalKind::User },
            user_id: None,
            client_id: client,
            account_id: Some(account),
            method: "GET".into(),
            route: route.to_owned().into(),
            status,
            latency_us,
            request_bytes: 0,
            response_bytes: 0,
            client_ip: Some([10, 0, 0, 1].into()),
            user_agent: None,
        }
    }

    #[test]
    fn a_batch_is_tallied_once_per_distinct_field() {
        let (client, account) = (Uuid::now_v7(), Uuid::now_v7());
        let batch = [
            record(Some(client), account, "/v1/a", 200, 100),
            record(Some(client), account, "/v1/a", 500, 100),
            record(None, account, "/v1/b", 200, 3_000),
        ];
        let mut tally = DayTally::default();
        for r in &batch {
            tally.count(r);
        }
        assert_eq!(tally.fields.len(), 4, "client, account and two routes");
        let usage = |field| tally.fields.get(&field).cloned().unwrap_or_default();
        let of_client = usage(Field::Subject(Subject::Client(client)));
        assert_eq!((of_client.requests, of_client.errors, of_client.histogram[0]), (2, 1, 2));
        let of_account = usage(Field::Subject(Subject::Account(account)));
        assert_eq!((of_account.requests, of_account.errors), (3, 1));
        assert_eq!(of_account.histogram[bucket_of(3_000)], 1);
        assert_eq!(usage(Field::Route("GET", "/v1/b")).requests, 1);
        assert_eq!(Field::Route("GET", "/v1/b").name(), "r:GET /v1/b");
        assert_eq!(tally.accounts().collect::<Vec<_>>(), vec![(account, 3)]);
        assert_eq!(tally.visitors.len(), 1);
    }
}
