//! `cortex policy check` as a new user would run it on the fixture files: the pure part the
//! binary calls after reading the files.

use std::path::PathBuf;

use cortex_rules::check::{CheckError, check};
use cortex_rules::{ComplianceState, Effect, Mode};
use serde_json::{Value, json};

fn fixture(path: &str) -> Value {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn a_published_definition_with_params_reports_a_vm_outside_the_allowed_locations() {
    let outcome = check(
        &fixture("policies/AllowedLocations_Deny.json"),
        &fixture("resources/vm-westus.json"),
        Some(&fixture("resources/allowed-locations-params.json")),
        None,
        None,
    )
    .expect("evaluates");
    assert_eq!(outcome.state, ComplianceState::NonCompliant);
    assert_eq!(outcome.effect, Effect::Deny);
    assert_eq!(
        outcome.render(),
        "non_compliant (effect: deny)\n\
         reason: field 'location' is \"westus\"; to comply it must be one of [\"eastus\",\"northeurope\"]\n\
         condition: /if/allOf/0"
    );
}

#[test]
fn json_output_is_exactly_state_and_reason() {
    let outcome = check(
        &fixture("policies/StorageAccountMinimumTLSVersion_Audit.json"),
        &fixture("resources/storage-tls10.json"),
        None,
        None,
        None,
    )
    .expect("evaluates");
    let out = outcome.to_json();
    let keys: Vec<&String> = out.as_object().expect("object").keys().collect();
    assert_eq!(keys, vec!["reason", "state"]);
    assert_eq!(out["state"], "non_compliant");
    assert_eq!(out["reason"]["actual"], "TLS1_0");
    assert_eq!(out["reason"]["expected"], "TLS1_2");

    let compliant = check(
        &fixture("policies/StorageAccountMinimumTLSVersion_Audit.json"),
        &fixture("resources/storage-tls10.json"),
        Some(&json!({"minimumTlsVersion": "TLS1_0"})),
        None,
        None,
    )
    .expect("evaluates");
    assert_eq!(compliant.to_json(), json!({"state": "compliant", "reason": null}));
}

#[test]
fn the_definition_without_properties_and_a_bare_policy_rule_are_accepted() {
    let published = fixture("policies/StoragePublicNetworkAccess_AuditDeny.json");
    let properties = published["properties"].clone();
    let bare = properties["policyRule"].clone();
    let storage = fixture("resources/storage-tls10.json");
    // The bare rule's effect is a parameter it cannot define: that is a compile fault.
    let without = check(&properties, &storage, None, None, None).expect("evaluates");
    assert_eq!(without.state, ComplianceState::NonCompliant);
    match check(&bare, &storage, None, None, None) {
        Err(CheckError::Compile(errors)) => {
            assert_eq!(errors.faults[0].message, "parameter 'effect' is not defined");
        }
        other => panic!("expected compile faults, got {other:?}"),
    }
    let literal = json!({"if": bare["if"].clone(), "then": {"effect": "audit"}});
    let outcome = check(&literal, &storage, None, None, None).expect("evaluates");
    assert_eq!(outcome.state, ComplianceState::NonCompliant);
}

#[test]
fn azure_assignment_style_values_and_a_resource_group_file_are_read() {
    let outcome = check(
        &fixture("policies/InheritTag_Add_Modify.json"),
        &fixture("resources/vm-untagged.json"),
        Some(&fixture("resources/inherit-tag-params.json")),
        None,
        Some(&fixture("resources/rg-app.json")),
    )
    .expect("evaluates");
    assert_eq!(outcome.state, ComplianceState::NonCompliant);
    assert_eq!(outcome.effect, Effect::Audit);
}

#[test]
fn the_mode_override_replaces_the_definition_mode() {
    let rg = json!({"id": "/subscriptions/s/resourceGroups/rg", "name": "rg", "type": "Microsoft.Resources/resourceGroups", "location": "eastus"});
    let policy = fixture("policies/RequireTag_Deny.json");
    let params = json!({"tagName": "owner"});
    let indexed = check(&policy, &rg, Some(&params), None, None).expect("evaluates");
    assert_eq!(indexed.state, ComplianceState::NotApplicable);
    let all = check(&policy, &rg, Some(&params), Some(Mode::All), None).expect("evaluates");
    assert_eq!(all.state, ComplianceState::NonCompliant);
}

#[test]
fn the_nsg_rule_policy_reports_an_rdp_port_range_open_to_the_internet() {
    let outcome = check(
        &fixture("policies/NetworkSecurityGroup_RDPAccess_Audit.json"),
        &fixture("resources/nsg-rule-rdp-open.json"),
        None,
        None,
        None,
    )
    .expect("evaluates");
    assert_eq!(outcome.state, ComplianceState::NonCompliant);
}

#[test]
fn a_policy_that_does_not_compile_lists_every_fault_on_its_own_line() {
    let policy = json!({"if": {"allOf": [{"field": "name", "equalz": "a"}, {"field": "colour", "equals": "b"}]}, "then": {"effect": "audit"}});
    let error =
        check(&policy, &fixture("resources/vm-westus.json"), None, None, None).expect_err("does not compile");
    assert!(matches!(error, CheckError::Compile(_)));
    assert_eq!(
        error.render(),
        "the policy does not compile:\n  rule/if/allOf/0/equalz: unknown operator 'equalz'\n  rule/if/allOf/1/field: unknown field 'colour'"
    );
}

#[test]
fn files_that_are_not_policies_resources_or_groups_are_reported() {
    let policy = fixture("policies/AllowedLocations_Deny.json");
    let vm = fixture("resources/vm-westus.json");
    let params = fixture("resources/allowed-locations-params.json");
    assert_eq!(
        check(&json!({"displayName": "x"}), &vm, None, None, None),
        Err(CheckError::UnrecognisedPolicy)
    );
    assert!(matches!(
        check(&policy, &json!({"name": "no id"}), Some(&params), None, None),
        Err(CheckError::InvalidResource(_))
    ));
    assert!(matches!(
        check(&policy, &vm, Some(&params), None, Some(&json!({"location": "x"}))),
        Err(CheckError::InvalidResourceGroup(_))
    ));
    assert_eq!(check(&policy, &vm, Some(&json!(["eastus"])), None, None), Err(CheckError::InvalidParams));
}

#[test]
fn every_fixture_policy_compiles_through_check_with_its_defaults_or_the_example_values() {
    let manifest = fixture("manifest.json");
    let vm = fixture("resources/vm-westus.json");
    for entry in manifest.as_array().expect("array") {
        let file = entry["policy"].as_str().expect("name");
        let params = entry.get("params");
        let outcome = check(&fixture(&format!("policies/{file}")), &vm, params, None, None);
        assert!(outcome.is_ok(), "{file}: {outcome:?}");
    }
}
