//! `GET /v1/resources`, `GET /v1/resources/{resource_id}`, `GET /v1/resources/{resource_id}/history`.

use axum::{
    extract::{Path, RawQuery, State},
    response::Response,
};
use cortex_http::{problem::ApiError, tenants::Caller};
use uuid::Uuid;

use super::{
    QueryState, ReadHeaders,
    params::{Params, path_uuid},
    read_after, respond,
};
use crate::reads::{
    ComplianceFilter, HistoryQuery, ResourceFilter, ResourceQuery, TagFilter,
    history::HistoryPage,
    resources::{ResourceDetail, ResourcePage},
};
use crate::{
    cache::CacheKey,
    fresh::{Entity, Projection},
};

/// Most `tag` conditions, and most words in `q`, in one list query.
pub const MAX_TAGS: usize = 20;
pub const MAX_WORDS: usize = 16;

const LIST_PARAMS: [&str; 9] =
    ["subscription_id", "resource_group", "type", "location", "tag", "q", "compliance", "limit", "cursor"];

/// The query of `GET /v1/resources`, checked.
pub fn list_query(tenant_id: Uuid, raw: Option<&str>) -> Result<ResourceQuery, ApiError> {
    let mut p = Params::parse(raw, &LIST_PARAMS);
    let mut filter = ResourceFilter {
        subscription_id: p.single("subscription_id"),
        resource_group: p.single("resource_group"),
        resource_type: p.single("type"),
        location: p.single("location"),
        ..ResourceFilter::default()
    };
    let tags = p.repeated("tag");
    if tags.len() > MAX_TAGS {
        p.fault("/tag", format!("at most {MAX_TAGS} tag conditions"));
    }
    for (pointer, text) in tags {
        // The first ':' ends the key: values may hold ':' (URLs), keys may not here.
        match text.split_once(':') {
            Some(("", _)) => p.fault(&pointer, "needs a tag name before ':' (tag=name:value or tag=name)"),
            Some((key, value)) => {
                filter.tags.push(TagFilter::Equals { key: key.into(), value: value.into() })
            }
            None => filter.tags.push(TagFilter::Exists { key: text }),
        }
    }
    if let Some(q) = p.single("q") {
        let words = ResourceFilter::words_of(&q);
        if words.is_empty() {
            p.fault("/q", "has no letters or digits to search for");
        } else if words.len() > MAX_WORDS {
            p.fault("/q", format!("has more than {MAX_WORDS} words"));
        }
        filter.words = words;
    }
    filter.compliance = p.choice("compliance", &ComplianceFilter::NAMES).and_then(ComplianceFilter::parse);
    let filter = filter.normalised();
    let limit = p.limit();
    let after = p.cursor::<Uuid>(filter.scope(tenant_id));
    p.finish()?;
    Ok(ResourceQuery { filter, limit, after })
}

/// List resources, filtered, in pages (keyset on `resource_id`: stable under concurrent writes).
#[utoipa::path(get, path = "/v1/resources", tag = "queries", operation_id = "list_resources",
    params(
        ("subscription_id" = Option<String>, Query, description = "case-insensitive"),
        ("resource_group" = Option<String>, Query, description = "case-insensitive"),
        ("type" = Option<String>, Query, description = "resource type, case-insensitive"),
        ("location" = Option<String>, Query, description = "case- and space-insensitive (`West Europe` = `westeurope`)"),
        ("tag" = Option<Vec<String>>, Query, description = "repeatable, all must hold: `name:value` (exact) or `name` (the tag exists)"),
        ("q" = Option<String>, Query, description = "full-text on the name: every word must begin a word of the name"),
        ("compliance" = Option<String>, Query, description = "overall state: compliant, non_compliant or exempt"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "opaque: `next_cursor` of the previous page, with the same filters"),
        ("X-Cortex-After" = Option<String>, Header, description = "read-your-writes: a command's `position`; the answer waits until the read models passed it (or use the `after` parameter)"),
    ),
    responses(
        (status = 200, body = ResourcePage, headers(("ETag" = String))),
        (status = 304, description = "`If-None-Match` names the current ETag"),
        (status = 400, description = "a bad parameter, named by pointer (`/limit`, `/tag/1`)"),
        (status = 401), (status = 429), (status = 503, description = "the database is unreachable; see Retry-After")))]
pub async fn list(
    State(state): State<QueryState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let query = list_query(caller.tenant_id, raw.as_deref())?;
    let after = read_after(raw.as_deref(), &headers)?;
    let key = CacheKey::Query { kind: "resources", query: format!("{query:?}") };
    let tenant = caller.tenant_id;
    state
        .answer(tenant, &headers, after, key, &Projection::ALL, || state.reads.resources(tenant, &query))
        .await
}

/// One resource with its latest result per enabled policy.
#[utoipa::path(get, path = "/v1/resources/{resource_id}", tag = "queries", operation_id = "get_resource",
    params(("resource_id" = Uuid, Path), ("X-Cortex-After" = Option<String>, Header, description = "read-your-writes: a command's `position`; the answer waits until the read models passed it (or use the `after` parameter)"),
        ("as_of" = Option<String>, Query, description = "RFC 3339, not in the future: the resource as it stood then, by replay (an answer that never changes: `Cache-Control: private, max-age=31536000, immutable`); 404 before it existed, and after its deletion as a live GET answers")),
    responses(
        (status = 200, body = ResourceDetail, headers(("ETag" = String, description = "\"<revision>-<compliance digest>\""))),
        (status = 304), (status = 400), (status = 401),
        (status = 404, description = "unknown, deleted, or another tenant's"), (status = 429), (status = 503)))]
pub async fn get(
    State(state): State<QueryState>,
    caller: Caller,
    Path(resource_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let resource_id = path_uuid("resource_id", &resource_id)?;
    let mut p = Params::parse(raw.as_deref(), &["as_of"]);
    let as_of = p.as_of();
    p.finish()?;
    let after = read_after(raw.as_deref(), &headers)?;
    let tenant = caller.tenant_id;
    if let Some(at) = as_of {
        use crate::audit::as_of::{Cut, ResourceAt, resource_at};
        let found = resource_at(state.reads.store(), Some(tenant), resource_id, Cut::At(at)).await;
        return match found.map_err(super::as_of_error)? {
            ResourceAt::Found(detail) => {
                Ok(super::respond_immutable(&headers, crate::reads::Prepared::json(&*detail)?))
            }
            ResourceAt::NotYet => Err(ApiError::NotFound { what: "resource (at that time)" }),
            ResourceAt::Deleted => Err(ApiError::NotFound { what: "resource" }),
        };
    }
    let key = CacheKey::Entity(Entity::Resource, resource_id);
    state
        .answer(tenant, &headers, after, key, &Projection::ALL, || state.reads.resource(tenant, resource_id))
        .await
}

/// The resource's events, oldest first, from the event store: who, when, what changed.
#[utoipa::path(get, path = "/v1/resources/{resource_id}/history", tag = "queries", operation_id = "resource_history",
    params(
        ("resource_id" = Uuid, Path),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "opaque: `next_cursor` of the previous page"),
    ),
    responses((status = 200, body = HistoryPage, headers(("ETag" = String))), (status = 304), (status = 400),
        (status = 401), (status = 404, description = "no such resource stream, or another tenant's"), (status = 429), (status = 503)))]
pub async fn history(
    State(state): State<QueryState>,
    caller: Caller,
    Path(resource_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: ReadHeaders,
) -> Result<Response, ApiError> {
    let resource_id = path_uuid("resource_id", &resource_id)?;
    let mut p = Params::parse(raw.as_deref(), &["limit", "cursor"]);
    let limit = p.limit();
    let from = p.cursor::<u64>(HistoryQuery::scope(caller.tenant_id, resource_id)).unwrap_or(0);
    p.finish()?;
    // Checked, and needs no wait: the event store holds an event once its command answered.
    read_after(raw.as_deref(), &headers)?;
    let query = HistoryQuery { resource_id, limit, from };
    Ok(respond(&headers, state.reads.history(caller.tenant_id, &query).await?))
}
