//! `POST /v1/resources`, `POST /v1/resources:batch`, `DELETE /v1/resources/{resource_id}`.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    ApiState,
    auth::Ctx,
    body::{BodySchema, JsonBody, child, decode, validate},
    path_uuid,
    problem::{ApiError, FieldError, describe},
};
use crate::{aggregate::InventoryRecord, handlers::ResourceOutcome};

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceAnswer {
    pub resource_id: Uuid,
    pub revision: u64,
    pub changed: bool,
    /// Read-your-writes token: pass it as `X-Cortex-After` to a query.
    pub position: String,
}

impl From<&ResourceOutcome> for ResourceAnswer {
    fn from(o: &ResourceOutcome) -> Self {
        Self {
            resource_id: o.resource_id,
            revision: o.revision,
            changed: o.changed,
            position: o.position.token(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedAnswer {
    pub resource_id: Uuid,
    pub revision: u64,
    pub position: String,
}

/// One item of a batch answer: the outcome, or the problem that stopped this record alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Done { index: usize, resource_id: Uuid, revision: u64, changed: bool },
    Failed { index: usize, error: Value },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub results: Vec<BatchItem>,
    /// The latest position among the records applied (absent when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// Register a resource, or bring it up to date: only what changed is recorded.
#[utoipa::path(post, path = "/v1/resources", tag = "resources", operation_id = "register_resource",
    request_body(content = Value, description = "InventoryRecord", content_type = "application/json"),
    responses(
        (status = 201, description = "new resource (or registered again after a delete)", body = ResourceAnswer),
        (status = 200, description = "updated, or unchanged (`changed: false`)", body = ResourceAnswer),
        (status = 400, description = "invalid record"), (status = 401), (status = 409), (status = 413),
        (status = 415), (status = 429)))]
pub async fn register(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let record: InventoryRecord = decode(BodySchema::InventoryRecord, body)?;
    let outcome = state.commands.register_resource(&ctx, record).await?;
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ResourceAnswer::from(&outcome))))
}

/// Register or update up to 1,000 resources; each record is answered on its own.
#[utoipa::path(post, path = "/v1/resources:batch", tag = "resources", operation_id = "register_resources",
    request_body(content = Value, description = "ResourceBatch", content_type = "application/json"),
    responses((status = 200, body = BatchAnswer), (status = 400), (status = 401), (status = 413),
        (status = 415), (status = 429)))]
pub async fn register_batch(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchAnswer>, ApiError> {
    // The envelope must be right as a whole; items are judged one by one below.
    validate(BodySchema::ResourceBatch, &body)
        .map_err(|errors| ApiError::Invalid { detail: describe(&errors), errors })?;
    let Value::Object(mut body) = body else { unreachable_shape()? };
    let Some(Value::Array(items)) = body.remove("resources") else { unreachable_shape()? };

    let mut results: Vec<(usize, Result<ResourceOutcome, ApiError>)> = Vec::with_capacity(items.len());
    let mut records = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match decode::<InventoryRecord>(BodySchema::InventoryRecord, item) {
            Ok(record) => records.push((index, record)),
            Err(e) => results.push((index, Err(e))),
        }
    }
    let decided = state.commands.register_resources(&ctx, records).await?;
    results.extend(decided.into_iter().map(|(index, r)| (index, r.map_err(ApiError::from))));
    results.sort_by_key(|(index, _)| *index);

    let position = results.iter().filter_map(|(_, r)| r.as_ref().ok().map(|o| o.position)).max();
    let results = results
        .into_iter()
        .map(|(index, result)| match result {
            Ok(o) => BatchItem::Done {
                index,
                resource_id: o.resource_id,
                revision: o.revision,
                changed: o.changed,
            },
            Err(e) => BatchItem::Failed { index, error: item_problem(index, e) },
        })
        .collect();
    Ok(Json(BatchAnswer { results, position: position.map(|p| p.token()) }))
}

/// The item's problem, its field pointers made relative to the whole batch body.
fn item_problem(index: usize, e: ApiError) -> Value {
    let prefix = child(&child("", "resources"), &index.to_string());
    let e = match e {
        ApiError::Invalid { errors, .. } => {
            let errors: Vec<FieldError> = errors
                .into_iter()
                .map(|f| FieldError { pointer: format!("{prefix}{}", f.pointer), detail: f.detail })
                .collect();
            ApiError::Invalid { detail: describe(&errors), errors }
        }
        other => other,
    };
    e.log();
    e.to_problem_json()
}

fn unreachable_shape<T>() -> Result<T, ApiError> {
    Err(ApiError::invalid_field("/resources", "expected an array of records"))
}

/// Delete a resource: it leaves the current read models and stays in history.
#[utoipa::path(delete, path = "/v1/resources/{resource_id}", tag = "resources", operation_id = "delete_resource",
    params(("resource_id" = Uuid, Path)),
    responses((status = 200, body = DeletedAnswer), (status = 400), (status = 401), (status = 404), (status = 429)))]
pub async fn delete(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    axum::extract::Path(resource_id): axum::extract::Path<String>,
) -> Result<Json<DeletedAnswer>, ApiError> {
    let resource_id = path_uuid("resource_id", &resource_id)?;
    let o = state.commands.delete_resource(&ctx, resource_id).await?;
    Ok(Json(DeletedAnswer { resource_id, revision: o.revision, position: o.position.token() }))
}
