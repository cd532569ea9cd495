//! `[*]` fields and `count`: field and value counts, `where` per member, `field()` and
//! `current()` inside it (issue 3, point 3).

mod common;

use common::{holds, resource, storage};
use serde_json::json;

#[test]
fn a_wildcard_condition_holds_only_when_every_member_passes() {
    let rules = json!({"properties": {"networkAcls": {"ipRules": [
        {"value": "1.2.3.4", "action": "Allow"},
        {"value": "5.6.7.8", "action": "Deny"}
    ]}}});
    let st = storage(rules);
    let action = "Microsoft.Storage/storageAccounts/networkAcls.ipRules[*].action";
    assert!(!holds(json!({"field": action, "equals": "Allow"}), &st));
    assert!(holds(json!({"field": action, "in": ["Allow", "Deny"]}), &st));
    // "some member is Allow" is written as not(every member is not Allow).
    assert!(holds(json!({"not": {"field": action, "notEquals": "Allow"}}), &st));
}

#[test]
fn a_wildcard_condition_over_an_empty_or_missing_array_holds() {
    let action = "Microsoft.Storage/storageAccounts/networkAcls.ipRules[*].action";
    let empty = storage(json!({"properties": {"networkAcls": {"ipRules": []}}}));
    let missing = storage(json!({}));
    for st in [&empty, &missing] {
        assert!(holds(json!({"field": action, "equals": "Allow"}), st));
        assert!(holds(json!({"field": action, "notEquals": "Allow"}), st));
    }
}

#[test]
fn a_member_missing_the_property_counts_as_missing_for_that_member() {
    let nic = resource(
        "Microsoft.Network/networkInterfaces",
        "nic",
        json!({"properties": {"ipConfigurations": [
            {"properties": {"privateIPAddress": "10.0.0.4"}},
            {"properties": {"publicIPAddress": {"id": "/pip"}}}
        ]}}),
    );
    let public = "Microsoft.Network/networkInterfaces/ipconfigurations[*].publicIpAddress.id";
    assert!(!holds(json!({"field": public, "notLike": "*"}), &nic));
    assert!(!holds(json!({"field": public, "exists": true}), &nic));
}

fn nsg(rules: serde_json::Value) -> cortex_rules::Resource {
    resource(
        "Microsoft.Network/networkSecurityGroups",
        "nsg",
        json!({"properties": {"securityRules": rules}}),
    )
}

fn rule(name: &str, access: &str, port: &str) -> serde_json::Value {
    json!({"name": name, "properties": {"access": access, "direction": "Inbound", "destinationPortRange": port}})
}

#[test]
fn count_where_evaluates_each_member_on_its_own() {
    let group = nsg(json!([rule("a", "Allow", "3389"), rule("b", "Deny", "3389"), rule("c", "Allow", "22")]));
    let count_allow_rdp = |op: &str, n: i64| {
        json!({"count": {
            "field": "Microsoft.Network/networkSecurityGroups/securityRules[*]",
            "where": {"allOf": [
                {"field": "Microsoft.Network/networkSecurityGroups/securityRules[*].access", "equals": "Allow"},
                {"field": "Microsoft.Network/networkSecurityGroups/securityRules[*].destinationPortRange", "equals": "3389"}
            ]}
        }, op: n})
    };
    assert!(holds(count_allow_rdp("equals", 1), &group));
    assert!(holds(count_allow_rdp("greater", 0), &group));
    assert!(!holds(count_allow_rdp("greater", 1), &group));
}

#[test]
fn count_without_where_counts_every_member() {
    let group = nsg(json!([rule("a", "Allow", "1"), rule("b", "Allow", "2")]));
    let field = "Microsoft.Network/networkSecurityGroups/securityRules[*]";
    assert!(holds(json!({"count": {"field": field}, "equals": 2}), &group));
    assert!(holds(
        json!({"count": {"field": field}, "equals": "[length(field('Microsoft.Network/networkSecurityGroups/securityRules[*]'))]"}),
        &group
    ));
    assert!(holds(json!({"count": {"field": field}, "equals": 0}), &nsg(json!([]))));
}

#[test]
fn the_where_condition_can_read_fields_outside_the_counted_array() {
    let mut group = nsg(json!([rule("a", "Allow", "1")]));
    group.tags.insert("env".into(), "prod".into());
    let condition = json!({"count": {
        "field": "Microsoft.Network/networkSecurityGroups/securityRules[*]",
        "where": {"field": "tags.env", "equals": "prod"}
    }, "equals": 1});
    assert!(holds(condition, &group));
}

#[test]
fn field_of_the_counted_array_inside_where_is_a_one_member_array() {
    let group = nsg(json!([rule("a", "Allow", "1"), rule("b", "Allow", "2")]));
    let names = "Microsoft.Network/networkSecurityGroups/securityRules[*].name";
    let as_array = json!({"count": {
        "field": "Microsoft.Network/networkSecurityGroups/securityRules[*]",
        "where": {"value": "[field('Microsoft.Network/networkSecurityGroups/securityRules[*].name')]", "equals": ["a"]}
    }, "equals": 1});
    assert!(holds(as_array, &group));
    let first = json!({"count": {
        "field": "Microsoft.Network/networkSecurityGroups/securityRules[*]",
        "where": {"field": names, "equals": "[first(field('Microsoft.Network/networkSecurityGroups/securityRules[*].name'))]"}
    }, "equals": 2});
    assert!(holds(first, &group));
    let current = json!({"count": {
        "field": "Microsoft.Network/networkSecurityGroups/securityRules[*]",
        "where": {"value": "[current('Microsoft.Network/networkSecurityGroups/securityRules[*].name')]", "in": ["a", "b"]}
    }, "equals": 2});
    assert!(holds(current, &group));
}

#[test]
fn value_count_iterates_an_array_with_current() {
    let machine = resource("Microsoft.Compute/virtualMachines", "prefix2_web", json!({}));
    let named = json!({"count": {"value": ["prefix1_*", "prefix2_*"], "name": "pattern",
        "where": {"field": "name", "like": "[current('pattern')]"}}, "greater": 0});
    assert!(holds(named, &machine));
    let unnamed = json!({"count": {"value": ["x_*", "y_*"], "where": {"field": "name", "like": "[current()]"}}, "greater": 0});
    assert!(!holds(unnamed, &machine));
}

#[test]
fn nested_counts_visit_inner_members_per_outer_member() {
    let st = storage(json!({"properties": {"objectArray": [
        {"property": "value1", "nestedArray": [1, 2]},
        {"property": "value2", "nestedArray": [3, 4]}
    ]}}));
    let condition = json!({"count": {
        "field": "Microsoft.Storage/storageAccounts/objectArray[*]",
        "where": {"allOf": [
            {"field": "Microsoft.Storage/storageAccounts/objectArray[*].property", "equals": "value2"},
            {"count": {
                "field": "Microsoft.Storage/storageAccounts/objectArray[*].nestedArray[*]",
                "where": {"field": "Microsoft.Storage/storageAccounts/objectArray[*].nestedArray[*]", "equals": 3}
            }, "greater": 0}
        ]}
    }, "equals": 1});
    assert!(holds(condition, &st));
    let flattened = json!({"count": {"field": "Microsoft.Storage/storageAccounts/objectArray[*].nestedArray[*]"}, "equals": 4});
    assert!(holds(flattened, &st));
}
