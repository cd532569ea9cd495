//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cortex_rules::{
    CompileErrors, Evaluation, Policy, PolicyDefinitionInput, Resource, ResourceContext, ResourceGroupInfo,
};
use serde_json::{Value, json};

pub const SUB: &str = "00000000-0000-0000-0000-0000000000a1";

/// An inventory record of `resource_type` named `name` in resource group `rg-app`, with the
/// given extra top-level fields (`location`, `tags`, `properties`, …).
pub fn resource(resource_type: &str, name: &str, fields: Value) -> Resource {
    let mut record = json!({
        "id": format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/{resource_type}/{name}"),
        "name": name,
        "type": resource_type,
        "location": "eastus",
    });
    if let (Some(target), Some(extra)) = (record.as_object_mut(), fields.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(record).unwrap_or_else(|e| panic!("test resource: {e}"))
}

pub fn storage(fields: Value) -> Resource {
    resource("Microsoft.Storage/storageAccounts", "st01", fields)
}

pub fn vm(fields: Value) -> Resource {
    resource("Microsoft.Compute/virtualMachines", "vm01", fields)
}

pub fn compile(rule: Value) -> Result<cortex_rules::CompiledPolicy, CompileErrors> {
    Policy::compile(&PolicyDefinitionInput { rule, ..PolicyDefinitionInput::default() })
}

/// Compiles `rule` (effect audit unless the rule says otherwise) and evaluates it.
pub fn evaluate(rule: Value, resource: &Resource) -> Evaluation {
    evaluate_in(rule, resource, None)
}

pub fn evaluate_in(rule: Value, resource: &Resource, group: Option<&ResourceGroupInfo>) -> Evaluation {
    let compiled = compile(rule).unwrap_or_else(|e| panic!("rule should compile: {e}"));
    compiled.evaluate(&ResourceContext::new(resource, group, None))
}

/// A rule with one `if` condition and effect audit.
pub fn audit_if(condition: Value) -> Value {
    json!({"if": condition, "then": {"effect": "audit"}})
}

/// Whether `condition` holds for `resource` (non-compliant means it held).
pub fn holds(condition: Value, resource: &Resource) -> bool {
    let evaluation = evaluate(audit_if(condition.clone()), resource);
    match evaluation.state {
        cortex_rules::ComplianceState::NonCompliant => true,
        cortex_rules::ComplianceState::Compliant => false,
        other => panic!("{condition} on the resource gave {other:?}: {:?}", evaluation.reason),
    }
}
