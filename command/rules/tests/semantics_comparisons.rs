//! Azure's comparison rules: case, patterns, locations, missing fields, and the fields a
//! rule can name (issue 3, point 3).

mod common;

use common::{holds, resource, storage, vm};
use serde_json::json;

#[test]
fn string_comparisons_ignore_case() {
    let st = storage(json!({"properties": {"minimumTlsVersion": "TLS1_2"}}));
    let tls = "Microsoft.Storage/storageAccounts/minimumTlsVersion";
    assert!(holds(json!({"field": tls, "equals": "tls1_2"}), &st));
    assert!(holds(json!({"field": tls, "in": ["TLS1_0", "tls1_2"]}), &st));
    assert!(holds(json!({"field": tls, "contains": "LS1"}), &st));
    assert!(holds(json!({"field": tls, "like": "tls1_*"}), &st));
    assert!(holds(json!({"field": "name", "equals": "ST01"}), &st));
}

#[test]
fn match_is_case_sensitive_and_match_insensitively_is_not() {
    let machine = vm(json!({}));
    assert!(holds(json!({"field": "name", "match": "vm##"}), &machine));
    assert!(!holds(json!({"field": "name", "match": "VM##"}), &machine));
    assert!(holds(json!({"field": "name", "notMatch": "VM##"}), &machine));
    assert!(holds(json!({"field": "name", "matchInsensitively": "VM##"}), &machine));
    assert!(!holds(json!({"field": "name", "notMatchInsensitively": "VM##"}), &machine));
}

#[test]
fn match_patterns_use_hash_for_a_digit_question_mark_for_a_letter_and_dot_for_anything() {
    let machine = resource("Microsoft.Compute/virtualMachines", "web-07x", json!({}));
    assert!(holds(json!({"field": "name", "match": "???-##?"}), &machine));
    assert!(holds(json!({"field": "name", "match": "...-..."}), &machine));
    assert!(!holds(json!({"field": "name", "match": "???-###"}), &machine));
    // The whole string must match: no prefix matches.
    assert!(!holds(json!({"field": "name", "match": "???"}), &machine));
}

#[test]
fn like_matches_one_wildcard_anywhere() {
    let machine = resource("Microsoft.Compute/virtualMachines", "prod-web-01", json!({}));
    assert!(holds(json!({"field": "name", "like": "prod-*"}), &machine));
    assert!(holds(json!({"field": "name", "like": "*-01"}), &machine));
    assert!(holds(json!({"field": "name", "like": "prod*01"}), &machine));
    assert!(!holds(json!({"field": "name", "like": "dev-*"}), &machine));
    assert!(holds(json!({"field": "name", "notLike": "dev-*"}), &machine));
}

#[test]
fn locations_are_normalised_before_comparison() {
    let machine = vm(json!({"location": "East US 2"}));
    assert!(holds(json!({"field": "location", "equals": "eastus2"}), &machine));
    assert!(holds(json!({"field": "location", "in": ["EastUS2", "westus"]}), &machine));
    let compact = vm(json!({"location": "eastus2"}));
    assert!(holds(json!({"field": "location", "equals": "East US 2"}), &compact));
}

#[test]
fn a_missing_field_fails_equals_in_like_and_contains_and_passes_their_negations() {
    let bare = storage(json!({}));
    let missing = "Microsoft.Storage/storageAccounts/minimumTlsVersion";
    for (op, expected) in [
        ("equals", json!("TLS1_2")),
        ("in", json!(["TLS1_2"])),
        ("like", json!("*")),
        ("contains", json!("TLS")),
        ("containsKey", json!("x")),
        ("match", json!("....")),
    ] {
        assert!(!holds(json!({"field": missing, op: expected.clone()}), &bare), "{op}");
    }
    for (op, expected) in [
        ("notEquals", json!("TLS1_2")),
        ("notIn", json!(["TLS1_2"])),
        ("notLike", json!("*")),
        ("notContains", json!("TLS")),
        ("notContainsKey", json!("x")),
        ("notMatch", json!("....")),
    ] {
        assert!(holds(json!({"field": missing, op: expected.clone()}), &bare), "{op}");
    }
}

#[test]
fn exists_false_holds_for_a_missing_field_and_a_json_null() {
    let bare = storage(json!({"properties": {"encryption": null}}));
    assert!(holds(
        json!({"field": "Microsoft.Storage/storageAccounts/minimumTlsVersion", "exists": "false"}),
        &bare
    ));
    assert!(holds(json!({"field": "Microsoft.Storage/storageAccounts/encryption", "exists": false}), &bare));
    assert!(!holds(
        json!({"field": "Microsoft.Storage/storageAccounts/encryption", "exists": "true"}),
        &bare
    ));
    assert!(holds(json!({"field": "tags['owner']", "exists": false}), &bare));
}

#[test]
fn every_tag_field_syntax_reads_the_same_tag() {
    let machine = vm(json!({"tags": {"cost-center": "42", "a.b": "dotted"}}));
    for field in ["tags['cost-center']", "tags[cost-center]", "tags.cost-center", "tags['COST-CENTER']"] {
        assert!(holds(json!({"field": field, "equals": "42"}), &machine), "{field}");
    }
    assert!(holds(json!({"field": "tags[a.b]", "equals": "dotted"}), &machine));
    assert!(holds(json!({"field": "tags", "containsKey": "Cost-Center"}), &machine));
}

#[test]
fn name_full_name_id_and_kind_fields_read_the_record() {
    let db = resource(
        "Microsoft.Sql/servers/databases",
        "srv/db",
        json!({
            "name": "db",
            "kind": "v12.0,user",
            "id": format!("/subscriptions/{}/resourceGroups/rg-app/providers/Microsoft.Sql/servers/srv/databases/db", common::SUB)
        }),
    );
    assert!(holds(json!({"field": "name", "equals": "db"}), &db));
    assert!(holds(json!({"field": "fullName", "equals": "srv/db"}), &db));
    assert!(holds(json!({"field": "id", "like": "*/databases/db"}), &db));
    assert!(holds(json!({"field": "kind", "contains": "user"}), &db));
}
