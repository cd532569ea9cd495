//! The JSON Schemas in `schemas/events/` and the Rust event types never drift apart.

use std::collections::{BTreeSet, HashMap};

use cortex_events::{
    Catalog, DomainEvent, Provenance,
    catalog::{EVENT_TYPES, examples},
};
use serde_json::Value;
use uuid::Uuid;

fn schema_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

fn load_schema(event_type: &str, version: u32) -> Value {
    let path = schema_dir().join(format!("{event_type}.v{version}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

#[test]
fn every_catalog_type_has_exactly_one_schema_file_per_version_and_no_other_files_exist() {
    let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = EVENT_TYPES.iter().map(|(t, v)| format!("{t}.v{v}.json")).collect();
    assert_eq!(files, expected);
    for (t, v) in EVENT_TYPES {
        let schema = load_schema(t, *v);
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{t}");
        assert_eq!(schema["additionalProperties"], false, "{t} must refuse fields the type does not know");
    }
}

#[test]
fn every_example_of_every_type_validates_against_its_schema_and_round_trips() {
    let catalog = Catalog::standard().unwrap();
    let examples = examples();
    let covered: BTreeSet<&str> = examples.iter().map(DomainEvent::event_type).collect();
    assert_eq!(covered.len(), EVENT_TYPES.len(), "an example of every type");
    for e in examples {
        let new = e.clone().into_new_event(Provenance::system(Uuid::now_v7(), "test"));
        catalog.validate(&new).unwrap_or_else(|err| panic!("{}: {err}", e.event_type()));
        let back = DomainEvent::decode(e.event_type(), e.schema_version(), &new.data).unwrap();
        assert_eq!(back, e, "round trip of {}", e.event_type());
    }
}

/// For every type: the fields the Rust type cannot do without are exactly the schema's
/// `required`, and every property of the schema is a field some example sets.
#[test]
fn a_types_required_fields_are_its_schemas_required_fields_and_nothing_more() {
    let mut by_type: HashMap<&str, Vec<DomainEvent>> = HashMap::new();
    for e in examples() {
        by_type.entry(e.event_type()).or_default().push(e);
    }
    for (t, v) in EVENT_TYPES {
        let schema = load_schema(t, *v);
        let schema_required = string_set(&schema["required"]);
        let properties: BTreeSet<String> =
            schema["properties"].as_object().unwrap().keys().cloned().collect();
        let mut set_somewhere = BTreeSet::new();
        let mut type_required = BTreeSet::new();
        for example in &by_type[t] {
            let data = example.to_data();
            let fields = data.as_object().unwrap();
            set_somewhere.extend(fields.keys().cloned());
            for key in fields.keys() {
                let mut without = fields.clone();
                without.remove(key);
                if DomainEvent::decode(t, *v, &Value::Object(without)).is_err() {
                    type_required.insert(key.clone());
                }
            }
        }
        assert_eq!(type_required, schema_required, "{t}: required fields differ");
        assert_eq!(set_somewhere, properties, "{t}: examples must set every schema property, and only those");
    }
}

#[test]
fn data_the_schema_refuses_is_refused_by_the_type_too() {
    // A wrong type on a required field fails both.
    for e in examples() {
        let mut data = e.to_data();
        let key = data.as_object().unwrap().keys().next().unwrap().clone();
        data[&key] = Value::Array(vec![]);
        let new = cortex_events::NewEvent::new(
            e.event_type(),
            1,
            data.clone(),
            Provenance::system(Uuid::nil(), "t"),
        );
        assert!(
            Catalog::standard().unwrap().validate(&new).is_err(),
            "{}: schema accepts /{key} = []",
            e.event_type()
        );
        assert!(
            DomainEvent::decode(e.event_type(), 1, &data).is_err(),
            "{}: type accepts /{key} = []",
            e.event_type()
        );
    }
}
