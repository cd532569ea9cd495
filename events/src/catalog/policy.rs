//! Policy events (stream `policy-{uuid}`): definitions, their life cycle and exemptions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// Azure Policy's `mode`, stored lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    All,
    Indexed,
}

impl PolicyMode {
    /// The mode as stored and serialised (`all`, `indexed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Indexed => "indexed",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "all" => Self::All,
            "indexed" => Self::Indexed,
            _ => return None,
        })
    }
}

/// Where a policy applies within its tenant; both lists empty means the whole tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyScope {
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// `{subscription_id}/{resource_group}` or a bare group name (any subscription).
    #[serde(default)]
    pub resource_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCreated {
    pub policy_id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub severity: Severity,
    pub mode: PolicyMode,
    /// Azure `policyRule`, as submitted.
    pub rule: Value,
    /// Azure parameter definitions, by name.
    pub parameters: Map<String, Value>,
    /// This policy's parameter values, by name.
    pub parameter_values: Map<String, Value>,
    pub scope: PolicyScope,
    pub enabled: bool,
}

/// What decides compliance changed: rule, parameters, values or mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleChanged {
    pub policy_id: Uuid,
    pub rule: Value,
    pub parameters: Map<String, Value>,
    pub parameter_values: Map<String, Value>,
    pub mode: PolicyMode,
    pub previous_rule: Value,
    pub previous_parameters: Map<String, Value>,
    pub previous_parameter_values: Map<String, Value>,
    pub previous_mode: PolicyMode,
}

/// Descriptive fields or scope changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDetailsChanged {
    pub policy_id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub severity: Severity,
    pub scope: PolicyScope,
    pub previous_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    pub previous_severity: Severity,
    pub previous_scope: PolicyScope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEnabled {
    pub policy_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDisabled {
    pub policy_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDeleted {
    pub policy_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionGranted {
    pub policy_id: Uuid,
    pub exemption_id: Uuid,
    pub resource_id: Uuid,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::metadata::micros_opt")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionRevoked {
    pub policy_id: Uuid,
    pub exemption_id: Uuid,
    pub resource_id: Uuid,
}
