//! Given/when/then of every resource decision.

use cortex_events::catalog::{ResourceRegistered, Tags};
use serde_json::{Map, Value, json};

use super::*;
use crate::aggregate::FieldFault;
use crate::aggregate::testing::given;

const VM_ID: &str = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1";

fn id() -> Uuid {
    Uuid::from_u128(0x5e)
}

fn vm() -> ResourceSnapshot {
    ResourceSnapshot {
        cloud_id: VM_ID.into(),
        name: "vm1".into(),
        resource_type: "Microsoft.Compute/virtualMachines".into(),
        location: "eastus2".into(),
        kind: None,
        tags: Tags::from([("env".into(), "prod".into())]),
        properties: object(json!({"osType": "Linux"})),
        subscription_id: "s1".into(),
        resource_group: "rg1".into(),
    }
}

/// A resource of another cloud: its id names no subscription or group, so both may move.
fn instance() -> ResourceSnapshot {
    ResourceSnapshot {
        cloud_id: "arn:aws:ec2:eu-west-1:123456789012:instance/i-1".into(),
        resource_type: "AWS::EC2::Instance".into(),
        subscription_id: "123456789012".into(),
        resource_group: "prod".into(),
        ..vm()
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn registered(snapshot: &ResourceSnapshot) -> DomainEvent {
    snapshot.registered(id()).into()
}

fn register(snapshot: ResourceSnapshot) -> ResourceCommand {
    ResourceCommand::Register { resource_id: id(), snapshot }
}

#[test]
fn registering_a_new_resource_records_it_whole() {
    let state = given::<ResourceState>([]).when(register(vm())).then([registered(&vm())]);
    assert_eq!(state.snapshot(), Some(&vm()));
}

#[test]
fn registering_an_unchanged_record_appends_nothing() {
    given::<ResourceState>([registered(&vm())]).when(register(vm())).then_nothing();
}

#[test]
fn new_tags_are_recorded_with_the_previous_tags() {
    let new = ResourceSnapshot { tags: Tags::from([("env".into(), "dev".into())]), ..vm() };
    let state = given::<ResourceState>([registered(&vm())])
        .when(register(new.clone()))
        .then([ResourceTagsChanged { resource_id: id(), tags: new.tags.clone(), previous_tags: vm().tags }
            .into()]);
    assert_eq!(state.snapshot(), Some(&new));
}

#[test]
fn new_properties_are_recorded_with_the_previous_properties_and_kinds() {
    let new = ResourceSnapshot { properties: object(json!({"osType": "Windows"})), ..vm() };
    given::<ResourceState>([registered(&vm())]).when(register(new.clone())).then([
        ResourcePropertiesChanged {
            resource_id: id(),
            properties: new.properties,
            previous_properties: vm().properties,
            kind: None,
            previous_kind: None,
        }
        .into(),
    ]);
}

#[test]
fn a_new_kind_alone_is_a_properties_change() {
    let old = ResourceSnapshot { kind: Some("StorageV2".into()), ..vm() };
    let new = ResourceSnapshot { kind: None, ..vm() };
    given::<ResourceState>([registered(&old)]).when(register(new)).then([ResourcePropertiesChanged {
        resource_id: id(),
        properties: vm().properties,
        previous_properties: vm().properties,
        kind: None,
        previous_kind: Some("StorageV2".into()),
    }
    .into()]);
}

#[test]
fn a_location_in_another_spelling_is_not_a_move() {
    let new = ResourceSnapshot { location: "East US 2".into(), ..vm() };
    let state = given::<ResourceState>([registered(&vm())]).when(register(new)).then([]);
    assert_eq!(state.snapshot().map(|s| s.location.as_str()), Some("eastus2"));
}

#[test]
fn a_subscription_or_group_differing_only_in_case_is_not_a_move() {
    let new = ResourceSnapshot { subscription_id: "S1".into(), resource_group: "RG1".into(), ..vm() };
    given::<ResourceState>([registered(&vm())]).when(register(new)).then_nothing();
}

#[test]
fn a_new_location_is_a_move_that_keeps_the_spelling_of_what_did_not_move() {
    let new = ResourceSnapshot { location: "West Europe".into(), resource_group: "RG1".into(), ..vm() };
    given::<ResourceState>([registered(&vm())]).when(register(new)).then([ResourceMoved {
        resource_id: id(),
        subscription_id: "s1".into(),
        resource_group: "rg1".into(),
        location: "West Europe".into(),
        previous_subscription_id: "s1".into(),
        previous_resource_group: "rg1".into(),
        previous_location: "eastus2".into(),
    }
    .into()]);
}

#[test]
fn a_new_subscription_and_group_are_a_move() {
    let new = ResourceSnapshot {
        subscription_id: "210987654321".into(),
        resource_group: "test".into(),
        ..instance()
    };
    let state =
        given::<ResourceState>([registered(&instance())]).when(register(new.clone())).then([ResourceMoved {
            resource_id: id(),
            subscription_id: "210987654321".into(),
            resource_group: "test".into(),
            location: "eastus2".into(),
            previous_subscription_id: "123456789012".into(),
            previous_resource_group: "prod".into(),
            previous_location: "eastus2".into(),
        }
        .into()]);
    assert_eq!(state.snapshot(), Some(&new));
}

#[test]
fn a_new_name_is_a_rename_even_in_letter_case_alone() {
    for name in ["vm2", "VM1"] {
        let new = ResourceSnapshot { name: name.into(), ..vm() };
        given::<ResourceState>([registered(&vm())]).when(register(new)).then([ResourceRenamed {
            resource_id: id(),
            name: name.into(),
            previous_name: "vm1".into(),
        }
        .into()]);
    }
}

#[test]
fn several_changes_come_in_a_fixed_order() {
    let new = ResourceSnapshot {
        name: "web".into(),
        location: "westus".into(),
        tags: Tags::new(),
        kind: Some("k".into()),
        ..instance()
    };
    let events =
        given::<ResourceState>([registered(&instance())]).when(register(new)).result().expect("decides");
    let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        types,
        ["ResourceRenamed", "ResourceMoved", "ResourceTagsChanged", "ResourcePropertiesChanged"]
    );
}

#[test]
fn a_new_resource_type_is_a_conflict() {
    let new = ResourceSnapshot { resource_type: "Microsoft.Compute/disks".into(), ..vm() };
    let error = given::<ResourceState>([registered(&vm())]).when(register(new)).error();
    assert_eq!(
        error,
        DomainError::Conflict(
            "the resource type cannot change ('Microsoft.Compute/virtualMachines' to 'Microsoft.Compute/disks'); \
             delete and register again"
                .into()
        )
    );
}

#[test]
fn a_type_or_id_differing_only_in_case_changes_nothing() {
    let new = ResourceSnapshot {
        resource_type: "microsoft.compute/VIRTUALMACHINES".into(),
        cloud_id: VM_ID.to_uppercase(),
        ..vm()
    };
    let state = given::<ResourceState>([registered(&vm())]).when(register(new)).then([]);
    assert_eq!(state.snapshot(), Some(&vm()));
}

#[test]
fn a_record_of_another_resource_is_a_conflict() {
    let error = given::<ResourceState>([registered(&vm())]).when(register(instance())).error();
    assert!(matches!(error, DomainError::Conflict(message) if message.contains("not this resource's id")));
}

#[test]
fn a_deleted_resource_registers_again_even_with_another_type() {
    let new = ResourceSnapshot { resource_type: "Microsoft.Compute/disks".into(), ..vm() };
    given::<ResourceState>([registered(&vm()), deleted(&vm())])
        .when(register(new.clone()))
        .then([registered(&new)]);
}

#[test]
fn a_snapshot_without_a_name_is_invalid() {
    let new = ResourceSnapshot { name: String::new(), ..vm() };
    given::<ResourceState>([])
        .when(register(new))
        .then_error(DomainError::Invalid(vec![FieldFault::new("/name", "must not be empty")]));
}

fn deleted(snapshot: &ResourceSnapshot) -> DomainEvent {
    ResourceDeleted {
        resource_id: id(),
        cloud_id: snapshot.cloud_id.clone(),
        name: snapshot.name.clone(),
        resource_type: snapshot.resource_type.clone(),
    }
    .into()
}

#[test]
fn deleting_an_active_resource_records_what_it_was() {
    let state = given::<ResourceState>([registered(&vm())])
        .when(ResourceCommand::Delete { resource_id: id() })
        .then([deleted(&vm())]);
    assert!(state.is_deleted() && !state.is_active());
    assert_eq!(state.snapshot(), None);
    assert_eq!(state.last_snapshot(), Some(&vm()));
}

#[test]
fn deleting_an_unknown_or_deleted_resource_finds_nothing() {
    let not_found = DomainError::NotFound { what: "resource" };
    given::<ResourceState>([])
        .when(ResourceCommand::Delete { resource_id: id() })
        .then_error(not_found.clone());
    given::<ResourceState>([registered(&vm()), deleted(&vm())])
        .when(ResourceCommand::Delete { resource_id: id() })
        .then_error(not_found);
}

#[test]
fn folding_a_history_applies_each_change_and_ignores_other_events() {
    let history: Vec<DomainEvent> = vec![
        registered(&vm()),
        ResourceRenamed { resource_id: id(), name: "vm2".into(), previous_name: "vm1".into() }.into(),
        cortex_events::catalog::PolicyEnabled { policy_id: id() }.into(),
        ResourceTagsChanged { resource_id: id(), tags: Tags::new(), previous_tags: vm().tags }.into(),
    ];
    let state = ResourceState::fold(&history);
    assert_eq!(state.snapshot(), Some(&ResourceSnapshot { name: "vm2".into(), tags: Tags::new(), ..vm() }));
}

#[test]
fn a_registered_event_round_trips_through_its_snapshot() {
    let event: ResourceRegistered = vm().registered(id());
    assert_eq!(ResourceSnapshot::from_registered(&event), vm());
}
