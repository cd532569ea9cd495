//! Property tests of the resource and compliance aggregates over random command sequences:
//! a decision that succeeds leads (by folding its events) to the state the command
//! described, repeating it changes nothing (or is refused, where that is the design), and
//! every event it answers is storable. The policy aggregate's are in
//! `aggregate_policy_properties.rs`.

mod aggregate_support;

use aggregate_support::check_storable;
use cortex_command::aggregate::resource::normalise_location;
use cortex_command::aggregate::{
    Aggregate, ComplianceCommand, DomainError, EvaluationBody, InventoryRecord, ResourceCommand,
    ResourceCompliance, ResourceSnapshot, ResourceState,
};
use cortex_events::DomainEvent;
use cortex_events::catalog::ComplianceState;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum ResourceStep {
    Register(Box<InventoryRecord>),
    Delete,
}

/// A JSON value of the shapes resource properties have.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        select(vec!["TLS1_2", "tls1_2", ""]).prop_map(Value::from),
        Just(json!(1.5)),
        Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            btree_map(select(vec!["x", "y"]), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// Reports of one resource as scanners might send them over time: an Azure VM (whose id
/// fixes its subscription and group, in varying letter case) or, when `azure` is false, a
/// resource of another cloud whose subscription and group come from fields and may move.
fn record(azure: bool) -> impl Strategy<Value = InventoryRecord> {
    let where_ = if azure {
        (select(vec!["s1", "S1"]), select(vec!["rg1", "RG1"]), any::<(bool, bool)>())
            .prop_map(|(sub, rg, (with_sub, with_rg))| {
                let id = format!(
                    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm1"
                );
                (id, with_sub.then(|| sub.to_lowercase()), with_rg.then(|| rg.to_uppercase()))
            })
            .boxed()
    } else {
        (
            select(vec!["arn:aws:ec2::1:instance/i-1", "ARN:AWS:EC2::1:INSTANCE/I-1"]),
            select(vec!["a1", "A1", "a2"]),
            select(vec!["prod", "Prod", "test"]),
        )
            .prop_map(|(id, sub, rg)| (id.to_owned(), Some(sub.to_owned()), Some(rg.to_owned())))
            .boxed()
    };
    let tags = proptest::option::of(btree_map(
        select(vec!["env", "Env", "owner"]).prop_map(str::to_owned),
        select(vec!["prod", "dev", ""]).prop_map(str::to_owned),
        0..3,
    ));
    let properties = proptest::option::of(
        btree_map(select(vec!["a", "b"]), value(), 0..3)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<String, Value>>()),
    );
    let resource_type = prop_oneof![
        4 => Just("Microsoft.Compute/virtualMachines"),
        1 => Just("microsoft.compute/VIRTUALMACHINES"),
        1 => Just("Microsoft.Compute/disks"),
    ];
    (
        where_,
        select(vec!["vm1", "VM1", "web"]),
        resource_type,
        select(vec!["eastus2", "East US 2", "westeurope", "West Europe", ""]),
        proptest::option::of(select(vec!["", "a", "b"])),
        tags,
        properties,
    )
        .prop_map(
            |(
                (id, subscription_id, resource_group),
                name,
                resource_type,
                location,
                kind,
                tags,
                properties,
            )| {
                InventoryRecord {
                    id,
                    name: name.into(),
                    resource_type: resource_type.into(),
                    location: location.into(),
                    kind: kind.map(Into::into),
                    tags,
                    properties,
                    subscription_id,
                    resource_group,
                }
            },
        )
}

fn resource_steps() -> impl Strategy<Value = Vec<ResourceStep>> {
    any::<bool>().prop_flat_map(|azure| {
        vec(
            prop_oneof![6 => record(azure).prop_map(|r| ResourceStep::Register(Box::new(r))), 1 => Just(ResourceStep::Delete)],
            1..30,
        )
    })
}

/// The snapshot as recorded equals the one submitted up to the documented normalisations:
/// letter case of id, type, subscription and group; spelling of the location.
fn same_resource(recorded: &ResourceSnapshot, submitted: &ResourceSnapshot) -> bool {
    let ci = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
    ci(&recorded.cloud_id, &submitted.cloud_id)
        && ci(&recorded.resource_type, &submitted.resource_type)
        && ci(&recorded.subscription_id, &submitted.subscription_id)
        && ci(&recorded.resource_group, &submitted.resource_group)
        && normalise_location(&recorded.location) == normalise_location(&submitted.location)
        && recorded.name == submitted.name
        && recorded.kind == submitted.kind
        && recorded.tags == submitted.tags
        && recorded.properties == submitted.properties
}

/// Applies a decision's events, checking them on the way.
fn apply<A: Aggregate>(
    state: A,
    events: &[DomainEvent],
    history: &mut Vec<DomainEvent>,
) -> Result<A, TestCaseError> {
    check_storable(events)?;
    history.extend_from_slice(events);
    Ok(events.iter().fold(state, |state, event| state.evolve(event)))
}

proptest! {
    #[test]
    fn resource_decisions_reach_the_reported_state_and_repeat_as_no_change(steps in resource_steps()) {
        let resource_id = Uuid::from_u128(0x5e);
        let mut state = ResourceState::default();
        let mut history = Vec::new();
        for step in steps {
            match step {
                ResourceStep::Register(record) => {
                    let snapshot = record.normalise().map_err(|f| TestCaseError::fail(format!("{f:?}")))?;
                    let command = ResourceCommand::Register { resource_id, snapshot: snapshot.clone() };
                    let type_changes = state.snapshot().is_some_and(|s| {
                        s.resource_type.to_lowercase() != snapshot.resource_type.to_lowercase()
                    });
                    match state.decide(&command) {
                        Err(DomainError::Conflict(_)) if type_changes => continue,
                        Err(error) => return Err(TestCaseError::fail(format!("refused: {error:?}"))),
                        Ok(_) if type_changes => return Err(TestCaseError::fail("a type change was accepted")),
                        Ok(events) => {
                            let was_active = state.is_active();
                            state = apply(state, &events, &mut history)?;
                            let recorded = state.snapshot().ok_or_else(|| TestCaseError::fail("not active"))?;
                            if was_active {
                                prop_assert!(same_resource(recorded, &snapshot), "{recorded:?} vs {snapshot:?}");
                            } else {
                                prop_assert_eq!(recorded, &snapshot);
                            }
                            prop_assert_eq!(state.decide(&command), Ok(vec![]), "repeating changed something");
                        }
                    }
                }
                ResourceStep::Delete => {
                    let command = ResourceCommand::Delete { resource_id };
                    let not_found = Err(DomainError::NotFound { what: "resource" });
                    if !state.is_active() {
                        prop_assert_eq!(state.decide(&command), not_found);
                        continue;
                    }
                    let last = state.snapshot().cloned();
                    let events = state.decide(&command).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    state = apply(state, &events, &mut history)?;
                    prop_assert!(state.is_deleted());
                    prop_assert_eq!(state.last_snapshot().cloned(), last);
                    prop_assert_eq!(state.decide(&command), not_found);
                }
            }
        }
        prop_assert_eq!(ResourceState::fold(&history), state, "folding the history differs");
    }

    #[test]
    fn external_results_record_each_new_verdict_once(
        steps in vec((
            select(vec![1u128, 2]),
            select(vec!["defender", "Defender", "prowler", "policycortex", ""]),
            select(vec![ComplianceState::Compliant, ComplianceState::NonCompliant, ComplianceState::Exempt,
                ComplianceState::NotApplicable, ComplianceState::Error]),
            proptest::option::of(select(vec!["a", "b"])),
            proptest::option::of(0u64..5),
            proptest::option::of(0u64..5),
        ), 1..30)
    ) {
        let mut state = ResourceCompliance::default();
        let mut history = Vec::new();
        for (policy, source, verdict, reason, policy_revision, resource_revision) in steps {
            let body = EvaluationBody {
                resource_id: Uuid::from_u128(0x5e),
                policy_id: Uuid::from_u128(policy),
                state: verdict,
                reason: reason.map(Into::into),
                source: source.into(),
            };
            let command = ComplianceCommand::RecordExternal { body: body.clone(), policy_revision, resource_revision };
            if source.is_empty() || source.eq_ignore_ascii_case("policycortex") {
                prop_assert!(matches!(state.decide(&command), Err(DomainError::Invalid(_))));
                continue;
            }
            let before = state.latest(body.policy_id, source).map(|l| (l.state, l.reason.clone()));
            let events = state.decide(&command).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(events.is_empty(), before == Some((verdict, body.reason.clone())));
            state = apply(state, &events, &mut history)?;
            let latest = state.latest(body.policy_id, source).map(|l| (l.state, l.reason.clone()));
            prop_assert_eq!(latest, Some((verdict, body.reason.clone())));
            prop_assert_eq!(state.decide(&command), Ok(vec![]), "repeating changed something");
        }
        prop_assert_eq!(ResourceCompliance::fold(&history), state, "folding the history differs");
    }
}
