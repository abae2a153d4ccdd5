//! Board names, tenancy and limits, over the kit's `Leaderboards`. An
//! account creates at most `LEADERBOARDS_MAX_PER_ACCOUNT` boards (the kit's
//! `Quota` registry; a board once created stays counted, also after a reset).

use std::time::Duration;

use switchyard_kit::leaderboard::MAX_SCORE;
use switchyard_kit::{KitError, Leaderboards, Quota, RedisConnection, ScoreMode, Standing};

use crate::domain::Principal;
use crate::validation::FieldError;

/// The global board fed by actions; readable by everyone, written only by
/// the action flow.
pub const ACTIONS_BOARD: &str = "actions";
pub const MAX_PAGE: u64 = 100;
pub const MAX_RADIUS: u64 = 50;
const SCORE_RULE: &str = "must be a number from -1e15 to 1e15";

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("the board is read-only")]
    ReadOnly,
    #[error("not found")]
    NotFound,
    /// A new board past the account's quota.
    #[error("the account has {limit} boards, the most LEADERBOARDS_MAX_PER_ACCOUNT allows")]
    QuotaExceeded { limit: u64 },
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// How often a board starts over. Each period is its own board; the
/// previous one stays readable until the end of the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetPeriod {
    Never,
    Daily,
    Weekly,
}

impl ResetPeriod {
    pub fn parse(value: &str) -> Result<Self, BoardError> {
        match value {
            "never" => Ok(Self::Never),
            "daily" => Ok(Self::Daily),
            "weekly" => Ok(Self::Weekly),
            _ => Err(BoardError::Validation(vec![FieldError::new("reset", "must be never, daily or weekly")])),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }

    fn length_secs(self) -> Option<i64> {
        match self {
            Self::Never => None,
            Self::Daily => Some(86_400),
            Self::Weekly => Some(7 * 86_400),
        }
    }

    /// The period holding `unix_secs` (UTC days; weeks start on Monday:
    /// 1970-01-01 was a Thursday, hence the 3-day shift).
    pub fn index(self, unix_secs: i64) -> Option<i64> {
        let len = self.length_secs()?;
        let shift = if self == Self::Weekly { 3 * 86_400 } else { 0 };
        Some((unix_secs + shift).div_euclid(len))
    }
}

/// Which period of a periodic board to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    #[default]
    Current,
    Previous,
}

/// The storage name of one period of a periodic board.
pub fn period_board(scoped: &str, period: ResetPeriod, index: i64) -> String {
    format!("{scoped}@{}:{index}", period.as_str())
}

fn config_key(boards: &Leaderboards, scoped: &str) -> String {
    format!("{}:reset-period", boards.key(scoped))
}

/// The storage name to use now for `scoped`, and how long a new period
/// board lives (to the end of the next period, so "previous" stays readable).
fn resolve(scoped: &str, period: ResetPeriod, which: Which, now_secs: i64) -> (String, Option<Duration>) {
    match (period.index(now_secs), period.length_secs()) {
        (Some(index), Some(len)) => {
            let index = if which == Which::Previous { index - 1 } else { index };
            let shift = if period == ResetPeriod::Weekly { 3 * 86_400 } else { 0 };
            let end_of_next = (index + 2) * len - shift;
            let ttl = Duration::from_secs(u64::try_from(end_of_next - now_secs).unwrap_or(1).max(1));
            (period_board(scoped, period, index), Some(ttl))
        }
        _ => (scoped.to_owned(), None),
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Where a caller's boards live: a client's are its owner's.
pub fn tenant(principal: &Principal) -> String {
    principal.account().to_string()
}

/// The storage name of `board` for this caller, after checking the name.
fn scoped(principal: &Principal, board: &str) -> Result<String, BoardError> {
    let valid = !board.is_empty()
        && board.len() <= 64
        && board.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b':' | b'-'));
    if !valid {
        return Err(BoardError::Validation(vec![FieldError::new("board", "must be 1-64 characters of [a-z0-9_:-]")]));
    }
    if board == ACTIONS_BOARD {
        return Ok(format!("global/{ACTIONS_BOARD}"));
    }
    Ok(format!("{}/{board}", tenant(principal)))
}

fn writable(principal: &Principal, board: &str) -> Result<String, BoardError> {
    if board == ACTIONS_BOARD {
        return Err(BoardError::ReadOnly);
    }
    scoped(principal, board)
}

fn check_member(member: &str) -> Result<(), BoardError> {
    if member.is_empty() || member.chars().count() > 128 || member.chars().any(char::is_control) {
        return Err(BoardError::Validation(vec![FieldError::new("member", "must be 1-128 printable characters")]));
    }
    Ok(())
}

fn check_count(field: &str, value: u64, max: u64) -> Result<(), BoardError> {
    if value == 0 || value > max {
        return Err(BoardError::Validation(vec![FieldError::new(field, format!("must be between 1 and {max}"))]));
    }
    Ok(())
}

/// How a submitted score combines with the member's current one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace it.
    #[default]
    Set,
    /// Add to it.
    Increment,
    /// Keep the higher of the two.
    Max,
}

impl From<Mode> for ScoreMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Set => ScoreMode::Set,
            Mode::Increment => ScoreMode::Increment,
            Mode::Max => ScoreMode::Max,
        }
    }
}

/// The leaderboards capability's service: boards per account, over the
/// kit's `Leaderboards`, with each board's reset period stored beside it.
#[derive(Debug, Clone)]
pub struct BoardService {
    boards: Leaderboards,
    redis: RedisConnection,
    registry: Quota,
    max_boards: u64,
}

impl BoardService {
    /// `registry` holds each account's boards, at most `max_boards` each.
    pub fn new(redis: RedisConnection, boards: Leaderboards, registry: Quota, max_boards: u64) -> Self {
        Self { boards, redis, registry, max_boards }
    }

    /// A board written to is created: admitted under the account's quota.
    async fn admit(&self, principal: &Principal, board: &str) -> Result<(), BoardError> {
        if self.registry.admit(&tenant(principal), board, self.max_boards).await? {
            Ok(())
        } else {
            Err(BoardError::QuotaExceeded { limit: self.max_boards })
        }
    }

    /// A board's configured reset period.
    async fn period_of(&self, scoped: &str) -> Result<ResetPeriod, BoardError> {
        let mut conn = self.redis.clone();
        let stored: Option<String> = redis::cmd("GET")
            .arg(config_key(&self.boards, scoped))
            .query_async(&mut conn)
            .await
            .map_err(KitError::from)?;
        Ok(stored.as_deref().map(ResetPeriod::parse).transpose()?.unwrap_or(ResetPeriod::Never))
    }

    /// The board `board` of this caller as stored now: (storage name, ttl).
    async fn locate(
        &self,
        principal: &Principal,
        board: &str,
        which: Which,
    ) -> Result<(String, Option<Duration>), BoardError> {
        let scoped = scoped(principal, board)?;
        let period = self.period_of(&scoped).await?;
        Ok(resolve(&scoped, period, which, now_secs()))
    }

    /// Sets how often the caller's board starts over.
    pub async fn set_period(&self, principal: &Principal, board: &str, period: ResetPeriod) -> Result<(), BoardError> {
        let scoped = writable(principal, board)?;
        self.admit(principal, board).await?;
        let mut conn = self.redis.clone();
        let key = config_key(&self.boards, &scoped);
        if period == ResetPeriod::Never {
            redis::cmd("DEL").arg(key).query_async::<()>(&mut conn).await.map_err(KitError::from)?;
        } else {
            redis::cmd("SET")
                .arg(key)
                .arg(period.as_str())
                .query_async::<()>(&mut conn)
                .await
                .map_err(KitError::from)?;
        }
        Ok(())
    }

    pub async fn submit(
        &self,
        principal: &Principal,
        board: &str,
        member: &str,
        score: f64,
        mode: ScoreMode,
    ) -> Result<Standing, BoardError> {
        writable(principal, board)?;
        check_member(member)?;
        if !score.is_finite() || score.abs() > MAX_SCORE {
            return Err(BoardError::Validation(vec![FieldError::new("score", SCORE_RULE)]));
        }
        self.admit(principal, board).await?;
        let (key, ttl) = self.locate(principal, board, Which::Current).await?;
        match self.boards.submit_expiring(&key, member, score, mode, ttl).await {
            Err(KitError::OutOfRange(_)) => Err(BoardError::Validation(vec![FieldError::new(
                "score",
                "would take the member's score out of range",
            )])),
            other => Ok(other?),
        }
    }

    pub async fn top(
        &self,
        principal: &Principal,
        board: &str,
        which: Which,
        limit: u64,
    ) -> Result<Vec<Standing>, BoardError> {
        check_count("limit", limit, MAX_PAGE)?;
        let (key, _) = self.locate(principal, board, which).await?;
        Ok(self.boards.top(&key, limit).await?)
    }

    pub async fn page(
        &self,
        principal: &Principal,
        board: &str,
        which: Which,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<Standing>, u64), BoardError> {
        check_count("page", page, u64::from(u32::MAX))?;
        check_count("per_page", per_page, MAX_PAGE)?;
        let (key, _) = self.locate(principal, board, which).await?;
        Ok(self.boards.page(&key, (page - 1) * per_page, per_page).await?)
    }

    pub async fn member(
        &self,
        principal: &Principal,
        board: &str,
        which: Which,
        member: &str,
    ) -> Result<Standing, BoardError> {
        check_member(member)?;
        let (key, _) = self.locate(principal, board, which).await?;
        self.boards.member(&key, member).await?.ok_or(BoardError::NotFound)
    }

    pub async fn around(
        &self,
        principal: &Principal,
        board: &str,
        which: Which,
        member: &str,
        radius: u64,
    ) -> Result<Vec<Standing>, BoardError> {
        check_member(member)?;
        if radius > MAX_RADIUS {
            return Err(BoardError::Validation(vec![FieldError::new(
                "radius",
                format!("must be at most {MAX_RADIUS}"),
            )]));
        }
        let (key, _) = self.locate(principal, board, which).await?;
        self.boards.around(&key, member, radius).await?.ok_or(BoardError::NotFound)
    }

    pub async fn remove(&self, principal: &Principal, board: &str, member: &str) -> Result<(), BoardError> {
        writable(principal, board)?;
        check_member(member)?;
        let (key, _) = self.locate(principal, board, Which::Current).await?;
        if self.boards.remove(&key, member).await? {
            Ok(())
        } else {
            Err(BoardError::NotFound)
        }
    }

    /// Empties the current period of the board (its reset period stays).
    pub async fn reset(&self, principal: &Principal, board: &str) -> Result<(), BoardError> {
        writable(principal, board)?;
        let (key, _) = self.locate(principal, board, Which::Current).await?;
        self.boards.reset(&key).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_monday_weeks() {
        // 2026-11-23 is a Monday; 2026-11-22 a Sunday.
        let monday =
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        let sunday_night = monday - 1;
        assert_eq!(ResetPeriod::Weekly.index(monday), ResetPeriod::Weekly.index(monday + 6 * 86_400 + 86_399));
        assert_eq!(ResetPeriod::Weekly.index(sunday_night).unwrap() + 1, ResetPeriod::Weekly.index(monday).unwrap());
        assert_eq!(ResetPeriod::Daily.index(monday).unwrap() - 1, ResetPeriod::Daily.index(sunday_night).unwrap());
        assert_eq!(ResetPeriod::Never.index(monday), None);
        // A period board lives until the end of the next period.
        let (name, ttl) = resolve("t/b", ResetPeriod::Daily, Which::Current, monday + 3600);
        assert!(name.starts_with("t/b@daily:"));
        assert_eq!(ttl, Some(Duration::from_secs(2 * 86_400 - 3600)));
        let (weekly, ttl) = resolve("t/b", ResetPeriod::Weekly, Which::Current, monday);
        assert!(weekly.starts_with("t/b@weekly:"));
        assert_eq!(ttl, Some(Duration::from_secs(14 * 86_400)));
        let (previous, _) = resolve("t/b", ResetPeriod::Daily, Which::Previous, monday + 3600);
        assert_eq!(previous, period_board("t/b", ResetPeriod::Daily, ResetPeriod::Daily.index(monday).unwrap() - 1));
    }
}
