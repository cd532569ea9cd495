//! The outcome of evaluating one policy against one resource, and why.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::effect::Effect;

/// Compliance state decided by the rule engine (`exempt` is decided by the evaluator, which
/// knows about exemptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceState {
    Compliant,
    NonCompliant,
    NotApplicable,
    Error,
}

impl ComplianceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceState::Compliant => "compliant",
            ComplianceState::NonCompliant => "non_compliant",
            ComplianceState::NotApplicable => "not_applicable",
            ComplianceState::Error => "error",
        }
    }
}

/// The result of one (resource, policy) evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub state: ComplianceState,
    /// The policy's effect (`modify`/`append` read as `audit`).
    pub effect: Effect,
    /// Why: always set except for `compliant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// What kind of explanation a [`Reason`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// A condition of the rule matched: the resource is non-compliant.
    ConditionMatched,
    /// The policy's effect is `disabled`: it is never evaluated.
    EffectDisabled,
    /// The policy mode (`indexed`) does not evaluate this resource type.
    ModeExcluded,
    /// The rule's `type`/`name`/`kind` conditions do not select this resource.
    NotSelected,
    /// Evaluation failed (a template function on the wrong kind of value, …).
    EvaluationFailed,
}

/// Why a resource got its state, in Azure's "reason for non-compliance" terms: the deciding
/// condition, the resource's actual value and the value the condition compares it with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ReasonKind,
    /// One human sentence.
    pub message: Cow<'static, str>,
    /// JSON pointer of the deciding condition in the rule (`/if/allOf/1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The condition's field, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The condition's value expression, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The counted field or value, for a `count` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Value>,
    /// The operator that held, negations applied (`not { in }` reads `notIn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The resource's value (`null` when missing; all values for a `[*]` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
    /// The value the condition compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
}

impl Reason {
    /// A reason that is only a sentence (no condition details).
    pub(crate) fn simple(kind: ReasonKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            pointer: None,
            field: None,
            value: None,
            count: None,
            operator: None,
            actual: None,
            expected: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_serialise_in_snake_case() {
        assert_eq!(serde_json::to_value(ComplianceState::NonCompliant).ok(), Some(json!("non_compliant")));
        assert_eq!(serde_json::to_value(ComplianceState::NotApplicable).ok(), Some(json!("not_applicable")));
    }

    #[test]
    fn a_simple_reason_serialises_only_its_kind_and_message() {
        let reason = Reason::simple(ReasonKind::EffectDisabled, "effect disabled");
        assert_eq!(
            serde_json::to_value(&reason).ok(),
            Some(json!({"kind": "effect_disabled", "message": "effect disabled"}))
        );
    }
}
