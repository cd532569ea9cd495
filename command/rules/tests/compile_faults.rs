//! A rule that does not compile is refused with every fault found, each with the JSON
//! pointer of the problem and what is wrong.

mod common;

use cortex_rules::{CompileFault, FaultPart, Policy, PolicyDefinitionInput};
use serde_json::{Value, json};

fn faults(input: PolicyDefinitionInput) -> Vec<CompileFault> {
    match Policy::compile(&input) {
        Ok(_) => panic!("expected compile faults"),
        Err(errors) => errors.faults,
    }
}

fn rule_faults(rule: Value) -> Vec<(String, String)> {
    faults(PolicyDefinitionInput { rule, ..Default::default() })
        .into_iter()
        .map(|f| {
            assert_eq!(f.part, FaultPart::Rule);
            (f.pointer, f.message)
        })
        .collect()
}

fn one_fault(rule: Value) -> (String, String) {
    let mut all = rule_faults(rule);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[test]
fn an_unknown_operator_is_reported_at_its_key() {
    let (pointer, message) = one_fault(json!({
        "if": {"allOf": [{"field": "name", "equals": "a"}, {"field": "name", "equalz": "b"}]},
        "then": {"effect": "audit"}
    }));
    assert_eq!(pointer, "/if/allOf/1/equalz");
    assert_eq!(message, "unknown operator 'equalz'");
}

#[test]
fn two_operators_in_one_condition_are_refused() {
    let (pointer, message) = one_fault(json!({
        "if": {"field": "name", "equals": "a", "like": "b*"},
        "then": {"effect": "audit"}
    }));
    assert_eq!(pointer, "/if");
    assert!(message.starts_with("two operators in one condition"), "{message}");
}

#[test]
fn an_undefined_parameter_is_reported_where_it_is_used() {
    let (pointer, message) = one_fault(json!({
        "if": {"not": {"field": "location", "in": "[parameters('allowed')]"}},
        "then": {"effect": "deny"}
    }));
    assert_eq!(pointer, "/if/not/in");
    assert_eq!(message, "parameter 'allowed' is not defined");
}

#[test]
fn a_value_outside_allowed_values_is_refused() {
    let found = faults(PolicyDefinitionInput {
        rule: json!({"if": {"field": "name", "equals": "a"}, "then": {"effect": "[parameters('effect')]"}}),
        parameters: json!({"effect": {"type": "String", "allowedValues": ["Audit", "Disabled"], "defaultValue": "Audit"}}),
        parameter_values: json!({"effect": "Deny"}).as_object().cloned().unwrap_or_default(),
        mode: None,
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].part, FaultPart::ParameterValues);
    assert_eq!(found[0].pointer, "/effect");
    assert!(found[0].message.contains("allowedValues"), "{}", found[0].message);
}

#[test]
fn a_count_without_field_or_value_is_refused() {
    let (pointer, message) = one_fault(json!({
        "if": {"count": {"where": {"field": "name", "equals": "a"}}, "greater": 0},
        "then": {"effect": "audit"}
    }));
    assert_eq!(pointer, "/if/count");
    assert_eq!(message, "count needs a 'field' or a 'value'");
}

#[test]
fn a_count_over_a_field_that_is_not_an_array_alias_is_refused() {
    let (pointer, message) = one_fault(json!({
        "if": {"count": {"field": "Microsoft.Network/networkSecurityGroups/securityRules"}, "greater": 0},
        "then": {"effect": "audit"}
    }));
    assert_eq!(pointer, "/if/count/field");
    assert!(message.contains("[*]"), "{message}");
}

#[test]
fn a_bad_or_unsupported_effect_is_refused() {
    let (pointer, message) =
        one_fault(json!({"if": {"field": "name", "equals": "a"}, "then": {"effect": "explode"}}));
    assert_eq!(pointer, "/then/effect");
    assert_eq!(message, "unknown effect 'explode'");
    let (_, message) =
        one_fault(json!({"if": {"field": "name", "equals": "a"}, "then": {"effect": "deployIfNotExists"}}));
    assert!(message.contains("not supported"), "{message}");
}

#[test]
fn every_fault_is_reported_not_just_the_first() {
    let all = rule_faults(json!({
        "if": {"allOf": [
            {"field": "colour", "equals": "red"},
            {"field": "name", "equalz": "b"},
            {"value": "[parameters('nope')]", "equals": 1},
            {"field": "name"}
        ]},
        "then": {"effect": "audit"},
        "else": {}
    }));
    let mut pointers: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        vec!["/else", "/if/allOf/0/field", "/if/allOf/1/equalz", "/if/allOf/2/value", "/if/allOf/3"],
        "{all:?}"
    );
}

#[test]
fn structural_mistakes_are_refused_with_their_pointers() {
    let cases = [
        (json!({"if": {"allOf": []}, "then": {"effect": "audit"}}), "/if/allOf"),
        (
            json!({"if": {"anyOf": {"field": "name", "equals": "a"}}, "then": {"effect": "audit"}}),
            "/if/anyOf",
        ),
        (
            json!({"if": {"not": {"field": "name", "equals": "a"}, "field": "x"}, "then": {"effect": "audit"}}),
            "/if",
        ),
        (json!({"if": {"equals": "a"}, "then": {"effect": "audit"}}), "/if"),
        (json!({"if": {"field": "name", "value": "x", "equals": "a"}, "then": {"effect": "audit"}}), "/if"),
        (json!({"if": {"field": "name", "exists": "maybe"}, "then": {"effect": "audit"}}), "/if/exists"),
        (json!({"if": {"field": "name", "in": "eastus"}, "then": {"effect": "audit"}}), "/if/in"),
        (json!({"if": {"field": "name", "like": 3}, "then": {"effect": "audit"}}), "/if/like"),
        (
            json!({"if": {"field": "name", "equals": "[concat('a']"}, "then": {"effect": "audit"}}),
            "/if/equals",
        ),
        (json!({"if": {"field": "name", "equals": "[frob()]"}, "then": {"effect": "audit"}}), "/if/equals"),
        (json!({"if": {"value": "[current()]", "equals": 1}, "then": {"effect": "audit"}}), "/if/value"),
        (json!({"if": {"field": "name", "equals": "a"}, "then": {}}), "/then"),
        (json!({"then": {"effect": "audit"}}), ""),
        (json!(["not", "an", "object"]), ""),
    ];
    for (rule, pointer) in cases {
        let all = rule_faults(rule.clone());
        assert!(all.iter().any(|(p, _)| p == pointer), "{rule}: {all:?}");
    }
}

#[test]
fn an_unknown_mode_is_refused() {
    let found = faults(PolicyDefinitionInput {
        rule: json!({"if": {"field": "name", "equals": "a"}, "then": {"effect": "audit"}}),
        mode: Some("Microsoft.KeyVault.Data".into()),
        ..Default::default()
    });
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].part, FaultPart::Mode);
}

#[test]
fn faults_serialise_with_part_pointer_and_message() {
    let errors = Policy::compile(&PolicyDefinitionInput {
        rule: json!({"if": {"field": "name", "equalz": "a"}, "then": {"effect": "audit"}}),
        ..Default::default()
    })
    .expect_err("does not compile");
    assert_eq!(
        serde_json::to_value(&errors).ok(),
        Some(
            json!({"faults": [{"part": "rule", "pointer": "/if/equalz", "message": "unknown operator 'equalz'"}]})
        )
    );
}
