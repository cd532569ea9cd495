//! One or more examples of every catalog event, between them setting every optional field.
//! Used by the schema drift test, documentation and API examples.

use chrono::{TimeZone, Utc};
use serde_json::{Map, json};
use uuid::Uuid;

use super::*;

fn obj(v: serde_json::Value) -> Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Examples of every event type (each type at least once with all optional fields set and
/// once with none).
pub fn examples() -> Vec<DomainEvent> {
    let resource_id = Uuid::from_u128(0x0190_0000_0000_5000_8000_0000_0000_0001);
    let policy_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
    let exemption_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003);
    let tags = |pairs: &[(&str, &str)]| -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let rule = json!({
        "if": {"allOf": [
            {"field": "type", "equals": "Microsoft.Storage/storageAccounts"},
            {"field": "Microsoft.Storage/storageAccounts/minimumTlsVersion", "notEquals": "TLS1_2"}
        ]},
        "then": {"effect": "[parameters('effect')]"}
    });
    let params = obj(
        json!({"effect": {"type": "String", "defaultValue": "audit", "allowedValues": ["audit", "deny", "disabled"]}}),
    );
    let scope =
        PolicyScope { subscriptions: vec!["sub-1".into()], resource_groups: vec!["sub-1/rg-app".into()] };
    vec![
        ResourceRegistered {
            resource_id,
            cloud_id: "/subscriptions/sub-1/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/stapp".into(),
            name: "stapp".into(),
            resource_type: "Microsoft.Storage/storageAccounts".into(),
            location: "westeurope".into(),
            kind: Some("StorageV2".into()),
            tags: tags(&[("env", "prod"), ("owner", "team-a")]),
            properties: obj(json!({"minimumTlsVersion": "TLS1_0", "supportsHttpsTrafficOnly": true})),
            subscription_id: "sub-1".into(),
            resource_group: "rg-app".into(),
        }
        .into(),
        ResourceRegistered {
            resource_id,
            cloud_id: "/subscriptions/sub-1/resourceGroups/rg-app".into(),
            name: "rg-app".into(),
            resource_type: "Microsoft.Resources/resourceGroups".into(),
            location: "westeurope".into(),
            kind: None,
            tags: Tags::new(),
            properties: Map::new(),
            subscription_id: "sub-1".into(),
            resource_group: "rg-app".into(),
        }
        .into(),
        ResourceTagsChanged { resource_id, tags: tags(&[("env", "dev")]), previous_tags: tags(&[("env", "prod")]) }.into(),
        ResourcePropertiesChanged {
            resource_id,
            properties: obj(json!({"minimumTlsVersion": "TLS1_2"})),
            previous_properties: obj(json!({"minimumTlsVersion": "TLS1_0"})),
            kind: Some("StorageV2".into()),
            previous_kind: Some("Storage".into()),
        }
        .into(),
        ResourcePropertiesChanged {
            resource_id,
            properties: Map::new(),
            previous_properties: obj(json!({"a": 1})),
            kind: None,
            previous_kind: None,
        }
        .into(),
        ResourceMoved {
            resource_id,
            subscription_id: "sub-2".into(),
            resource_group: "rg-new".into(),
            location: "northeurope".into(),
            previous_subscription_id: "sub-1".into(),
            previous_resource_group: "rg-app".into(),
            previous_location: "westeurope".into(),
        }
        .into(),
        ResourceRenamed { resource_id, name: "stapp2".into(), previous_name: "stapp".into() }.into(),
        ResourceDeleted {
            resource_id,
            cloud_id: "/subscriptions/sub-1/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/stapp".into(),
            name: "stapp".into(),
            resource_type: "Microsoft.Storage/storageAccounts".into(),
        }
        .into(),
        PolicyCreated {
            policy_id,
            name: "Storage accounts use TLS 1.2".into(),
            description: Some("Minimum TLS version 1.2".into()),
            category: Some("Storage".into()),
            severity: Severity::High,
            mode: PolicyMode::Indexed,
            rule: rule.clone(),
            parameters: params.clone(),
            parameter_values: obj(json!({"effect": "audit"})),
            scope: scope.clone(),
            enabled: true,
        }
        .into(),
        PolicyCreated {
            policy_id,
            name: "Bare".into(),
            description: None,
            category: None,
            severity: Severity::Low,
            mode: PolicyMode::All,
            rule: rule.clone(),
            parameters: Map::new(),
            parameter_values: Map::new(),
            scope: PolicyScope::default(),
            enabled: false,
        }
        .into(),
        PolicyRuleChanged {
            policy_id,
            rule: rule.clone(),
            parameters: params.clone(),
            parameter_values: obj(json!({"effect": "deny"})),
            mode: PolicyMode::All,
            previous_rule: rule,
            previous_parameters: params,
            previous_parameter_values: obj(json!({"effect": "audit"})),
            previous_mode: PolicyMode::Indexed,
        }
        .into(),
        PolicyDetailsChanged {
            policy_id,
            name: "TLS 1.2".into(),
            description: Some("new".into()),
            category: Some("Security".into()),
            severity: Severity::Critical,
            scope: PolicyScope::default(),
            previous_name: "Storage accounts use TLS 1.2".into(),
            previous_description: Some("old".into()),
            previous_category: Some("Storage".into()),
            previous_severity: Severity::Medium,
            previous_scope: scope,
        }
        .into(),
        PolicyDetailsChanged {
            policy_id,
            name: "n".into(),
            description: None,
            category: None,
            severity: Severity::Low,
            scope: PolicyScope::default(),
            previous_name: "m".into(),
            previous_description: None,
            previous_category: None,
            previous_severity: Severity::Low,
            previous_scope: PolicyScope::default(),
        }
        .into(),
        PolicyEnabled { policy_id }.into(),
        PolicyDisabled { policy_id }.into(),
        PolicyDeleted { policy_id, name: "TLS 1.2".into() }.into(),
        ExemptionGranted {
            policy_id,
            exemption_id,
            resource_id,
            reason: "legacy client, migration planned".into(),
            expires_at: Some(Utc.with_ymd_and_hms(2027, 1, 31, 0, 0, 0).unwrap()),
        }
        .into(),
        ExemptionGranted { policy_id, exemption_id, resource_id, reason: "waived".into(), expires_at: None }.into(),
        ExemptionRevoked { policy_id, exemption_id, resource_id }.into(),
        ComplianceEvaluated {
            resource_id,
            resource_revision: Some(3),
            source: "policycortex".into(),
            results: vec![
                PolicyResult {
                    policy_id,
                    state: ComplianceState::NonCompliant,
                    reason: Some("minimumTlsVersion is TLS1_0; expected not TLS1_0".into()),
                    details: Some(obj(json!({"field": "Microsoft.Storage/storageAccounts/minimumTlsVersion", "actual": "TLS1_0", "expected": "TLS1_2"}))),
                    policy_revision: Some(1),
                },
                PolicyResult { policy_id, state: ComplianceState::Compliant, reason: None, details: None, policy_revision: None },
                PolicyResult { policy_id, state: ComplianceState::Exempt, reason: None, details: None, policy_revision: Some(0) },
                PolicyResult { policy_id, state: ComplianceState::NotApplicable, reason: None, details: None, policy_revision: Some(0) },
                PolicyResult { policy_id, state: ComplianceState::Error, reason: Some("bad".into()), details: None, policy_revision: Some(0) },
            ],
        }
        .into(),
        ComplianceEvaluated { resource_id, resource_revision: None, source: "defender-scan".into(), results: vec![] }.into(),
        AuditSealed {
            position: "0000000000000a1b0000000000000003".into(),
            events: 1200,
            digest: "5b".repeat(32),
            previous: "0".repeat(64),
            previous_position: Some("0000000000000a010000000000000000".into()),
            algorithm: "ed25519".into(),
            public_key: "3d".repeat(32),
            signature: "9f".repeat(64),
            sealed_at: "2026-12-07T22:00:00.000Z".into(),
            heads: vec![StreamHead { stream: format!("resource-{resource_id}"), revision: 4, hash: "ab".repeat(32) }],
        }
        .into(),
        AuditSealed {
            position: "0000000000000a010000000000000000".into(),
            events: 1,
            digest: "4a".repeat(32),
            previous: "0".repeat(64),
            previous_position: None,
            algorithm: "ed25519".into(),
            public_key: "3d".repeat(32),
            signature: "9f".repeat(64),
            sealed_at: "2026-12-07T21:00:00.000Z".into(),
            heads: vec![],
        }
        .into(),
    ]
}
