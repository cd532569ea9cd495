//! `POST /v1/evaluations`: an external scanner's result.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    ApiState,
    auth::Ctx,
    body::{BodySchema, JsonBody, decode},
    problem::ApiError,
};
use crate::aggregate::EvaluationBody;

#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationAnswer {
    /// `false` when the scanner's previous result for this policy was the same.
    pub changed: bool,
    pub position: String,
}

/// Record an external scanner's verdict on one resource under one policy.
#[utoipa::path(post, path = "/v1/evaluations", tag = "compliance", operation_id = "record_evaluation",
    request_body(content = Value, description = "EvaluationBody", content_type = "application/json"),
    responses((status = 201, description = "recorded", body = EvaluationAnswer),
        (status = 200, description = "the same result as the scanner's last one: nothing recorded", body = EvaluationAnswer),
        (status = 400), (status = 401), (status = 404, description = "unknown resource or policy"),
        (status = 413), (status = 415), (status = 429)))]
pub async fn record(
    State(state): State<ApiState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let body: EvaluationBody = decode(BodySchema::EvaluationBody, body)?;
    let outcome = state.commands.record_evaluation(&ctx, body).await?;
    let status = if outcome.changed { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(EvaluationAnswer { changed: outcome.changed, position: outcome.position.token() })))
}
