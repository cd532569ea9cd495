//! `/openapi.json`: OpenAPI 3.1, generated from the routes' `#[utoipa::path]` attributes (so a
//! route cannot exist undocumented), with the request bodies replaced by the very schema
//! files the API validates against (`schemas/commands/`), published as components.

use serde_json::{Map, Value, json};

use super::body::COMMAND_SCHEMAS;

/// The finished document of the command routes alone.
pub fn document(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = cortex_http::app::openapi_document(api);
    add_request_schemas(&mut doc);
    doc
}

/// Publishes the command body schemas as components and points each command's request body
/// at its own; for a document that may describe other routes too.
pub fn add_request_schemas(doc: &mut Value) {
    let mut schemas = Map::new();
    for (name, text) in COMMAND_SCHEMAS {
        let Ok(Value::Object(mut schema)) = serde_json::from_str::<Value>(text) else { continue };
        // Inside an OpenAPI document a schema is addressed by its component path.
        schema.remove("$schema");
        schema.remove("$id");
        if *name == "ResourceBatch" {
            schema["properties"]["resources"]["items"] =
                json!({"$ref": "#/components/schemas/InventoryRecord"});
        }
        schemas.insert((*name).to_owned(), Value::Object(schema));
    }
    // Beside the answer types utoipa generated.
    match doc["components"]["schemas"].as_object_mut() {
        Some(generated) => generated.extend(schemas),
        None => doc["components"]["schemas"] = Value::Object(schemas),
    }
    link_request_bodies(doc);
}

/// Each route names its body schema in the request body's description; point the body at
/// that component.
fn link_request_bodies(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in item.values_mut() {
            let Some(body) = operation.get_mut("requestBody") else { continue };
            let Some(name) = body.get("description").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            if COMMAND_SCHEMAS.iter().any(|(n, _)| *n == name) {
                body["content"] = json!({
                    "application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}
                });
                body["required"] = json!(true);
            }
        }
    }
}
