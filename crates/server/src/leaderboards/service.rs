//! Board names, tenancy and limits, over the kit's `Leaderboards`.

use switchyard_kit::{KitError, Leaderboards, ScoreMode, Standing};

use crate::identity::Principal;
use crate::validation::FieldError;

/// The global board fed by actions; readable by everyone, written only by
/// the action flow.
pub const ACTIONS_BOARD: &str = "actions";
pub const MAX_PAGE: u64 = 100;
pub const MAX_RADIUS: u64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("the board is read-only")]
    ReadOnly,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// Where a caller's boards live.
pub fn tenant(principal: &Principal) -> String {
    match principal {
        Principal::User(user) => format!("user:{}", user.user_id),
        Principal::Client(client) => format!("user:{}", client.owner_id),
    }
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

pub fn parse_mode(mode: &str) -> Result<ScoreMode, BoardError> {
    match mode {
        "set" => Ok(ScoreMode::Set),
        "increment" => Ok(ScoreMode::Increment),
        "max" => Ok(ScoreMode::Max),
        _ => Err(BoardError::Validation(vec![FieldError::new("mode", "must be set, increment or max")])),
    }
}

pub async fn submit(
    boards: &Leaderboards,
    principal: &Principal,
    board: &str,
    member: &str,
    score: f64,
    mode: ScoreMode,
) -> Result<Standing, BoardError> {
    let key = writable(principal, board)?;
    check_member(member)?;
    if !score.is_finite() {
        return Err(BoardError::Validation(vec![FieldError::new("score", "must be a finite number")]));
    }
    Ok(boards.submit(&key, member, score, mode).await?)
}

pub async fn top(
    boards: &Leaderboards,
    principal: &Principal,
    board: &str,
    limit: u64,
) -> Result<Vec<Standing>, BoardError> {
    let key = scoped(principal, board)?;
    check_count("limit", limit, MAX_PAGE)?;
    Ok(boards.top(&key, limit).await?)
}

pub async fn page(
    boards: &Leaderboards,
    principal: &Principal,
    board: &str,
    page: u64,
    per_page: u64,
) -> Result<(Vec<Standing>, u64), BoardError> {
    let key = scoped(principal, board)?;
    check_count("page", page, u64::from(u32::MAX))?;
    check_count("per_page", per_page, MAX_PAGE)?;
    Ok(boards.page(&key, (page - 1) * per_page, per_page).await?)
}

pub async fn member(
    boards: &Leaderboards,
    principal: &Principal,
    board: &str,
    member: &str,
) -> Result<Standing, BoardError> {
    let key = scoped(principal, board)?;
    check_member(member)?;
    boards.member(&key, member).await?.ok_or(BoardError::NotFound)
}

pub async fn around(
    boards: &Leaderboards,
    principal: &Principal,
    board: &str,
    member: &str,
    radius: u64,
) -> Result<Vec<Standing>, BoardError> {
    let key = scoped(principal, board)?;
    check_member(member)?;
    if radius > MAX_RADIUS {
        return Err(BoardError::Validation(vec![FieldError::new("radius", format!("must be at most {MAX_RADIUS}"))]));
    }
    boards.around(&key, member, radius).await?.ok_or(BoardError::NotFound)
}

pub async fn remove(boards: &Leaderboards, principal: &Principal, board: &str, member: &str) -> Result<(), BoardError> {
    let key = writable(principal, board)?;
    check_member(member)?;
    if boards.remove(&key, member).await? {
        Ok(())
    } else {
        Err(BoardError::NotFound)
    }
}

pub async fn reset(boards: &Leaderboards, principal: &Principal, board: &str) -> Result<(), BoardError> {
    let key = writable(principal, board)?;
    boards.reset(&key).await?;
    Ok(())
}
