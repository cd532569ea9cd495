//! The pure part of `cortex policy check POLICY.json RESOURCE.json [--params VALUES.json]
//! [--mode all|indexed] [--rg RG.json] [--json]`: the binary reads and parses the files, this
//! module compiles and evaluates, and renders the outcome for people or scripts.
//!
//! POLICY.json may be an Azure policy definition as Azure publishes it
//! (`{"properties": {"policyRule", "parameters", "mode"}}`), the same without `properties`,
//! or a bare `policyRule` (`{"if", "then"}`). VALUES.json maps parameter names to values;
//! Azure's assignment form `{"name": {"value": …}}` is accepted too. RG.json is the resource
//! group (`name`, `location`, `tags`; a full inventory record also works).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::effect::Effect;
use crate::error::CompileErrors;
use crate::policy::{Mode, Policy, PolicyDefinitionInput};
use crate::reason::{ComplianceState, Reason};
use crate::resource::{Resource, ResourceContext, ResourceGroupInfo};

/// What `cortex policy check` reports for a rule that compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    pub state: ComplianceState,
    pub effect: Effect,
    pub reason: Option<Reason>,
}

/// Why `cortex policy check` could not evaluate. Only [`CheckError::Compile`] means the
/// policy itself is wrong (exit 2); the others are about the input files.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Compile(CompileErrors),
    #[error(
        "the policy file is neither an azure policy definition, its properties, nor a policyRule with 'if' and 'then'"
    )]
    UnrecognisedPolicy,
    #[error("the resource is not an inventory record: {0}")]
    InvalidResource(String),
    #[error("the resource group is not valid: {0}")]
    InvalidResourceGroup(String),
    #[error("the parameter values must be a json object of parameter names to values")]
    InvalidParams,
}

/// Compiles `policy` (with `params` and an optional `mode` override) and evaluates it
/// against `resource`, whose resource group is `resource_group` (or unregistered).
pub fn check(
    policy: &Value,
    resource: &Value,
    params: Option<&Value>,
    mode: Option<Mode>,
    resource_group: Option<&Value>,
) -> Result<CheckOutcome, CheckError> {
    let mut input = definition_input(policy)?;
    if let Some(mode) = mode {
        input.mode = Some(mode.to_string());
    }
    if let Some(params) = params {
        input.parameter_values = parameter_values(params, &input.parameters)?;
    }
    let compiled = Policy::compile(&input).map_err(CheckError::Compile)?;
    let resource: Resource =
        serde_json::from_value(resource.clone()).map_err(|e| CheckError::InvalidResource(e.to_string()))?;
    let group = resource_group.map(group_info).transpose()?;
    let ctx = ResourceContext::new(&resource, group.as_ref(), None);
    let evaluation = compiled.evaluate(&ctx);
    Ok(CheckOutcome { state: evaluation.state, effect: evaluation.effect, reason: evaluation.reason })
}

/// Reads any of the three accepted policy file shapes.
pub fn definition_input(policy: &Value) -> Result<PolicyDefinitionInput, CheckError> {
    let object = policy.as_object().ok_or(CheckError::UnrecognisedPolicy)?;
    let get = |map: &Map<String, Value>, key: &str| {
        map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
    };
    let definition = match get(object, "properties") {
        Some(Value::Object(props)) if get(&props, "policyRule").is_some() => props,
        _ => object.clone(),
    };
    if let Some(rule) = get(&definition, "policyRule") {
        return Ok(PolicyDefinitionInput {
            rule,
            parameters: get(&definition, "parameters").unwrap_or(Value::Null),
            parameter_values: Map::new(),
            mode: get(&definition, "mode").and_then(|m| m.as_str().map(str::to_owned)),
        });
    }
    if get(&definition, "if").is_some() || get(&definition, "then").is_some() {
        return Ok(PolicyDefinitionInput { rule: policy.clone(), ..PolicyDefinitionInput::default() });
    }
    Err(CheckError::UnrecognisedPolicy)
}

/// Plain values, or Azure's `{"value": …}` wrapper (not unwrapped for object parameters,
/// whose value may legitimately be such an object).
fn parameter_values(params: &Value, definitions: &Value) -> Result<Map<String, Value>, CheckError> {
    let map = params.as_object().ok_or(CheckError::InvalidParams)?;
    let is_object_param = |name: &str| {
        definitions
            .as_object()
            .and_then(|d| d.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, def)| def.get("type").and_then(Value::as_str))
            .is_some_and(|t| t.eq_ignore_ascii_case("object"))
    };
    Ok(map
        .iter()
        .map(|(name, value)| {
            let unwrapped = match value.as_object() {
                Some(wrapper) if wrapper.len() == 1 && !is_object_param(name) => {
                    wrapper.get("value").cloned().unwrap_or_else(|| value.clone())
                }
                _ => value.clone(),
            };
            (name.clone(), unwrapped)
        })
        .collect())
}

fn group_info(value: &Value) -> Result<ResourceGroupInfo, CheckError> {
    let invalid = |m: &str| CheckError::InvalidResourceGroup(m.to_owned());
    let object = value.as_object().ok_or_else(|| invalid("expected a json object"))?;
    let name =
        object.get("name").and_then(Value::as_str).ok_or_else(|| invalid("'name' must be a string"))?;
    let location = match object.get("location") {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) => Some(l.clone()),
        Some(_) => return Err(invalid("'location' must be a string")),
    };
    let mut tags = BTreeMap::new();
    match object.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = v.as_str().ok_or_else(|| invalid("tag values must be strings"))?;
                tags.insert(k.clone(), v.to_owned());
            }
        }
        Some(_) => return Err(invalid("'tags' must be an object")),
    }
    Ok(ResourceGroupInfo { name: name.to_owned(), location, tags })
}

impl CheckOutcome {
    /// Exactly `{"state": …, "reason": …}` (`reason` is `null` when there is none).
    pub fn to_json(&self) -> Value {
        json!({ "state": self.state, "reason": self.reason })
    }

    /// For people: the state and effect, then the reason and the deciding condition.
    pub fn render(&self) -> String {
        let mut out = format!("{} (effect: {})", self.state.as_str(), self.effect);
        if let Some(reason) = &self.reason {
            out.push_str(&format!("\nreason: {}", reason.message));
            if let Some(pointer) = &reason.pointer {
                out.push_str(&format!("\ncondition: {pointer}"));
            }
        }
        out
    }
}

impl CheckError {
    /// For stderr: one fault per line for a rule that does not compile.
    pub fn render(&self) -> String {
        match self {
            CheckError::Compile(errors) => {
                let mut out = String::from("the policy does not compile:");
                for fault in &errors.faults {
                    out.push_str(&format!("\n  {fault}"));
                }
                out
            }
            other => other.to_string(),
        }
    }
}
