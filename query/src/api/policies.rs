//! `GET /v1/policies`, `GET /v1/policies/{policy_id}`.

use axum::{
    extract::{Path, RawQuery, State},
    response::Response,
};
use cortex_http::{problem::ApiError, tenants::Caller};

use super::{
    QueryState, ReadHeaders,
    params::{Params, path_uuid},
    read_after,
};
use crate::reads::{
    PolicyQuery,
    policies::{PolicyItem, PolicyPage},
};
use crate::{
    cache::CacheKey,
    fresh::{Entity, Projection},
};

/// List policies (enabled or not), each with its counts, in pages by `policy_id`.
#[utoipa::path(get, path = "/v1/policies", tag = "queries", operation_id = "list_policies",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "opaque: `next_cursor` of the previous page"),
        ("X-Cortex-After" = Option<String>, Header, description = "read-your-writes: a command's `position`; the answer waits until the read models passed it (or use the `after` parameter)"),
    ),
    responses((status = 200, body = PolicyPage, headers(("ETag" = String))), (status = 304), (status = 400),
        (status = 401), (status = 429), (status = 503)))]
pub async fn list(
    State(state): State<QueryState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref(), &["limit", "cursor"]);
    let limit = p.limit();
    let after = p.cursor(PolicyQuery::scope(caller.tenant_id));
    p.finish()?;
    let position = read_after(raw.as_deref(), &headers)?;
    let query = PolicyQuery { limit, after };
    let key = CacheKey::Query { kind: "policies", query: format!("{query:?}") };
    let tenant = caller.tenant_id;
    state
        .answer(tenant, &headers, position, key, &[Projection::Compliance], || {
            state.reads.policies(tenant, &query)
        })
        .await
}

/// One policy with its compliant / non-compliant / exempt counts.
#[utoipa::path(get, path = "/v1/policies/{policy_id}", tag = "queries", operation_id = "get_policy",
    params(("policy_id" = Uuid, Path), ("X-Cortex-After" = Option<String>, Header, description = "read-your-writes: a command's `position`; the answer waits until the read models passed it (or use the `after` parameter)"),),
    responses(
        (status = 200, body = PolicyItem, headers(("ETag" = String, description = "\"<revision>-<compliant>-<non_compliant>-<exempt>\""))),
        (status = 304), (status = 400), (status = 401),
        (status = 404, description = "unknown, deleted, or another tenant's"), (status = 429), (status = 503)))]
pub async fn get(
    State(state): State<QueryState>,
    caller: Caller,
    Path(policy_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let policy_id = path_uuid("policy_id", &policy_id)?;
    Params::parse(raw.as_deref(), &[]).finish()?;
    let after = read_after(raw.as_deref(), &headers)?;
    let key = CacheKey::Entity(Entity::Policy, policy_id);
    let tenant = caller.tenant_id;
    state
        .answer(tenant, &headers, after, key, &[Projection::Compliance], || {
            state.reads.policy(tenant, policy_id)
        })
        .await
}
