//! Policy routes: create, replace (`If-Match`), enable, disable, delete, exemptions.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    ApiState,
    auth::Ctx,
    body::{BodySchema, JsonBody, decode},
    path_uuid,
    problem::ApiError,
};
use crate::{
    aggregate::{PolicyBody, PolicyCommand},
    handlers::{ExemptionOutcome, PolicyOutcome},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyAnswer {
    pub policy_id: Uuid,
    pub revision: u64,
    pub changed: bool,
    pub position: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExemptionAnswer {
    pub exemption_id: Uuid,
    pub position: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptionBody {
    resource_id: Uuid,
    reason: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// The answer, with the policy's revision as its `ETag` (for a later `If-Match`).
fn answer(status: StatusCode, o: PolicyOutcome) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", o.revision)).ok();
    let body = PolicyAnswer {
        policy_id: o.policy_id,
        revision: o.revision,
        changed: o.changed,
        position: o.position.token(),
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn exemption_answer(status: StatusCode, o: ExemptionOutcome) -> Response {
    (status, Json(ExemptionAnswer { exemption_id: o.exemption_id, position: o.position.token() }))
        .into_response()
}

/// `If-Match: "<revision>"` (a strong or weak entity tag, or a bare number); `*` is no
/// precondition beyond existence, which every command here checks anyway.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let bad = || ApiError::invalid_field("", "the If-Match header must be a revision such as \"3\"");
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    text.parse().map(Some).map_err(|_| bad())
}

/// Create a policy from an Azure Policy rule; a rule that does not compile is refused (422).
#[utoipa::path(post, path = "/v1/policies", tag = "policies", operation_id = "create_policy",
    request_body(content = Value, description = "PolicyBody", content_type = "application/json"),
    responses((status = 201, body = PolicyAnswer), (status = 400), (status = 401), (status = 413),
        (status = 415), (status = 422, description = "the rule does not compile; every fault by JSON pointer"),
        (status = 429)))]
pub async fn create(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let body: PolicyBody = decode(BodySchema::PolicyBody, body)?;
    let outcome = state.commands.create_policy(&ctx, body).await?;
    Ok(answer(StatusCode::CREATED, outcome))
}

/// Replace a policy's definition; `If-Match: "<revision>"` makes it conditional (412 when stale).
#[utoipa::path(put, path = "/v1/policies/{policy_id}", tag = "policies", operation_id = "update_policy",
    params(("policy_id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "\"<revision>\"")),
    request_body(content = Value, description = "PolicyBody", content_type = "application/json"),
    responses((status = 200, body = PolicyAnswer), (status = 400), (status = 401), (status = 404),
        (status = 412, description = "stale If-Match"), (status = 413), (status = 415), (status = 422), (status = 429)))]
pub async fn update(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    Path(policy_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let policy_id = path_uuid("policy_id", &policy_id)?;
    let expected = if_match(&headers)?;
    let body: PolicyBody = decode(BodySchema::PolicyBody, body)?;
    let outcome = state.commands.update_policy(&ctx, policy_id, expected, body).await?;
    Ok(answer(StatusCode::OK, outcome))
}

async fn change(
    state: ApiState,
    ctx: crate::handlers::RequestContext,
    policy_id: &str,
    headers: &HeaderMap,
    command: fn() -> PolicyCommand,
) -> Result<Response, ApiError> {
    let policy_id = path_uuid("policy_id", policy_id)?;
    let expected = if_match(headers)?;
    let outcome = state.commands.change_policy(&ctx, policy_id, expected, command).await?;
    Ok(answer(StatusCode::OK, outcome))
}

/// Enable a policy (no change when it already is).
#[utoipa::path(post, path = "/v1/policies/{policy_id}/enable", tag = "policies", operation_id = "enable_policy",
    params(("policy_id" = Uuid, Path)),
    responses((status = 200, body = PolicyAnswer), (status = 400), (status = 401), (status = 404), (status = 412), (status = 429)))]
pub async fn enable(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    change(state, ctx, &id, &headers, || PolicyCommand::Enable).await
}

/// Disable a policy: its results leave the current summaries.
#[utoipa::path(post, path = "/v1/policies/{policy_id}/disable", tag = "policies", operation_id = "disable_policy",
    params(("policy_id" = Uuid, Path)),
    responses((status = 200, body = PolicyAnswer), (status = 400), (status = 401), (status = 404), (status = 412), (status = 429)))]
pub async fn disable(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    change(state, ctx, &id, &headers, || PolicyCommand::Disable).await
}

/// Delete a policy (it stays in history).
#[utoipa::path(delete, path = "/v1/policies/{policy_id}", tag = "policies", operation_id = "delete_policy",
    params(("policy_id" = Uuid, Path)),
    responses((status = 200, body = PolicyAnswer), (status = 400), (status = 401), (status = 404), (status = 412), (status = 429)))]
pub async fn delete(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    change(state, ctx, &id, &headers, || PolicyCommand::Delete).await
}

/// Exempt one resource from the policy, until `expires_at` when given.
#[utoipa::path(post, path = "/v1/policies/{policy_id}/exemptions", tag = "policies", operation_id = "grant_exemption",
    params(("policy_id" = Uuid, Path)),
    request_body(content = Value, description = "ExemptionBody", content_type = "application/json"),
    responses((status = 201, body = ExemptionAnswer), (status = 400), (status = 401), (status = 404),
        (status = 409, description = "the resource already has an active exemption"), (status = 413), (status = 415), (status = 429)))]
pub async fn grant_exemption(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    Path(policy_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let policy_id = path_uuid("policy_id", &policy_id)?;
    let body: ExemptionBody = decode(BodySchema::ExemptionBody, body)?;
    let outcome = state
        .commands
        .grant_exemption(&ctx, policy_id, body.resource_id, body.reason, body.expires_at)
        .await?;
    Ok(exemption_answer(StatusCode::CREATED, outcome))
}

/// Revoke an exemption.
#[utoipa::path(delete, path = "/v1/policies/{policy_id}/exemptions/{exemption_id}", tag = "policies",
    operation_id = "revoke_exemption",
    params(("policy_id" = Uuid, Path), ("exemption_id" = Uuid, Path)),
    responses((status = 200, body = ExemptionAnswer), (status = 400), (status = 401), (status = 404), (status = 429)))]
pub async fn revoke_exemption(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    Path((policy_id, exemption_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let policy_id = path_uuid("policy_id", &policy_id)?;
    let exemption_id = path_uuid("exemption_id", &exemption_id)?;
    let outcome = state.commands.revoke_exemption(&ctx, policy_id, exemption_id).await?;
    Ok(exemption_answer(StatusCode::OK, outcome))
}
