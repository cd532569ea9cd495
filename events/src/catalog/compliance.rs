//! Compliance decisions (stream `compliance-{resource uuid}`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceState {
    Compliant,
    NonCompliant,
    Exempt,
    NotApplicable,
    Error,
}

impl ComplianceState {
    /// The state as stored and serialised (`non_compliant`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::NonCompliant => "non_compliant",
            Self::Exempt => "exempt",
            Self::NotApplicable => "not_applicable",
            Self::Error => "error",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "compliant" => Self::Compliant,
            "non_compliant" => Self::NonCompliant,
            "exempt" => Self::Exempt,
            "not_applicable" => Self::NotApplicable,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// One policy's verdict on the resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyResult {
    pub policy_id: Uuid,
    pub state: ComplianceState,
    /// Why, in words (Azure's "reason for non-compliance").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The deciding condition in structured form (field, actual, expected, pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
    /// Revision of the policy stream the verdict was made with; unknown for some
    /// external scanners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_revision: Option<u64>,
}

/// Results for one resource, from PolicyCortex's evaluator or an external scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceEvaluated {
    pub resource_id: Uuid,
    /// Revision of the resource stream the results were made with, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_revision: Option<u64>,
    /// `policycortex` for the built-in evaluator, otherwise the scanner's name.
    pub source: String,
    pub results: Vec<PolicyResult>,
}
