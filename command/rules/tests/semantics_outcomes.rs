//! Applicability, effects, modes, evaluation errors, the resource group and subscription,
//! and reasons (issue 3, points 3 and 4).

mod common;

use common::{audit_if, evaluate, evaluate_in, resource, storage, vm};
use cortex_rules::{ComplianceState, Effect, ReasonKind, ResourceGroupInfo};
use serde_json::json;

#[test]
fn a_storage_policy_is_not_applicable_to_a_virtual_machine() {
    let rule = audit_if(json!({"allOf": [
        {"field": "type", "equals": "Microsoft.Storage/storageAccounts"},
        {"field": "Microsoft.Storage/storageAccounts/minimumTlsVersion", "notEquals": "TLS1_2"}
    ]}));
    let evaluation = evaluate(rule, &vm(json!({})));
    assert_eq!(evaluation.state, ComplianceState::NotApplicable);
    assert_eq!(evaluation.reason.map(|r| r.kind), Some(ReasonKind::NotSelected));
}

#[test]
fn applicability_ignores_everything_but_type_name_and_kind() {
    // The tls condition cannot make a storage account not applicable, only compliant.
    let rule = audit_if(json!({"allOf": [
        {"field": "type", "equals": "Microsoft.Storage/storageAccounts"},
        {"field": "Microsoft.Storage/storageAccounts/minimumTlsVersion", "notEquals": "TLS1_2"}
    ]}));
    let st = storage(json!({"properties": {"minimumTlsVersion": "TLS1_2"}}));
    assert_eq!(evaluate(rule, &st).state, ComplianceState::Compliant);
}

#[test]
fn a_rule_of_only_name_or_only_kind_conditions_applies_to_everything() {
    let name_only = audit_if(json!({"field": "name", "like": "prod-*"}));
    assert_eq!(evaluate(name_only, &vm(json!({}))).state, ComplianceState::Compliant);
    let kind_only = audit_if(json!({"field": "kind", "equals": "functionapp"}));
    assert_eq!(evaluate(kind_only, &vm(json!({}))).state, ComplianceState::Compliant);
}

#[test]
fn a_rule_of_only_type_and_name_conditions_decides_applicability_by_type() {
    let rule = audit_if(json!({"allOf": [
        {"field": "type", "equals": "Microsoft.Compute/virtualMachines"},
        {"field": "name", "like": "prod-*"}
    ]}));
    assert_eq!(evaluate(rule.clone(), &vm(json!({}))).state, ComplianceState::Compliant);
    assert_eq!(evaluate(rule, &storage(json!({}))).state, ComplianceState::NotApplicable);
}

#[test]
fn a_rule_with_a_location_condition_does_not_apply_to_subscriptions() {
    let sub = resource("Microsoft.Resources/subscriptions", "sub", json!({"location": ""}));
    let rule = audit_if(json!({"field": "location", "notIn": ["eastus"]}));
    assert_eq!(evaluate(rule, &sub).state, ComplianceState::NotApplicable);
}

#[test]
fn a_failing_template_function_gives_state_error_with_the_reason() {
    let rule = audit_if(json!({"value": "[int(field('name'))]", "greater": 3}));
    let evaluation = evaluate(rule, &vm(json!({})));
    assert_eq!(evaluation.state, ComplianceState::Error);
    let reason = evaluation.reason.expect("an error has a reason");
    assert_eq!(reason.kind, ReasonKind::EvaluationFailed);
    assert_eq!(reason.pointer.as_deref(), Some("/if"));
    assert!(reason.message.contains("not an integer"), "{}", reason.message);
}

#[test]
fn ordering_values_of_different_kinds_is_an_error_not_a_panic() {
    let st = storage(json!({"properties": {"flag": true}}));
    let rule = audit_if(json!({"field": "Microsoft.Storage/storageAccounts/flag", "less": 3}));
    assert_eq!(evaluate(rule, &st).state, ComplianceState::Error);
}

#[test]
fn an_unreached_failing_branch_does_not_cause_an_error() {
    let rule = audit_if(json!({"anyOf": [
        {"field": "name", "equals": "vm01"},
        {"value": "[int('not a number')]", "equals": 1}
    ]}));
    assert_eq!(evaluate(rule, &vm(json!({}))).state, ComplianceState::NonCompliant);
}

#[test]
fn a_disabled_effect_is_never_evaluated() {
    let rule = json!({"if": {"value": "[int('boom')]", "equals": 1}, "then": {"effect": "Disabled"}});
    let evaluation = evaluate(rule, &vm(json!({})));
    assert_eq!(evaluation.state, ComplianceState::NotApplicable);
    assert_eq!(evaluation.effect, Effect::Disabled);
    assert_eq!(evaluation.reason.map(|r| r.message.into_owned()), Some("effect disabled".to_owned()));
}

#[test]
fn modify_and_append_are_reported_as_audit() {
    for effect in ["modify", "Append"] {
        let rule =
            json!({"if": {"field": "name", "equals": "vm01"}, "then": {"effect": effect, "details": {}}});
        assert_eq!(evaluate(rule, &vm(json!({}))).effect, Effect::Audit);
    }
}

#[test]
fn indexed_mode_leaves_resource_groups_and_location_less_records_out() {
    let compiled = cortex_rules::Policy::compile(&cortex_rules::PolicyDefinitionInput {
        rule: audit_if(json!({"field": "tags.owner", "exists": false})),
        mode: Some("Indexed".into()),
        ..Default::default()
    })
    .expect("compiles");
    let group = resource("Microsoft.Resources/resourceGroups", "rg-app", json!({}));
    let child =
        resource("Microsoft.Network/networkSecurityGroups/securityRules", "nsg/r", json!({"location": ""}));
    for record in [&group, &child] {
        let evaluation = compiled.evaluate(&cortex_rules::ResourceContext::new(record, None, None));
        assert_eq!(evaluation.state, ComplianceState::NotApplicable);
        assert_eq!(evaluation.reason.map(|r| r.kind), Some(ReasonKind::ModeExcluded));
    }
    let machine = vm(json!({}));
    let evaluation = compiled.evaluate(&cortex_rules::ResourceContext::new(&machine, None, None));
    assert_eq!(evaluation.state, ComplianceState::NonCompliant);
}

#[test]
fn a_registered_resource_group_is_seen_with_azure_policys_type_spelling() {
    let group = resource("Microsoft.Resources/resourceGroups", "rg-app", json!({}));
    let rule = audit_if(json!({"allOf": [
        {"field": "type", "equals": "Microsoft.Resources/subscriptions/resourceGroups"},
        {"field": "tags.owner", "exists": false}
    ]}));
    assert_eq!(evaluate(rule, &group).state, ComplianceState::NonCompliant);
}

#[test]
fn resource_group_and_subscription_functions_read_the_context() {
    let machine = vm(json!({"location": "westeurope"}));
    let group = ResourceGroupInfo {
        name: "rg-app".into(),
        location: Some("West Europe".into()),
        tags: [("env".to_owned(), "prod".to_owned())].into(),
    };
    let check = |condition: serde_json::Value| {
        evaluate_in(audit_if(condition), &machine, Some(&group)).state == ComplianceState::NonCompliant
    };
    assert!(check(json!({"value": "[resourceGroup().name]", "equals": "rg-app"})));
    assert!(check(json!({"field": "location", "equals": "[resourceGroup().location]"})));
    assert!(check(json!({"value": "[resourceGroup().tags['env']]", "equals": "prod"})));
    assert!(check(json!({"value": "[subscription().subscriptionId]", "equals": common::SUB})));
    assert!(!check(json!({"field": "name", "like": "[concat(substring(resourceGroup().name, 0, 2), '*')]"})));
    assert!(check(json!({"field": "name", "equals": "[toLower(concat('VM', '01'))]"})));
}

#[test]
fn an_unregistered_resource_group_has_its_name_but_no_tags_or_location() {
    let machine = vm(json!({}));
    let check = |condition: serde_json::Value| evaluate(audit_if(condition), &machine).state;
    assert_eq!(
        check(json!({"value": "[resourceGroup().name]", "equals": "rg-app"})),
        ComplianceState::NonCompliant
    );
    assert_eq!(
        check(json!({"value": "[resourceGroup().tags['env']]", "notEquals": ""})),
        ComplianceState::Compliant
    );
    assert_eq!(
        check(json!({"value": "[resourceGroup().location]", "exists": true})),
        ComplianceState::Compliant
    );
}

#[test]
fn a_non_compliant_reason_names_the_condition_field_actual_and_expected_values() {
    let rule = audit_if(json!({"allOf": [
        {"field": "type", "equals": "Microsoft.Compute/virtualMachines"},
        {"field": "location", "in": ["westus", "centralus"]}
    ]}));
    let evaluation = evaluate(rule, &vm(json!({"location": "westus"})));
    let reason = serde_json::to_value(evaluation.reason.expect("reason")).expect("serialises");
    assert_eq!(reason["field"], "location");
    assert_eq!(reason["operator"], "in");
    assert_eq!(reason["actual"], "westus");
    assert_eq!(reason["expected"], json!(["westus", "centralus"]));
    assert_eq!(reason["pointer"], "/if/allOf/1");
    assert_eq!(
        reason["message"],
        "field 'location' is \"westus\"; to comply it must not be one of [\"westus\",\"centralus\"]"
    );
}

#[test]
fn a_compliant_result_carries_no_reason() {
    let evaluation = evaluate(audit_if(json!({"field": "name", "equals": "other"})), &vm(json!({})));
    assert_eq!(evaluation.state, ComplianceState::Compliant);
    assert!(evaluation.reason.is_none());
}

#[test]
fn a_rule_may_name_the_resource_group_type_in_either_spelling() {
    let group = resource("Microsoft.Resources/subscriptions/resourceGroups", "rg-app", json!({}));
    for spelling in ["Microsoft.Resources/resourceGroups", "microsoft.resources/subscriptions/resourcegroups"]
    {
        let rule = audit_if(json!({"allOf": [
            {"field": "type", "in": [spelling]},
            {"field": "tags.owner", "exists": false}
        ]}));
        assert_eq!(evaluate(rule, &group).state, ComplianceState::NonCompliant, "{spelling}");
    }
}
