//! `GET /v1/compliance/summary`, `GET /v1/compliance/trend`.

use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use chrono::Utc;
use cortex_http::{problem::ApiError, tenants::Caller};

use super::{QueryState, ReadHeaders, params::Params, read_after};
use crate::reads::{
    GroupBy, MAX_TREND_DAYS, SummaryQuery, TrendQuery,
    compliance::{Summary, Trend},
};
use crate::{cache::CacheKey, fresh::Projection};

/// Default span of the trend, in days.
pub const DEFAULT_TREND_DAYS: u32 = 30;

/// The tenant's resources by overall state, optionally grouped.
#[utoipa::path(get, path = "/v1/compliance/summary", tag = "queries", operation_id = "compliance_summary",
    params(("group_by" = Option<String>, Query,
        description = "subscription or resource_type (resources by overall state), or policy (each enabled policy's results)"),
        ("as_of" = Option<String>, Query, description = "RFC 3339, not in the future: the summary as it stood then, by replay of the log (an answer that never changes: `Cache-Control: private, max-age=31536000, immutable`)"),
        ("X-Cortex-After" = Option<String>, Header, description = "read-your-writes: a command's `position`; the answer waits until the read models passed it (or use the `after` parameter)"),),
    responses((status = 200, body = Summary, headers(("ETag" = String))), (status = 304), (status = 400),
        (status = 401), (status = 429), (status = 503)))]
pub async fn summary(
    State(state): State<QueryState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref(), &["group_by", "as_of"]);
    let group_by = p.choice("group_by", &GroupBy::NAMES).and_then(GroupBy::parse);
    let as_of = p.as_of();
    p.finish()?;
    let after = read_after(raw.as_deref(), &headers)?;
    if let Some(at) = as_of {
        // A past answer, by replay: it never changes, so it skips the caches (which the
        // live answers' notices evict) and the client keeps it.
        let summary = crate::audit::as_of::summary_at(state.reads.store(), caller.tenant_id, at, group_by)
            .await
            .map_err(super::as_of_error)?;
        let prepared = crate::reads::Prepared::json(&summary).map_err(ApiError::from)?;
        return Ok(super::respond_immutable(&headers, prepared));
    }
    let query = SummaryQuery { group_by };
    let key = CacheKey::Query { kind: "summary", query: format!("{query:?}") };
    let tenant = caller.tenant_id;
    state
        .answer(tenant, &headers, after, key, &[Projection::Compliance], || {
            state.reads.summary(tenant, &query)
        })
        .await
}

/// The tenant's totals at the end of each of the last `days` days (UTC), today included.
#[utoipa::path(get, path = "/v1/compliance/trend", tag = "queries", operation_id = "compliance_trend",
    params(("days" = Option<u32>, Query, description = "1 to 366, default 30"), ("X-Cortex-After" = Option<String>, Header, description = "read-your-writes: a command's `position`; the answer waits until the read models passed it (or use the `after` parameter)"),),
    responses((status = 200, body = Trend, headers(("ETag" = String))), (status = 304), (status = 400),
        (status = 401), (status = 429), (status = 503)))]
pub async fn trend(
    State(state): State<QueryState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref(), &["days"]);
    let days = p.bounded("days", 1, MAX_TREND_DAYS, DEFAULT_TREND_DAYS);
    p.finish()?;
    let after = read_after(raw.as_deref(), &headers)?;
    let query = TrendQuery { days, until: Utc::now().date_naive() };
    let key = CacheKey::Query { kind: "trend", query: format!("{query:?}") };
    let tenant = caller.tenant_id;
    state
        .answer(tenant, &headers, after, key, &[Projection::Compliance], || state.reads.trend(tenant, &query))
        .await
}
