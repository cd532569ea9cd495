//! `cortex audit history` (DESIGN §9, issue 23): every event of an entity's streams, oldest
//! first, each with who, when, why and what changed field by field.
//!
//! What changed is found by replay, not only from the event's own `previous_*` fields: the
//! streams are folded into a view of the entity (one value per field), and each event's
//! fields are compared with the view as the events before it left it. That gives every event
//! type the same treatment, registrations included (every field from `null`, or from what a
//! deleted resource had when it is registered again), and tags and properties are compared
//! key by key (`tags.env`), so a change of one tag does not show the whole map twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cortex_events::{EventStore, RecordedEvent, StoreError, StreamName};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// One event of an entity, as an auditor reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub stream: String,
    pub revision: u64,
    /// Position in the log (the token the API uses).
    pub position: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The API key (`key:<id>`) or component (`system:<name>`) that caused it.
    pub actor: String,
    pub correlation_id: Uuid,
    /// Who reported what the event records (a compliance result's `source`), where it says.
    pub source: Option<String>,
    pub changes: Vec<Change>,
}

/// One field's value before and after an event (`null`: it had none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// Every event of `streams`, merged in log order, with its changes.
#[tracing::instrument(skip(store), fields(streams = streams.len()))]
pub async fn history(store: &dyn EventStore, streams: &[StreamName]) -> Result<Vec<AuditEntry>, StoreError> {
    let mut events: Vec<RecordedEvent> = store.read_streams(streams).await?.into_values().flatten().collect();
    events.sort_by_key(|e| e.position);
    let mut views: BTreeMap<String, View> = BTreeMap::new();
    Ok(events
        .into_iter()
        .map(|e| {
            let changes =
                views.entry(e.stream.as_str().to_owned()).or_default().apply(&e.event_type, &e.data);
            entry(e, changes)
        })
        .collect())
}

fn entry(e: RecordedEvent, changes: Vec<Change>) -> AuditEntry {
    AuditEntry {
        stream: e.stream.as_str().to_owned(),
        revision: e.revision,
        position: e.position.token(),
        event_id: e.metadata.event_id,
        source: e.data.get("source").and_then(Value::as_str).map(str::to_owned),
        event_type: e.event_type,
        occurred_at: e.metadata.occurred_at,
        actor: e.metadata.actor,
        correlation_id: e.metadata.correlation_id,
        changes,
    }
}

/// An entity as its events so far have left it: field → value (`tags.env`, `name`, …).
#[derive(Debug, Default)]
pub struct View {
    fields: BTreeMap<String, Value>,
}

/// Fields whose value is a map compared key by key.
const MAPS: [&str; 2] = ["tags", "properties"];
/// Fields that identify the entity or describe the event, not a state of the entity.
const NOT_STATE: [&str; 6] =
    ["resource_id", "policy_id", "resource_revision", "source", "results", "exemption_id"];

impl View {
    /// The fields `event_type` sets, compared with the view; the view then holds them.
    pub fn apply(&mut self, event_type: &str, data: &Value) -> Vec<Change> {
        let set = Self::fields_of(event_type, data);
        let mut changes = Vec::new();
        for (field, after) in set {
            let before = self.fields.get(&field).cloned().unwrap_or(Value::Null);
            if before != after {
                changes.push(Change { field: field.clone(), before, after: after.clone() });
            }
            if after.is_null() {
                self.fields.remove(&field);
            } else {
                self.fields.insert(field, after);
            }
        }
        changes
    }

    /// What an event sets, field by field (`null`: the field no longer has a value).
    fn fields_of(event_type: &str, data: &Value) -> Vec<(String, Value)> {
        let Some(object) = data.as_object() else { return Vec::new() };
        let mut set = Vec::new();
        match event_type {
            "ResourceDeleted" | "PolicyDeleted" => set.push(("deleted".to_owned(), Value::Bool(true))),
            "ResourceRegistered" | "PolicyCreated" => set.push(("deleted".to_owned(), Value::Null)),
            "PolicyEnabled" => set.push(("enabled".to_owned(), Value::Bool(true))),
            "PolicyDisabled" => set.push(("enabled".to_owned(), Value::Bool(false))),
            _ => {}
        }
        match event_type {
            // A compliance stream: one field per policy, its state (and reason).
            "ComplianceEvaluated" => {
                for result in object.get("results").and_then(Value::as_array).into_iter().flatten() {
                    let Some(policy) = result.get("policy_id").and_then(Value::as_str) else { continue };
                    let state = result.get("state").cloned().unwrap_or(Value::Null);
                    set.push((format!("compliance.{policy}"), state));
                }
            }
            // A policy stream's exemptions: one field per resource.
            "ExemptionGranted" | "ExemptionRevoked" => {
                let resource = object.get("resource_id").and_then(Value::as_str).unwrap_or("*");
                let after = if event_type == "ExemptionGranted" {
                    let mut granted = object.clone();
                    for key in ["policy_id", "resource_id"] {
                        granted.remove(key);
                    }
                    Value::Object(granted)
                } else {
                    Value::Null
                };
                set.push((format!("exemption.{resource}"), after));
            }
            // The rest: every field the event carries the new value of; deletions keep the
            // entity's last state (only `deleted` changes).
            "ResourceDeleted" | "PolicyDeleted" => {}
            _ => {
                for (key, value) in object {
                    if key.starts_with("previous_") || NOT_STATE.contains(&key.as_str()) {
                        continue;
                    }
                    if MAPS.contains(&key.as_str()) {
                        set.extend(Self::map_fields(key, value, object.get(&format!("previous_{key}"))));
                    } else {
                        set.push((key.clone(), value.clone()));
                    }
                }
            }
        }
        set
    }

    /// A map's keys as fields (`tags.env`), with `null` for the keys its previous value had
    /// and it has not (so a removed key shows as removed).
    fn map_fields(name: &str, value: &Value, previous: Option<&Value>) -> Vec<(String, Value)> {
        let mut set = Vec::new();
        if let Some(previous) = previous.and_then(Value::as_object) {
            for key in previous.keys() {
                if value.get(key).is_none() {
                    set.push((format!("{name}.{key}"), Value::Null));
                }
            }
        }
        if let Some(map) = value.as_object() {
            for (key, v) in map {
                set.push((format!("{name}.{key}"), v.clone()));
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn changed(changes: &[Change]) -> Vec<(String, Value, Value)> {
        changes.iter().map(|c| (c.field.clone(), c.before.clone(), c.after.clone())).collect()
    }

    #[test]
    fn a_resource_is_followed_field_by_field_through_its_life() {
        let mut view = View::default();
        let registered = view.apply(
            "ResourceRegistered",
            &json!({"resource_id": "r", "cloud_id": "/s/1/vm", "name": "vm", "type": "T", "location": "westeurope",
                    "tags": {"env": "dev", "team": "a"}, "properties": {}, "subscription_id": "1", "resource_group": "g"}),
        );
        assert!(registered.iter().all(|c| c.before.is_null()), "{registered:?}");
        assert!(registered.iter().any(|c| c.field == "tags.env" && c.after == json!("dev")));
        assert!(!registered.iter().any(|c| c.field == "resource_id" || c.field == "deleted"));

        let retagged = view.apply(
            "ResourceTagsChanged",
            &json!({"resource_id": "r", "tags": {"env": "prod"}, "previous_tags": {"env": "dev", "team": "a"}}),
        );
        assert_eq!(
            changed(&retagged),
            vec![
                ("tags.team".into(), json!("a"), Value::Null),
                ("tags.env".into(), json!("dev"), json!("prod")),
            ]
        );
        let renamed =
            view.apply("ResourceRenamed", &json!({"resource_id": "r", "name": "vm2", "previous_name": "vm"}));
        assert_eq!(changed(&renamed), vec![("name".into(), json!("vm"), json!("vm2"))]);
        let deleted = view.apply(
            "ResourceDeleted",
            &json!({"resource_id": "r", "cloud_id": "/s/1/vm", "name": "vm2", "type": "T"}),
        );
        assert_eq!(changed(&deleted), vec![("deleted".into(), Value::Null, json!(true))]);
        // Registered again, elsewhere: compared with what it was when deleted.
        let again = view.apply(
            "ResourceRegistered",
            &json!({"resource_id": "r", "cloud_id": "/s/1/vm", "name": "vm2", "type": "T", "location": "northeurope",
                    "tags": {"env": "prod"}, "properties": {}, "subscription_id": "1", "resource_group": "g"}),
        );
        assert_eq!(
            changed(&again),
            vec![
                ("deleted".into(), json!(true), Value::Null),
                ("location".into(), json!("westeurope"), json!("northeurope")),
            ]
        );
    }

    #[test]
    fn compliance_results_and_exemptions_are_fields_of_their_own() {
        let mut view = View::default();
        let first = view.apply(
            "ComplianceEvaluated",
            &json!({"resource_id": "r", "source": "scanner", "results": [{"policy_id": "p", "state": "compliant", "reason": "ok"}]}),
        );
        assert_eq!(changed(&first), vec![("compliance.p".into(), Value::Null, json!("compliant"))]);
        let second = view.apply(
            "ComplianceEvaluated",
            &json!({"resource_id": "r", "source": "scanner", "results": [{"policy_id": "p", "state": "non_compliant"}]}),
        );
        assert_eq!(
            changed(&second),
            vec![("compliance.p".into(), json!("compliant"), json!("non_compliant"))]
        );

        let mut policy = View::default();
        let granted = policy.apply(
            "ExemptionGranted",
            &json!({"policy_id": "p", "exemption_id": "e", "resource_id": "r", "reason": "waiver"}),
        );
        assert_eq!(
            changed(&granted),
            vec![("exemption.r".into(), Value::Null, json!({"exemption_id": "e", "reason": "waiver"}))]
        );
        let revoked = policy
            .apply("ExemptionRevoked", &json!({"policy_id": "p", "exemption_id": "e", "resource_id": "r"}));
        assert_eq!(revoked.len(), 1);
        assert!(revoked[0].after.is_null());
        assert_eq!(
            changed(&policy.apply("PolicyDisabled", &json!({"policy_id": "p"}))),
            vec![("enabled".into(), Value::Null, json!(false))]
        );
    }
}
