//! Normalisation of inventory records.

use super::*;

#[test]
fn an_azure_id_names_its_subscription_and_group_in_any_case() {
    let named = NamedScope::parse("/SUBSCRIPTIONS/s1/resourcegroups/RG/providers/x/y/z");
    assert_eq!(named, NamedScope { subscription: Some("s1"), group: Some("RG"), is_subscription: false });
}

#[test]
fn a_subscription_id_names_no_group() {
    let named = NamedScope::parse("/subscriptions/s1/");
    assert_eq!(named, NamedScope { subscription: Some("s1"), group: None, is_subscription: true });
}

#[test]
fn ids_of_other_shapes_name_nothing() {
    for id in ["", "/", "arn:aws:ec2:eu-west-1:1:instance/i-1", "/providers/Microsoft.Management/x", "//s1"] {
        assert_eq!(NamedScope::parse(id), NamedScope::default(), "{id}");
    }
}

#[test]
fn locations_normalise_to_lower_case_without_spaces() {
    assert_eq!(normalise_location("East US 2"), "eastus2");
}

use serde_json::json;

const VM_ID: &str = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1";

fn record(body: serde_json::Value) -> InventoryRecord {
    serde_json::from_value(body).unwrap_or_else(|e| panic!("test record: {e}"))
}

fn vm(extra: serde_json::Value) -> InventoryRecord {
    let mut body = json!({"id": VM_ID, "name": "vm1", "type": "Microsoft.Compute/virtualMachines", "location": "eastus"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    record(body)
}

fn faults(record: InventoryRecord) -> Vec<FieldFault> {
    match record.normalise() {
        Ok(snapshot) => panic!("expected faults, got {snapshot:?}"),
        Err(faults) => faults,
    }
}

fn pointers(faults: &[FieldFault]) -> Vec<&str> {
    faults.iter().map(|f| f.pointer.as_str()).collect()
}

#[test]
fn an_azure_record_takes_subscription_and_group_from_its_id() {
    let snapshot = vm(json!({})).normalise().expect("valid");
    assert_eq!((snapshot.subscription_id.as_str(), snapshot.resource_group.as_str()), ("s1", "rg1"));
    assert_eq!(snapshot.cloud_id, VM_ID);
    assert_eq!(snapshot.resource_type, "Microsoft.Compute/virtualMachines");
}

#[test]
fn fields_that_agree_with_the_id_in_another_case_are_accepted_and_the_ids_spelling_kept() {
    let snapshot = vm(json!({"subscription_id": "S1", "resource_group": "RG1"})).normalise().expect("valid");
    assert_eq!((snapshot.subscription_id.as_str(), snapshot.resource_group.as_str()), ("s1", "rg1"));
}

#[test]
fn fields_that_contradict_the_id_are_faults() {
    let faults = faults(vm(json!({"subscription_id": "s2", "resource_group": "rg2"})));
    assert_eq!(pointers(&faults), ["/subscription_id", "/resource_group"]);
    assert_eq!(faults[0].message, "the id names subscription 's1', not 's2'");
}

#[test]
fn a_record_whose_id_names_nothing_needs_subscription_and_group() {
    let faults =
        faults(record(json!({"id": "i-1", "name": "web", "type": "AWS::EC2::Instance", "location": ""})));
    assert_eq!(pointers(&faults), ["/subscription_id", "/resource_group"]);

    let snapshot = record(json!({"id": "i-1", "name": "web", "type": "AWS::EC2::Instance", "location": "",
        "subscription_id": "123456789012", "resource_group": "prod"}))
    .normalise()
    .expect("valid");
    assert_eq!(
        (snapshot.subscription_id.as_str(), snapshot.resource_group.as_str()),
        ("123456789012", "prod")
    );
}

#[test]
fn blank_optional_fields_count_as_absent() {
    let snapshot =
        vm(json!({"subscription_id": "", "resource_group": " ", "kind": ""})).normalise().expect("valid");
    assert_eq!(snapshot.resource_group, "rg1");
    assert_eq!(snapshot.kind, None);
}

#[test]
fn blank_id_name_and_type_are_faults() {
    let faults = faults(record(json!({"id": "", "name": " ", "type": "", "location": "eastus",
        "subscription_id": "s1", "resource_group": "rg1"})));
    assert_eq!(pointers(&faults), ["/id", "/name", "/type"]);
    assert!(faults.iter().all(|f| f.message == "must not be empty"));
}

#[test]
fn a_resource_group_is_its_own_group_in_either_type_spelling() {
    for resource_type in
        ["Microsoft.Resources/resourceGroups", "microsoft.resources/subscriptions/resourcegroups"]
    {
        let snapshot = record(json!({"id": "/subscriptions/s1/resourceGroups/rg1", "name": "rg1",
            "type": resource_type, "location": "westeurope"}))
        .normalise()
        .expect("valid");
        assert_eq!((snapshot.subscription_id.as_str(), snapshot.resource_group.as_str()), ("s1", "rg1"));
    }
}

#[test]
fn a_resource_group_without_an_azure_id_is_the_group_of_its_name() {
    let snapshot =
        record(json!({"id": "group:rg1", "name": "rg1", "type": "Microsoft.Resources/resourceGroups",
        "location": "westeurope", "subscription_id": "s1"}))
        .normalise()
        .expect("valid");
    assert_eq!(snapshot.resource_group, "rg1");
}

#[test]
fn a_resource_group_named_otherwise_than_the_group_of_its_id_is_a_fault() {
    let faults = faults(record(json!({"id": "/subscriptions/s1/resourceGroups/rg1", "name": "rg2",
        "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"})));
    assert_eq!(pointers(&faults), ["/name"]);
}

#[test]
fn a_subscription_is_in_no_resource_group() {
    let snapshot = record(json!({"id": "/subscriptions/s1", "name": "Production",
        "type": "Microsoft.Resources/subscriptions", "location": ""}))
    .normalise()
    .expect("valid");
    assert_eq!((snapshot.subscription_id.as_str(), snapshot.resource_group.as_str()), ("s1", ""));

    let faults = faults(record(json!({"id": "/subscriptions/s1", "name": "Production",
        "type": "Microsoft.Resources/subscriptions", "location": "", "resource_group": "rg1"})));
    assert_eq!(pointers(&faults), ["/resource_group"]);
}

#[test]
fn missing_tags_and_properties_read_as_empty() {
    let snapshot = vm(json!({"properties": null})).normalise().expect("valid");
    assert!(snapshot.tags.is_empty() && snapshot.properties.is_empty());
}

#[test]
fn unknown_fields_in_a_record_are_refused() {
    let body = json!({"id": VM_ID, "name": "vm1", "type": "t", "location": "", "sku": {}});
    assert!(serde_json::from_value::<InventoryRecord>(body).is_err());
}

#[test]
fn a_snapshot_reads_as_a_rule_engine_record() {
    let snapshot = vm(json!({"tags": {"env": "prod"}, "properties": {"x": 1}})).normalise().expect("valid");
    let resource = snapshot.to_rule_resource();
    assert_eq!(resource.id, VM_ID);
    assert_eq!(resource.resource_group.as_deref(), Some("rg1"));
    assert_eq!(resource.properties, json!({"x": 1}));
    assert_eq!(resource.tags, snapshot.tags);
}

#[test]
fn a_snapshot_without_the_fields_every_resource_has_names_them() {
    let mut snapshot = vm(json!({})).normalise().expect("valid");
    assert!(snapshot.faults().is_empty());
    snapshot.name.clear();
    snapshot.subscription_id.clear();
    assert_eq!(pointers(&snapshot.faults()), ["/name", "/subscription_id"]);
}
