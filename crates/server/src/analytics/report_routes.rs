//! `/v1/analytics/...`: the usage reports. `usage/daily` serves any caller
//! its own account; the others are for admins. Every report answers with
//! `X-Cache: hit` or `miss`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use switchyard_kit::CacheStatus;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::report_cache::Window;
use super::reports::{ActiveUsers, ReportError, Reports, TopClients, TopRoutes, TopUsers, UniqueVisitors, UsageDaily};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiQuery, CurrentAdmin, Problem};

/// Says whether a report came from the cache.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Reports>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(usage_daily))
        .routes(routes!(top_clients))
        .routes(routes!(top_routes))
        .routes(routes!(active_users))
        .routes(routes!(unique_visitors))
        .routes(routes!(top_users))
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::Validation(errors) => errors.into(),
            ReportError::NotFound => ApiError::NotFound("no such client in this account".into()),
            ReportError::Redis(e) => e.into(),
            ReportError::Database(e) => e.into(),
        }
    }
}

/// A report as JSON, with `X-Cache`.
struct Cached<T>(T, CacheStatus);

impl<T: Serialize> IntoResponse for Cached<T> {
    fn into_response(self) -> Response {
        let status = match self.1 {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
        };
        ([(X_CACHE, status)], ApiJson(self.0)).into_response()
    }
}

impl<T> From<(T, CacheStatus)> for Cached<T> {
    fn from((report, status): (T, CacheStatus)) -> Self {
        Cached(report, status)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// One API client of the caller's account (an admin may name any);
    /// all of the account's requests when absent.
    pub client_id: Option<Uuid>,
    /// First UTC day, `YYYY-MM-DD`.
    pub from: NaiveDate,
    /// Last UTC day, `YYYY-MM-DD`: not before `from`, at most 365 days after.
    pub to: NaiveDate,
}

/// The account's requests, errors and latency per day.
#[utoipa::path(get, path = "/v1/analytics/usage/daily", tag = "analytics",
    security(("bearer" = []), ("api_key" = [])), params(UsageQuery),
    responses((status = 200, body = UsageDaily, headers(("X-Cache" = String, description = "`hit` or `miss`: whether the report came from the cache"))),
        (status = 404, description = "No such client in the caller's account", body = Problem, content_type = "application/problem+json")))]
async fn usage_daily(
    State(reports): State<Arc<Reports>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Cached<UsageDaily>, ApiError> {
    Ok(reports.usage_daily(&principal, query.client_id, query.from, query.to).await?.into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// First UTC day, `YYYY-MM-DD`.
    pub from: NaiveDate,
    /// Last UTC day, `YYYY-MM-DD`: not before `from`, at most 365 days after.
    pub to: NaiveDate,
    /// 1-100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The API clients with the most requests (admins).
#[utoipa::path(get, path = "/v1/analytics/top-clients", tag = "analytics", security(("bearer" = [])), params(TopQuery),
    responses((status = 200, body = TopClients, headers(("X-Cache" = String, description = "`hit` or `miss`: whether the report came from the cache"))),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json")))]
async fn top_clients(
    State(reports): State<Arc<Reports>>,
    _admin: CurrentAdmin,
    ApiQuery(query): ApiQuery<TopQuery>,
) -> Result<Cached<TopClients>, ApiError> {
    Ok(reports.top_clients(query.from, query.to, query.limit.unwrap_or(10)).await?.into())
}

/// The routes with the most requests (admins).
#[utoipa::path(get, path = "/v1/analytics/top-routes", tag = "analytics", security(("bearer" = [])), params(TopQuery),
    responses((status = 200, body = TopRoutes, headers(("X-Cache" = String, description = "`hit` or `miss`: whether the report came from the cache"))),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json")))]
async fn top_routes(
    State(reports): State<Arc<Reports>>,
    _admin: CurrentAdmin,
    ApiQuery(query): ApiQuery<TopQuery>,
) -> Result<Cached<TopRoutes>, ApiError> {
    Ok(reports.top_routes(query.from, query.to, query.limit.unwrap_or(10)).await?.into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// `day` (today), `week` (the last 7 days) or `month` (the last 30).
    #[param(inline)]
    pub window: Window,
}

/// Distinct accounts with requests in the window (admins).
#[utoipa::path(get, path = "/v1/analytics/active-users", tag = "analytics", security(("bearer" = [])), params(WindowQuery),
    responses((status = 200, body = ActiveUsers, headers(("X-Cache" = String, description = "`hit` or `miss`: whether the report came from the cache"))),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json")))]
async fn active_users(
    State(reports): State<Arc<Reports>>,
    _admin: CurrentAdmin,
    ApiQuery(query): ApiQuery<WindowQuery>,
) -> Result<Cached<ActiveUsers>, ApiError> {
    Ok(reports.active_users(query.window).await?.into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateQuery {
    /// A UTC day, `YYYY-MM-DD`: today or one of the 31 days before it.
    pub date: NaiveDate,
}

/// Distinct client addresses on a day (admins).
#[utoipa::path(get, path = "/v1/analytics/unique-visitors", tag = "analytics", security(("bearer" = [])), params(DateQuery),
    responses((status = 200, body = UniqueVisitors, headers(("X-Cache" = String, description = "`hit` or `miss`: whether the report came from the cache"))),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json")))]
async fn unique_visitors(
    State(reports): State<Arc<Reports>>,
    _admin: CurrentAdmin,
    ApiQuery(query): ApiQuery<DateQuery>,
) -> Result<Cached<UniqueVisitors>, ApiError> {
    Ok(reports.unique_visitors(query.date).await?.into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopUsersQuery {
    /// A UTC day, `YYYY-MM-DD`: today or one of the 31 days before it.
    pub date: NaiveDate,
    /// 1-100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The accounts with the most requests on a day (admins).
#[utoipa::path(get, path = "/v1/analytics/top-users", tag = "analytics", security(("bearer" = [])), params(TopUsersQuery),
    responses((status = 200, body = TopUsers, headers(("X-Cache" = String, description = "`hit` or `miss`: whether the report came from the cache"))),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json")))]
async fn top_users(
    State(reports): State<Arc<Reports>>,
    _admin: CurrentAdmin,
    ApiQuery(query): ApiQuery<TopUsersQuery>,
) -> Result<Cached<TopUsers>, ApiError> {
    Ok(reports.top_users(query.date, query.limit.unwrap_or(10)).await?.into())
}
