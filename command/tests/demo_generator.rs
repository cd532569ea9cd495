//! The demo generator: deterministic, shaped as the command API wants, realistic enough
//! that the demo policies find both compliant and non-compliant resources.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cortex_command::demo::{
    Estate, EstateConfig, InventoryRecord, Operation, Operations, RESOURCE_GROUP_TYPE, policies,
    policies::{DISTINCT_POLICIES, GENERATED_TYPES},
};
use cortex_command::rules::{ComplianceState, Policy, Resource, ResourceContext, ResourceGroupInfo};
use serde_json::Value;

fn estate(seed: u64, n: usize) -> Vec<InventoryRecord> {
    Estate::new(&EstateConfig::new(seed, n)).collect()
}

fn schema(file: &str) -> jsonschema::Validator {
    let path = format!("{}/../schemas/commands/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_same_seed_gives_the_same_estate_and_another_seed_a_different_one() {
    assert_eq!(estate(42, 700), estate(42, 700));
    assert_ne!(estate(42, 700), estate(43, 700));
    assert_eq!(policies(20), policies(20));
}

#[test]
fn a_smaller_estate_is_a_prefix_of_a_larger_one_with_the_same_seed() {
    let large = estate(9, 900);
    assert_eq!(estate(9, 333), large[..333]);
}

#[test]
fn the_estate_has_exactly_the_requested_number_of_records() {
    for n in [0, 1, 2, 7, 100, 1_234] {
        let generator = Estate::new(&EstateConfig::new(5, n));
        assert_eq!(generator.len(), n);
        assert_eq!(generator.count(), n, "n = {n}");
    }
}

#[test]
fn every_record_has_only_the_fields_the_api_accepts() {
    let validator = schema("InventoryRecord.json");
    let allowed: BTreeSet<&str> = ["id", "name", "type", "location", "kind", "tags", "properties"].into();
    for record in estate(3, 2_000) {
        let json = record.to_json();
        let fields: BTreeSet<&str> =
            json.as_object().into_iter().flat_map(|m| m.keys()).map(String::as_str).collect();
        assert!(fields.is_subset(&allowed), "{fields:?}");
        for required in ["id", "name", "type", "location"] {
            assert!(fields.contains(required), "{required} missing in {json}");
        }
        let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {json}");
    }
}

#[test]
fn ids_name_their_subscription_and_group_and_groups_precede_their_members() {
    let generator = Estate::new(&EstateConfig::new(11, 3_000));
    let subscriptions: BTreeSet<String> = generator.subscriptions().iter().cloned().collect();
    let mut groups = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for record in generator {
        let parts: Vec<&str> = record.id.split('/').collect();
        assert!(parts.len() >= 5 && parts[0].is_empty(), "{}", record.id);
        assert_eq!((parts[1], parts[3]), ("subscriptions", "resourceGroups"), "{}", record.id);
        assert!(uuid::Uuid::parse_str(parts[2]).is_ok() && subscriptions.contains(parts[2]), "{}", record.id);
        assert_eq!(record.id_subscription(), Some(parts[2]));
        assert_eq!(record.id_resource_group(), Some(parts[4]));
        let group_id = format!("/subscriptions/{}/resourceGroups/{}", parts[2], parts[4]).to_lowercase();
        if record.resource_type == RESOURCE_GROUP_TYPE {
            assert_eq!(parts.len(), 5, "{}", record.id);
            assert_eq!(record.name, parts[4]);
            assert!(groups.insert(group_id), "group {} twice", record.id);
        } else {
            assert_eq!(parts.get(5), Some(&"providers"), "{}", record.id);
            assert_eq!(parts.last(), Some(&record.name.as_str()), "{}", record.id);
            assert!(groups.contains(&group_id), "{} comes before its group", record.id);
        }
        assert!(ids.insert(record.id.to_lowercase()), "{} twice", record.id);
    }
    assert!(groups.len() > 100, "{} groups", groups.len());
}

#[test]
fn every_resource_type_appears_from_a_hundred_records() {
    for seed in 0..20 {
        let types: BTreeSet<String> = estate(seed, 100).into_iter().map(|r| r.resource_type).collect();
        let expected: BTreeSet<String> = GENERATED_TYPES.iter().map(|t| (*t).to_owned()).collect();
        assert_eq!(types, expected, "seed {seed}");
    }
}

#[test]
fn names_respect_azure_limits_for_globally_unique_names() {
    for record in estate(2, 5_000) {
        match record.resource_type.as_str() {
            "Microsoft.Storage/storageAccounts" => {
                assert!(record.name.len() <= 24, "{}", record.name);
                assert!(
                    record.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                    "{}",
                    record.name
                );
            }
            "Microsoft.KeyVault/vaults" => assert!(record.name.len() <= 24, "{}", record.name),
            _ => {}
        }
    }
}

#[test]
fn policy_bodies_are_valid_compile_and_have_distinct_names() {
    let validator = schema("PolicyBody.json");
    let bodies = policies(50);
    assert_eq!(bodies.len(), 50);
    const { assert!(DISTINCT_POLICIES >= 40) };
    assert_eq!(policies(12)[..], bodies[..12]);
    let names: BTreeSet<&str> = bodies.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names.len(), bodies.len(), "{names:?}");
    for body in &bodies {
        let json = body.to_json();
        let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", body.name);
        if let Err(e) = Policy::compile(&body.definition_input()) {
            panic!("{} does not compile: {e}", body.name);
        }
    }
}

/// Per policy: (name, compliant, non-compliant, error) over the estate; and the fraction of
/// resources with at least one applicable policy that are non-compliant with one or more.
fn evaluate(n: usize, m: usize) -> (Vec<(String, usize, usize, usize)>, f64) {
    let compiled: Vec<_> = policies(m)
        .into_iter()
        .map(|b| {
            let c = Policy::compile(&b.definition_input()).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            (b.name, c)
        })
        .collect();
    let mut counts: Vec<(String, usize, usize, usize)> =
        compiled.iter().map(|(n, _)| (n.clone(), 0, 0, 0)).collect();
    let mut groups: HashMap<String, ResourceGroupInfo> = HashMap::new();
    let (mut applicable, mut non_compliant) = (0, 0);
    for record in estate(42, n) {
        let resource: Resource = serde_json::from_value(record.to_json()).unwrap_or_else(|e| panic!("{e}"));
        let group_key = format!(
            "{}/{}",
            record.id_subscription().unwrap_or(""),
            record.id_resource_group().unwrap_or("")
        );
        if record.is_resource_group() {
            let info = ResourceGroupInfo {
                name: record.name.clone(),
                location: Some(record.location.clone()),
                tags: record.tags.clone().unwrap_or_default(),
            };
            groups.insert(group_key.clone(), info);
        }
        let ctx = ResourceContext::new(&resource, groups.get(&group_key), None);
        let states: Vec<ComplianceState> = compiled.iter().map(|(_, p)| p.evaluate(&ctx).state).collect();
        for (count, state) in counts.iter_mut().zip(&states) {
            match state {
                ComplianceState::Compliant => count.1 += 1,
                ComplianceState::NonCompliant => count.2 += 1,
                ComplianceState::Error => count.3 += 1,
                _ => {}
            }
        }
        if states.iter().any(|s| matches!(s, ComplianceState::Compliant | ComplianceState::NonCompliant)) {
            applicable += 1;
            non_compliant += usize::from(states.contains(&ComplianceState::NonCompliant));
        }
    }
    (counts, non_compliant as f64 / applicable.max(1) as f64)
}

#[test]
fn the_default_policies_find_a_realistic_share_of_non_compliance() {
    let (counts, fraction) = evaluate(1_000, 12);
    for (name, compliant, non_compliant, errors) in &counts {
        println!("{name}: {compliant} compliant, {non_compliant} non-compliant, {errors} errors");
        assert_eq!(*errors, 0, "{name}");
    }
    println!("non-compliant resources: {:.1}%", fraction * 100.0);
    let mixed = counts.iter().filter(|(_, c, n, _)| *c > 0 && *n > 0).count();
    assert!(mixed + 1 >= counts.len(), "{mixed} of {} find both states: {counts:?}", counts.len());
    assert!((0.05..=0.5).contains(&fraction), "{fraction}");
}

#[test]
fn most_catalogue_policies_find_both_compliant_and_non_compliant_resources() {
    let (counts, fraction) = evaluate(2_000, DISTINCT_POLICIES);
    for (name, compliant, non_compliant, errors) in &counts {
        println!("{name}: {compliant} compliant, {non_compliant} non-compliant, {errors} errors");
        assert_eq!(*errors, 0, "{name}");
    }
    println!("non-compliant resources: {:.1}%", fraction * 100.0);
    let mixed = counts.iter().filter(|(_, c, n, _)| *c > 0 && *n > 0).count();
    assert!(mixed * 10 >= counts.len() * 8, "{mixed} of {}: {counts:?}", counts.len());
}

#[test]
fn operations_register_the_estate_then_change_and_delete_it_deterministically() {
    let ops: Vec<Operation> = Operations::new(8, 2_500, 3).collect();
    assert_eq!(ops, Operations::new(8, 2_500, 3).collect::<Vec<_>>());
    assert_ne!(ops, Operations::new(9, 2_500, 3).collect::<Vec<_>>());

    let originals: HashMap<String, InventoryRecord> =
        estate(8, 2_500).into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut current: BTreeMap<String, InventoryRecord> = BTreeMap::new();
    let (mut registered, mut updates, mut deletes) = (0, 0, 0);
    for op in &ops {
        match op {
            Operation::Register(record) => match current.insert(record.id.clone(), record.clone()) {
                None => {
                    assert_eq!(Some(record), originals.get(&record.id), "first version is the estate's");
                    registered += 1;
                }
                Some(previous) => {
                    assert_ne!(&previous, record, "an update changes something");
                    updates += 1;
                }
            },
            Operation::Delete(id) => {
                let gone = current.remove(id).unwrap_or_else(|| panic!("{id} deleted while not registered"));
                assert!(!gone.is_resource_group());
                deletes += 1;
            }
        }
    }
    assert_eq!((registered, updates), (2_500, 7_500));
    assert!((10..=150).contains(&deletes), "{deletes}");
}

#[test]
fn operations_start_with_the_estate_in_order() {
    let first: Vec<InventoryRecord> = Operations::new(4, 300, 2)
        .take(300)
        .map(|op| match op {
            Operation::Register(record) => record,
            Operation::Delete(id) => panic!("delete of {id} before the estate is registered"),
        })
        .collect();
    assert_eq!(first, estate(4, 300));
}
