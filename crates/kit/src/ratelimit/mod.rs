//! Rate limiting: fixed window, sliding window (exact log and approximate
//! two-counter), token bucket and GCRA, each decided in Redis by one Lua
//! script on Redis server time.
//!
//! Several limits can guard one request (e.g. 10/s burst and 1000/h): they
//! are decided together in the same script, the request is allowed only if
//! all allow it, and a denied request consumes nothing from any of them.
//! The script is loaded once and run with EVALSHA; after a Redis restart or
//! `SCRIPT FLUSH` it is reloaded transparently. All state keys of one
//! decision share the subject's hash tag, so it runs unchanged on Cluster;
//! every key expires on its own when idle.
//!
//! Memory and accuracy: fixed window and the approximate sliding window
//! keep O(1) state per subject (the latter assumes requests were spread
//! evenly over the previous window, so it can be off by a fraction of the
//! limit at window edges); the sliding log is exact but keeps one sorted-set
//! entry per allowed request in the window, whatever its cost (at most
//! `limit` entries), and a decision is a few O(log n) commands whatever the
//! limit and cost (a denial adds a binary search for its retry time); token
//! bucket and GCRA are O(1) and smooth, GCRA being the cheapest (one
//! integer).

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Cmd, Script};

use crate::duration::millis;
use crate::{Keyspace, KitError, RedisConnection};

static DECIDE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("decide.lua")));

/// One limit and its algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// At most `limit` per window, the window starting at the first request.
    FixedWindow { limit: u64, window: Duration },
    /// At most `limit` in any window-long interval (exact; one entry per
    /// allowed request in the window, so at most `limit` entries).
    SlidingWindowLog { limit: u64, window: Duration },
    /// Sliding window estimated from two fixed-window counters (O(1)).
    SlidingWindowCounter { limit: u64, window: Duration },
    /// A bucket of `capacity` tokens refilled at `refill_per_sec`.
    TokenBucket { capacity: u64, refill_per_sec: f64 },
    /// Generic cell rate: `rate` per second sustained, `burst` extra at once.
    Gcra { rate: f64, burst: u64 },
}

impl Limit {
    /// A short name for keys and metrics.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Limit::FixedWindow { .. } => "fixed_window",
            Limit::SlidingWindowLog { .. } => "sliding_window",
            Limit::SlidingWindowCounter { .. } => "sliding_window_approx",
            Limit::TokenBucket { .. } => "token_bucket",
            Limit::Gcra { .. } => "gcra",
        }
    }

    /// The most requests this limit can ever allow at once.
    pub fn max_cost(&self) -> u64 {
        match *self {
            Limit::FixedWindow { limit, .. }
            | Limit::SlidingWindowLog { limit, .. }
            | Limit::SlidingWindowCounter { limit, .. } => limit,
            Limit::TokenBucket { capacity, .. } => capacity,
            Limit::Gcra { burst, .. } => burst + 1,
        }
    }

    /// The last part of this limit's state key. The sliding log changed its
    /// format (one entry per request, not per unit of cost) and its key name
    /// with it: a log in the earlier format, under `sliding_window`, is never
    /// read as the new one and expires on its own within one window.
    fn state_name(&self) -> &'static str {
        match self {
            Limit::SlidingWindowLog { .. } => "sliding_log",
            _ => self.algorithm(),
        }
    }

    fn validate(&self) -> Result<(), KitError> {
        let ok = match *self {
            Limit::FixedWindow { limit, window }
            | Limit::SlidingWindowLog { limit, window }
            | Limit::SlidingWindowCounter { limit, window } => limit > 0 && window >= Duration::from_millis(1),
            Limit::TokenBucket { capacity, refill_per_sec } => {
                capacity > 0 && refill_per_sec.is_finite() && refill_per_sec > 0.0
            }
            Limit::Gcra { rate, .. } => rate.is_finite() && rate > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(KitError::Config(format!("invalid {} parameters", self.algorithm())))
        }
    }

    fn encode(&self) -> (u8, String, String) {
        let ms = |d: Duration| millis(d).to_string();
        match *self {
            Limit::FixedWindow { limit, window } => (1, limit.to_string(), ms(window)),
            Limit::SlidingWindowLog { limit, window } => (2, limit.to_string(), ms(window)),
            Limit::SlidingWindowCounter { limit, window } => (3, limit.to_string(), ms(window)),
            Limit::TokenBucket { capacity, refill_per_sec } => (4, capacity.to_string(), refill_per_sec.to_string()),
            Limit::Gcra { rate, burst } => (5, rate.to_string(), burst.to_string()),
        }
    }
}

/// The outcome of one limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is fully available again (window end, bucket full).
    pub reset_after: Duration,
    /// When denied: how long until the same request could be allowed;
    /// `None` when allowed or when it can never fit (cost above the limit).
    pub retry_after: Option<Duration>,
}

/// The outcome of a request against all its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True only if every limit allowed it (and then it was consumed).
    pub allowed: bool,
    /// One decision per limit, in the order given.
    pub decisions: Vec<Decision>,
}

impl Verdict {
    /// The decision to report: the first denying limit, else the one with
    /// the fewest remaining.
    pub fn binding(&self) -> Option<&Decision> {
        self.decisions.iter().find(|d| !d.allowed).or_else(|| self.decisions.iter().min_by_key(|d| d.remaining))
    }
}

/// One request's limits on one subject, for batching.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    /// Who is limited (a user, a client, an IP, a tenant's key); also the
    /// hash tag of every state key.
    pub subject: &'a str,
    /// Names each limit's state (e.g. the policy name), parallel to `limits`.
    pub names: &'a [&'a str],
    pub limits: &'a [Limit],
    pub cost: u64,
}

/// Rate limiter over one keyspace.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    conn: RedisConnection,
    keys: Keyspace,
}

impl RateLimiter {
    pub fn new(conn: RedisConnection, keys: Keyspace) -> Self {
        Self { conn, keys }
    }

    /// `EVALSHA decide.lua` for `check`, built straight into one command
    /// buffer (a `ScriptInvocation` allocates per argument, then copies).
    fn command(&self, check: &Check<'_>, dry_run: bool) -> Result<Cmd, KitError> {
        if check.names.len() != check.limits.len() || check.limits.is_empty() {
            return Err(KitError::Config("every limit needs a name, and at least one limit is needed".into()));
        }
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(DECIDE.get_hash()).arg(check.limits.len());
        for (name, limit) in check.names.iter().zip(check.limits) {
            limit.validate()?;
            cmd.arg(self.keys.tagged(check.subject, &["rl", name, limit.state_name()]));
        }
        cmd.arg(check.limits.len()).arg(check.cost).arg(u8::from(dry_run));
        for limit in check.limits {
            let (code, p1, p2) = limit.encode();
            cmd.arg(code).arg(p1).arg(p2).arg(0);
        }
        Ok(cmd)
    }

    /// Decides and, when every limit allows it, consumes `cost`.
    pub async fn check(&self, check: &Check<'_>) -> Result<Verdict, KitError> {
        self.run(check, false).await
    }

    /// Decides without consuming anything (the state "as of now").
    pub async fn peek(&self, check: &Check<'_>) -> Result<Verdict, KitError> {
        self.run(check, true).await
    }

    async fn run(&self, check: &Check<'_>, dry_run: bool) -> Result<Verdict, KitError> {
        let command = self.command(check, dry_run)?;
        let raw: Vec<i64> = crate::connection::query_evalsha(&self.conn, &command, &DECIDE).await?;
        Ok(verdict(&raw, check.cost, dry_run))
    }

    /// Several independent checks in one round trip (a pipeline of script
    /// calls; each check is atomic on its own).
    pub async fn check_many(&self, checks: &[Check<'_>]) -> Result<Vec<Verdict>, KitError> {
        let mut pipe = redis::pipe();
        for check in checks {
            pipe.add_command(self.command(check, false)?);
        }
        let raw: Vec<Vec<i64>> = crate::connection::query_pipeline(&self.conn, &pipe, &[&DECIDE]).await?;
        Ok(raw.iter().zip(checks).map(|(r, c)| verdict(r, c.cost, false)).collect())
    }
}

fn verdict(raw: &[i64], cost: u64, dry_run: bool) -> Verdict {
    let mut decisions: Vec<Decision> = raw
        .chunks_exact(5)
        .map(|c| Decision {
            allowed: c[0] == 1,
            limit: u64::try_from(c[1]).unwrap_or(0),
            remaining: u64::try_from(c[2]).unwrap_or(0),
            reset_after: Duration::from_millis(u64::try_from(c[3]).unwrap_or(0)),
            retry_after: u64::try_from(c[4]).ok().map(Duration::from_millis),
        })
        .collect();
    let allowed = decisions.iter().all(|d| d.allowed);
    if !allowed || dry_run {
        // Nothing was consumed: report what is left now, not after the cost.
        for d in decisions.iter_mut().filter(|d| d.allowed) {
            d.remaining = (d.remaining + cost).min(d.limit);
        }
    }
    Verdict { allowed, decisions }
}
