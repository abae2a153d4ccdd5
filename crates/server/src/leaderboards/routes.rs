//! `/v1/leaderboards/{board}...`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_kit::Standing;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{BoardError, BoardService, Mode, ResetPeriod, Which};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<BoardService>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(submit_score))
        .routes(routes!(top))
        .routes(routes!(page, reset, configure))
        .routes(routes!(member, remove))
        .routes(routes!(around))
}

impl From<BoardError> for ApiError {
    fn from(error: BoardError) -> Self {
        match error {
            BoardError::Validation(errors) => errors.into(),
            BoardError::ReadOnly => ApiError::Forbidden("the actions board is read-only".into()),
            BoardError::NotFound => ApiError::NotFound("no such member on this board".into()),
            BoardError::QuotaExceeded { limit } => ApiError::Conflict(format!(
                "this account has {limit} boards, the most LEADERBOARDS_MAX_PER_ACCOUNT allows; use an existing board"
            )),
            BoardError::Redis(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// For boards with a reset period: `current` (default) or `previous`.
    #[param(inline)]
    pub period: Option<Which>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StandingBody {
    /// 1-based; ties are ordered by member name, descending.
    pub rank: u64,
    pub member: String,
    pub score: f64,
}

impl From<Standing> for StandingBody {
    fn from(s: Standing) -> Self {
        Self { rank: s.rank, member: s.member, score: s.score }
    }
}

fn bodies(standings: Vec<Standing>) -> Vec<StandingBody> {
    standings.into_iter().map(Into::into).collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"member": "ada", "score": 1250, "mode": "max"}))]
pub struct ScoreRequest {
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    pub member: String,
    #[schema(minimum = -1000000000000000.0, maximum = 1000000000000000.0)]
    pub score: f64,
    /// `set` (default), `increment` or `max`.
    pub mode: Option<Mode>,
}

/// Record a score.
#[utoipa::path(post, path = "/v1/leaderboards/{board}/scores", tag = "leaderboards", request_body = ScoreRequest,
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]")),
    responses((status = 200, body = StandingBody), (status = 403, description = "The actions board is read-only", body = Problem, content_type = "application/problem+json"), (status = 409, description = "A new board past the account's quota (LEADERBOARDS_MAX_PER_ACCOUNT)", body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn submit_score(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath(board): ApiPath<String>,
    ApiJson(body): ApiJson<ScoreRequest>,
) -> Result<ApiJson<StandingBody>, ApiError> {
    let mode = body.mode.unwrap_or_default().into();
    let standing = boards.submit(&principal, &board, &body.member, body.score, mode).await?;
    Ok(ApiJson(standing.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// 1-100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// For boards with a reset period: `current` (default) or `previous`.
    #[param(inline)]
    pub period: Option<Which>,
}

/// The top of a board.
#[utoipa::path(get, path = "/v1/leaderboards/{board}/top", tag = "leaderboards",
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]"), TopQuery),
    responses((status = 200, body = StandingsBody)))]
async fn top(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath(board): ApiPath<String>,
    ApiQuery(query): ApiQuery<TopQuery>,
) -> Result<ApiJson<StandingsBody>, ApiError> {
    let which = query.period.unwrap_or_default();
    let top = boards.top(&principal, &board, which, query.limit.unwrap_or(10)).await?;
    Ok(ApiJson(StandingsBody { entries: bodies(top) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based, default 1.
    #[param(minimum = 1, maximum = 4294967295u64)]
    pub page: Option<u64>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
    /// For boards with a reset period: `current` (default) or `previous`.
    #[param(inline)]
    pub period: Option<Which>,
}

/// Standings, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct StandingsBody {
    pub entries: Vec<StandingBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageBody {
    pub entries: Vec<StandingBody>,
    pub page: u64,
    pub per_page: u64,
    /// Members on the board.
    pub total: u64,
}

/// One page of a board.
#[utoipa::path(get, path = "/v1/leaderboards/{board}", tag = "leaderboards",
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]"), PageQuery),
    responses((status = 200, body = PageBody)))]
async fn page(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath(board): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<ApiJson<PageBody>, ApiError> {
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(20));
    let which = query.period.unwrap_or_default();
    let (entries, total) = boards.page(&principal, &board, which, page, per_page).await?;
    Ok(ApiJson(PageBody { entries: bodies(entries), page, per_page, total }))
}

/// Empty a board.
#[utoipa::path(delete, path = "/v1/leaderboards/{board}", tag = "leaderboards",
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]")),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn reset(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath(board): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    boards.reset(&principal, &board).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reset": "weekly"}))]
pub struct BoardSettings {
    /// `never` (default), `daily` or `weekly` (UTC; weeks start on Monday).
    /// Each period starts empty; the previous one stays readable with
    /// `?period=previous` until the current one ends.
    pub reset: ResetPeriod,
}

/// Configure a board's reset period.
#[utoipa::path(put, path = "/v1/leaderboards/{board}", tag = "leaderboards", request_body = BoardSettings,
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]")),
    responses((status = 200, body = BoardSettings), (status = 409, description = "A new board past the account's quota (LEADERBOARDS_MAX_PER_ACCOUNT)", body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn configure(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath(board): ApiPath<String>,
    ApiJson(body): ApiJson<BoardSettings>,
) -> Result<ApiJson<BoardSettings>, ApiError> {
    let period = body.reset;
    boards.set_period(&principal, &board, period).await?;
    Ok(ApiJson(BoardSettings { reset: period }))
}

/// One member's standing.
#[utoipa::path(get, path = "/v1/leaderboards/{board}/members/{member}", tag = "leaderboards",
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]"), ("member" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$", description = "A member of the board: 1-128 printable characters"), PeriodQuery),
    responses((status = 200, body = StandingBody), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn member(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath((board, member)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> Result<ApiJson<StandingBody>, ApiError> {
    let which = query.period.unwrap_or_default();
    Ok(ApiJson(boards.member(&principal, &board, which, &member).await?.into()))
}

/// Remove a member.
#[utoipa::path(delete, path = "/v1/leaderboards/{board}/members/{member}", tag = "leaderboards",
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]"), ("member" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$", description = "A member of the board: 1-128 printable characters")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn remove(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath((board, member)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    boards.remove(&principal, &board, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AroundQuery {
    /// Neighbours on each side, 0-50, default 5.
    #[param(minimum = 0, maximum = 50)]
    pub radius: Option<u64>,
    /// For boards with a reset period: `current` (default) or `previous`.
    #[param(inline)]
    pub period: Option<Which>,
}

/// A member with its neighbours above and below.
#[utoipa::path(get, path = "/v1/leaderboards/{board}/members/{member}/around", tag = "leaderboards",
    security(("bearer" = []), ("api_key" = [])), params(("board" = String, Path, pattern = r"^[a-z0-9_:-]{1,64}$", description = "A board of the caller's account: 1-64 of [a-z0-9_:-]"), ("member" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$", description = "A member of the board: 1-128 printable characters"), AroundQuery),
    responses((status = 200, body = StandingsBody), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn around(
    State(boards): State<Arc<BoardService>>,
    principal: Principal,
    ApiPath((board, member)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<AroundQuery>,
) -> Result<ApiJson<StandingsBody>, ApiError> {
    let radius = query.radius.unwrap_or(5);
    let which = query.period.unwrap_or_default();
    let around = boards.around(&principal, &board, which, &member, radius).await?;
    Ok(ApiJson(StandingsBody { entries: bodies(around) }))
}
