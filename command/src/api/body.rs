//! Request bodies: JSON only (415 otherwise), at most 1 MiB (413), parsed (400 naming the
//! line and column), validated against the command's schema in `schemas/commands/` (400
//! naming each bad field by JSON pointer; unknown fields refused), then decoded into the
//! command's Rust type.

use std::sync::LazyLock;

use axum::{
    extract::{FromRequest, Request},
    http::header,
};
use jsonschema::{Validator, error::ValidationErrorKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::problem::{ApiError, FieldError, describe};

/// Largest request body accepted.
pub use cortex_http::app::MAX_BODY_BYTES;

/// The command bodies, each with its schema file (also published in `/openapi.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySchema {
    InventoryRecord,
    ResourceBatch,
    PolicyBody,
    ExemptionBody,
    EvaluationBody,
}

/// (name, schema text) of every command body, embedded from `schemas/commands/`.
pub const COMMAND_SCHEMAS: &[(&str, &str)] = &[
    ("InventoryRecord", include_str!("../../../schemas/commands/InventoryRecord.json")),
    ("ResourceBatch", include_str!("../../../schemas/commands/ResourceBatch.json")),
    ("PolicyBody", include_str!("../../../schemas/commands/PolicyBody.json")),
    ("ExemptionBody", include_str!("../../../schemas/commands/ExemptionBody.json")),
    ("EvaluationBody", include_str!("../../../schemas/commands/EvaluationBody.json")),
];

impl BodySchema {
    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        COMMAND_SCHEMAS[self.index()].0
    }
}

/// The schemas are part of the binary and checked by tests, so building them cannot fail at
/// run time unless the files were broken at build time.
static VALIDATORS: LazyLock<Vec<Validator>> = LazyLock::new(|| {
    COMMAND_SCHEMAS
        .iter()
        .map(|(name, text)| {
            let schema: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("schemas/commands/{name}.json is not JSON: {e}"));
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("schemas/commands/{name}.json is not a valid schema: {e}"))
        })
        .collect()
});

/// Forces the schemas to build (at start-up, so a broken schema fails there).
pub fn init_schemas() -> usize {
    VALIDATORS.len()
}

/// Checks `value` against `schema`; every fault, each with the pointer of the bad field.
pub fn validate(schema: BodySchema, value: &Value) -> Result<(), Vec<FieldError>> {
    let errors: Vec<FieldError> = VALIDATORS[schema.index()]
        .iter_errors(value)
        .take(50)
        .flat_map(|e| {
            let at = e.instance_path().to_string();
            match e.kind() {
                // Point at the field itself rather than at the object that holds it.
                ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
                    .iter()
                    .map(|name| FieldError { pointer: child(&at, name), detail: "unknown field".to_owned() })
                    .collect::<Vec<_>>(),
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    vec![FieldError {
                        pointer: child(&at, name),
                        detail: "required field is missing".to_owned(),
                    }]
                }
                _ => vec![FieldError { pointer: at, detail: e.to_string() }],
            }
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// `base` + `/name`, with `name` escaped as RFC 6901 requires.
pub fn child(base: &str, name: &str) -> String {
    format!("{base}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// Validates against `schema`, then decodes into `T`.
pub fn decode<T: DeserializeOwned>(schema: BodySchema, value: Value) -> Result<T, ApiError> {
    validate(schema, &value).map_err(|errors| ApiError::Invalid { detail: describe(&errors), errors })?;
    // The schema and the type agree (tested), so this fails only on what the schema cannot
    // express; serde's message names the field.
    serde_json::from_value(value).map_err(|e| ApiError::invalid_field("", e.to_string()))
}

/// A JSON request body, not yet validated.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("the body is over the limit of {MAX_BODY_BYTES} bytes"))
            } else {
                ApiError::invalid_field("", format!("the body could not be read: {}", rejection.body_text()))
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, naming the line and column of a syntax error.
pub fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Invalid {
        detail: format!("the body is not valid JSON: {e}"),
        errors: vec![FieldError { pointer: String::new(), detail: format!("not valid JSON: {e}") }],
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_command_schema_builds() {
        assert_eq!(init_schemas(), COMMAND_SCHEMAS.len());
    }

    #[test]
    fn unknown_and_missing_fields_are_named_by_their_own_pointer() {
        let errors =
            validate(BodySchema::InventoryRecord, &json!({"id": "x", "name": "n", "typo": 1})).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/typo"), "{pointers:?}");
        assert!(pointers.contains(&"/type"), "{pointers:?}");
        assert!(pointers.contains(&"/location"), "{pointers:?}");
    }

    #[test]
    fn a_nested_bad_value_is_named_by_its_full_pointer() {
        let body = json!({"id": "x", "name": "n", "type": "t", "location": "l", "tags": {"a/b": 3}});
        let errors = validate(BodySchema::InventoryRecord, &body).unwrap_err();
        assert_eq!(errors[0].pointer, "/tags/a~1b");
    }
}
