//! Parameters: definitions (`type`, `defaultValue`, `allowedValues`) checked against the
//! assignment's values, resolved once so rules see plain constants.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{CompileFault, FaultPart, pointer_join};
use crate::value::{View, loose_eq};

/// The value of every defined parameter, or the faults found.
pub(crate) fn resolve(
    definitions: &Value,
    values: &Map<String, Value>,
    faults: &mut Vec<CompileFault>,
) -> BTreeMap<String, Value> {
    let mut resolved = BTreeMap::new();
    let empty = Map::new();
    let definitions = match definitions {
        Value::Null => &empty,
        Value::Object(map) => map,
        _ => {
            faults.push(CompileFault::new(
                FaultPart::Parameters,
                "",
                "parameter definitions must be an object",
            ));
            return resolved;
        }
    };
    for (name, definition) in definitions {
        let at = pointer_join("", name);
        let Some(definition) = definition.as_object() else {
            faults.push(CompileFault::new(
                FaultPart::Parameters,
                &at,
                "a parameter definition must be an object",
            ));
            continue;
        };
        let declared = match definition.iter().find(|(k, _)| k.eq_ignore_ascii_case("type")) {
            Some((_, Value::String(t))) => match ParamType::parse(t) {
                Some(t) => t,
                None => {
                    faults.push(CompileFault::new(
                        FaultPart::Parameters,
                        &pointer_join(&at, "type"),
                        format!("unknown parameter type '{t}'"),
                    ));
                    continue;
                }
            },
            _ => {
                faults.push(CompileFault::new(FaultPart::Parameters, &at, "a parameter needs a 'type'"));
                continue;
            }
        };
        let allowed =
            definition.iter().find(|(k, _)| k.eq_ignore_ascii_case("allowedValues")).map(|(_, v)| v);
        let allowed = match allowed {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(list.as_slice()),
            Some(_) => {
                faults.push(CompileFault::new(
                    FaultPart::Parameters,
                    &pointer_join(&at, "allowedValues"),
                    "allowedValues must be an array",
                ));
                continue;
            }
        };
        let default = definition.iter().find(|(k, _)| k.eq_ignore_ascii_case("defaultValue")).map(|(_, v)| v);
        if let Some(default) = default {
            check(
                name,
                default,
                declared,
                allowed,
                FaultPart::Parameters,
                &pointer_join(&at, "defaultValue"),
                faults,
            );
        }
        let given = values.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        match (given, default) {
            (Some(value), _) => {
                // Kept even when refused, so the rule's uses of it raise no follow-on faults.
                check(name, value, declared, allowed, FaultPart::ParameterValues, &at, faults);
                resolved.insert(name.clone(), value.clone());
            }
            (None, Some(default)) => {
                resolved.insert(name.clone(), default.clone());
            }
            (None, None) => {
                faults.push(CompileFault::new(
                    FaultPart::ParameterValues,
                    &at,
                    format!("parameter '{name}' has no value and no defaultValue"),
                ));
                resolved.insert(name.clone(), Value::Null);
            }
        }
    }
    for name in values.keys() {
        if !definitions.keys().any(|d| d.eq_ignore_ascii_case(name)) {
            faults.push(CompileFault::new(
                FaultPart::ParameterValues,
                &pointer_join("", name),
                format!("parameter '{name}' is not defined by the policy"),
            ));
        }
    }
    resolved
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ParamType {
    String,
    Array,
    Object,
    Boolean,
    Integer,
    Float,
    DateTime,
}

impl ParamType {
    fn parse(name: &str) -> Option<ParamType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "string" => ParamType::String,
            "array" => ParamType::Array,
            "object" => ParamType::Object,
            "boolean" => ParamType::Boolean,
            "integer" => ParamType::Integer,
            "float" => ParamType::Float,
            "datetime" => ParamType::DateTime,
            _ => return None,
        })
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::String | ParamType::DateTime => value.is_string(),
            ParamType::Array => value.is_array(),
            ParamType::Object => value.is_object(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Float => value.is_number(),
        }
    }
}

/// Checks one value against the declared type and `allowedValues`; for an array parameter
/// every member must be allowed. Strings compare case-insensitively, as the engine does.
fn check(
    name: &str,
    value: &Value,
    declared: ParamType,
    allowed: Option<&[Value]>,
    part: FaultPart,
    at: &str,
    faults: &mut Vec<CompileFault>,
) -> bool {
    if !declared.accepts(value) {
        faults.push(CompileFault::new(
            part,
            at,
            format!("parameter '{name}' must be of type {declared:?}").to_lowercase(),
        ));
        return false;
    }
    let Some(allowed) = allowed else {
        return true;
    };
    let is_allowed = |v: &Value| allowed.iter().any(|a| loose_eq(View::of(v), View::of(a), false));
    let ok = match (declared, value) {
        (ParamType::Array, Value::Array(items)) => is_allowed(value) || items.iter().all(is_allowed),
        _ => is_allowed(value),
    };
    if !ok {
        faults.push(CompileFault::new(
            part,
            at,
            format!(
                "value {value} of parameter '{name}' is not one of its allowedValues {}",
                Value::Array(allowed.to_vec())
            ),
        ));
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(definitions: Value, values: Value) -> (BTreeMap<String, Value>, Vec<CompileFault>) {
        let mut faults = Vec::new();
        let values = values.as_object().cloned().unwrap_or_default();
        let resolved = resolve(&definitions, &values, &mut faults);
        (resolved, faults)
    }

    #[test]
    fn a_default_value_is_used_when_no_value_is_given() {
        let (resolved, faults) =
            run(json!({"effect": {"type": "String", "defaultValue": "Audit"}}), json!({}));
        assert!(faults.is_empty());
        assert_eq!(resolved.get("effect"), Some(&json!("Audit")));
    }

    #[test]
    fn a_value_outside_allowed_values_is_a_fault() {
        let (_, faults) = run(
            json!({"effect": {"type": "String", "allowedValues": ["Audit", "Deny"]}}),
            json!({"effect": "Explode"}),
        );
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].part, FaultPart::ParameterValues);
        assert_eq!(faults[0].pointer, "/effect");
    }

    #[test]
    fn allowed_values_compare_case_insensitively() {
        let (_, faults) = run(
            json!({"effect": {"type": "String", "allowedValues": ["Audit", "Deny"]}}),
            json!({"effect": "audit"}),
        );
        assert!(faults.is_empty());
    }

    #[test]
    fn every_array_member_must_be_allowed() {
        let defs = json!({"locs": {"type": "Array", "allowedValues": ["eastus", "westus"]}});
        assert!(run(defs.clone(), json!({"locs": ["eastus"]})).1.is_empty());
        assert_eq!(run(defs, json!({"locs": ["eastus", "mars"]})).1.len(), 1);
    }

    #[test]
    fn a_missing_value_without_default_and_an_unknown_value_are_faults() {
        let (_, faults) = run(json!({"tagName": {"type": "String"}}), json!({"other": 1}));
        assert_eq!(faults.len(), 2);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_fault() {
        let (_, faults) = run(json!({"n": {"type": "Integer"}}), json!({"n": "three"}));
        assert_eq!(faults.len(), 1);
    }
}
