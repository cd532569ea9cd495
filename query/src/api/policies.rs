//! `GET /v1/policies`, `GET /v1/policies/{policy_id}`.

use axum::{
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::Response,
};
use cortex_http::{problem::ApiError, tenants::Caller};

use super::{
    QueryState,
    params::{Params, path_uuid},
    respond,
};
use crate::reads::{
    PolicyQuery,
    policies::{PolicyItem, PolicyPage},
};

/// List policies (enabled or not), each with its counts, in pages by `policy_id`.
#[utoipa::path(get, path = "/v1/policies", tag = "queries", operation_id = "list_policies",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "opaque: `next_cursor` of the previous page"),
    ),
    responses((status = 200, body = PolicyPage, headers(("ETag" = String))), (status = 304), (status = 400),
        (status = 401), (status = 429), (status = 503)))]
pub async fn list(
    State(state): State<QueryState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref(), &["limit", "cursor"]);
    let limit = p.limit();
    let after = p.cursor(PolicyQuery::scope(caller.tenant_id));
    p.finish()?;
    Ok(respond(&headers, state.reads.policies(caller.tenant_id, &PolicyQuery { limit, after }).await?))
}

/// One policy with its compliant / non-compliant / exempt counts.
#[utoipa::path(get, path = "/v1/policies/{policy_id}", tag = "queries", operation_id = "get_policy",
    params(("policy_id" = Uuid, Path)),
    responses(
        (status = 200, body = PolicyItem, headers(("ETag" = String, description = "\"<revision>-<compliant>-<non_compliant>-<exempt>\""))),
        (status = 304), (status = 400), (status = 401),
        (status = 404, description = "unknown, deleted, or another tenant's"), (status = 429), (status = 503)))]
pub async fn get(
    State(state): State<QueryState>,
    caller: Caller,
    Path(policy_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let policy_id = path_uuid("policy_id", &policy_id)?;
    Params::parse(raw.as_deref(), &[]).finish()?;
    Ok(respond(&headers, state.reads.policy(caller.tenant_id, policy_id).await?))
}
