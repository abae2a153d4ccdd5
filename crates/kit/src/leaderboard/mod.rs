//! Leaderboards: named sorted sets of members and scores, highest first.
//!
//! Ranks are 1-based positions in descending score order. Ties are ordered
//! deterministically, by member name descending (Redis's order for equal
//! scores in ZREVRANGE), so tied members get distinct, consecutive ranks.
//! Each board is one key tagged with its own name; a score change and the
//! rank it reports come from one script, so they agree under concurrency.

use std::sync::LazyLock;

use redis::Script;

use crate::{Keyspace, KitError, RedisConnection};

/// The largest absolute score a board holds (integers stay exact well
/// past it); a submission or increment beyond it changes nothing.
pub const MAX_SCORE: f64 = 1e15;

static SUBMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("submit.lua")));
static AROUND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("around.lua")));

/// How a submitted score combines with the member's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreMode {
    /// Replace it.
    Set,
    /// Add to it (a new member starts from 0).
    Increment,
    /// Keep the higher of the two.
    Max,
}

impl ScoreMode {
    fn as_str(self) -> &'static str {
        match self {
            ScoreMode::Set => "set",
            ScoreMode::Increment => "increment",
            ScoreMode::Max => "max",
        }
    }
}

/// One member's standing.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// 1-based.
    pub rank: u64,
    pub member: String,
    pub score: f64,
}

/// Leaderboards in one keyspace; a board is addressed by an opaque name
/// the caller scopes (e.g. `<tenant>/<board>`).
#[derive(Clone, Debug)]
pub struct Leaderboards {
    conn: RedisConnection,
    keys: Keyspace,
}

impl Leaderboards {
    pub fn new(conn: RedisConnection, keys: Keyspace) -> Self {
        Self { conn, keys }
    }

    /// The Redis key of a board (for inspection and tests).
    pub fn key(&self, board: &str) -> String {
        self.keys.tagged(&format!("lb:{board}"), &["scores"])
    }

    /// Records a score and returns the member's resulting standing.
    pub async fn submit(&self, board: &str, member: &str, score: f64, mode: ScoreMode) -> Result<Standing, KitError> {
        self.submit_expiring(board, member, score, mode, None).await
    }

    /// [`Leaderboards::submit`] to a board that expires `ttl` after its
    /// first score (for boards of one period: a day, a week).
    pub async fn submit_expiring(
        &self,
        board: &str,
        member: &str,
        score: f64,
        mode: ScoreMode,
        ttl: Option<std::time::Duration>,
    ) -> Result<Standing, KitError> {
        if !score.is_finite() || score.abs() > MAX_SCORE {
            return Err(KitError::OutOfRange(format!("a score must be a number from -{MAX_SCORE:e} to {MAX_SCORE:e}")));
        }
        let mut conn = self.conn.clone();
        let (score, rank): (f64, u64) = SUBMIT
            .key(self.key(board))
            .arg(member)
            .arg(score)
            .arg(mode.as_str())
            .arg(ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)))
            .arg(MAX_SCORE)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| match e.code() {
                Some("OUTOFRANGE") => {
                    KitError::OutOfRange(format!("the score would leave -{MAX_SCORE:e} to {MAX_SCORE:e}"))
                }
                _ => KitError::from(e),
            })?;
        Ok(Standing { rank: rank + 1, member: member.to_owned(), score })
    }

    /// Adds "increment `member` by `by`" to `pipe`, so a caller can make it
    /// part of one round trip with other side effects.
    pub fn increment_in(&self, pipe: &mut redis::Pipeline, board: &str, member: &str, by: f64) {
        pipe.zincr(self.key(board), member, by).ignore();
    }

    /// The first `limit` standings.
    pub async fn top(&self, board: &str, limit: u64) -> Result<Vec<Standing>, KitError> {
        self.range(board, 0, limit).await
    }

    /// Standings `offset..offset + count` (0-based) and the board's size.
    pub async fn page(&self, board: &str, offset: u64, count: u64) -> Result<(Vec<Standing>, u64), KitError> {
        let mut conn = self.conn.clone();
        let key = self.key(board);
        let (entries, total): (Vec<(String, f64)>, u64) = redis::pipe()
            .atomic()
            .cmd("ZREVRANGE")
            .arg(&key)
            .arg(offset)
            .arg(i64::try_from(offset + count).unwrap_or(i64::MAX) - 1)
            .arg("WITHSCORES")
            .zcard(&key)
            .query_async(&mut conn)
            .await?;
        Ok((standings(offset, entries), total))
    }

    async fn range(&self, board: &str, offset: u64, count: u64) -> Result<Vec<Standing>, KitError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let entries: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
            .arg(self.key(board))
            .arg(offset)
            .arg(offset + count - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok(standings(offset, entries))
    }

    /// One member's standing, `None` when absent.
    pub async fn member(&self, board: &str, member: &str) -> Result<Option<Standing>, KitError> {
        let mut conn = self.conn.clone();
        let key = self.key(board);
        let (score, rank): (Option<f64>, Option<u64>) =
            redis::pipe().atomic().zscore(&key, member).zrevrank(&key, member).query_async(&mut conn).await?;
        Ok(score.zip(rank).map(|(score, rank)| Standing { rank: rank + 1, member: member.to_owned(), score }))
    }

    /// The member and up to `radius` neighbours above and below it.
    pub async fn around(&self, board: &str, member: &str, radius: u64) -> Result<Option<Vec<Standing>>, KitError> {
        let mut conn = self.conn.clone();
        let reply: Option<(u64, Vec<(String, f64)>)> =
            AROUND.key(self.key(board)).arg(member).arg(radius).invoke_async(&mut conn).await?;
        Ok(reply.map(|(start, entries)| standings(start, entries)))
    }

    /// Removes a member; true when it was there.
    pub async fn remove(&self, board: &str, member: &str) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("ZREM").arg(self.key(board)).arg(member).query_async(&mut conn).await?;
        Ok(removed == 1)
    }

    /// Empties the board; true when it had members.
    pub async fn reset(&self, board: &str) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("DEL").arg(self.key(board)).query_async(&mut conn).await?;
        Ok(removed == 1)
    }
}

fn standings(offset: u64, entries: Vec<(String, f64)>) -> Vec<Standing> {
    entries.into_iter().zip(offset + 1..).map(|((member, score), rank)| Standing { rank, member, score }).collect()
}
