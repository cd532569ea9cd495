//! The policy a client submits (`POST /v1/policies`, `PUT /v1/policies/{id}`) and the
//! definition it becomes once checked and compiled.

use std::str::FromStr;

use cortex_events::catalog::{PolicyCreated, PolicyMode, PolicyScope, Severity};
use cortex_rules::{CompileErrors, CompiledPolicy, Mode, Policy, PolicyDefinitionInput};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::aggregate::{DomainError, FieldFault, is_blank};

/// The body of `POST /v1/policies` and `PUT /v1/policies/{policy_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub severity: Severity,
    /// `all` (the default) or `indexed`, in any case as Azure accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Azure's `policyRule`.
    pub rule: Value,
    /// Azure parameter definitions, by name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// This policy's parameter values, by name.
    #[serde(default)]
    pub parameter_values: Map<String, Value>,
    /// Omitted: the whole tenant.
    #[serde(default)]
    pub scope: PolicyScope,
    /// Omitted: `true` on create, unchanged on update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A policy's current definition: what its events say, field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDefinition {
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub severity: Severity,
    pub mode: PolicyMode,
    pub rule: Value,
    pub parameters: Map<String, Value>,
    pub parameter_values: Map<String, Value>,
    pub scope: PolicyScope,
    pub enabled: bool,
}

impl PolicyBody {
    /// The definition this body describes, checked field by field (400) and then compiled
    /// (422); field faults are reported first, since a rule cannot be judged in a body
    /// that is malformed. `enabled` applies when the body omits it.
    pub fn definition(&self, enabled: bool) -> Result<PolicyDefinition, DomainError> {
        let mut faults = Vec::new();
        if is_blank(&self.name) {
            faults.push(FieldFault::new("/name", "must not be empty"));
        }
        let mode = match self.mode.as_deref().map(Mode::from_str).transpose() {
            Ok(mode) => event_mode(mode.unwrap_or_default()),
            Err(message) => {
                faults.push(FieldFault::new("/mode", message));
                PolicyMode::All
            }
        };
        let lists =
            [("subscriptions", &self.scope.subscriptions), ("resource_groups", &self.scope.resource_groups)];
        for (list, entries) in lists {
            for (index, _) in entries.iter().enumerate().filter(|(_, entry)| is_blank(entry)) {
                faults.push(FieldFault::new(format!("/scope/{list}/{index}"), "must not be empty"));
            }
        }
        if !faults.is_empty() {
            return Err(DomainError::Invalid(faults));
        }
        let definition = PolicyDefinition {
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            severity: self.severity,
            mode,
            rule: self.rule.clone(),
            parameters: self.parameters.clone(),
            parameter_values: self.parameter_values.clone(),
            scope: self.scope.clone(),
            enabled: self.enabled.unwrap_or(enabled),
        };
        definition.compile().map_err(DomainError::RuleDoesNotCompile)?;
        Ok(definition)
    }
}

impl PolicyDefinition {
    /// Compiles the rule with its parameters, values and mode (the compliance evaluator
    /// compiles each policy revision once).
    pub fn compile(&self) -> Result<CompiledPolicy, CompileErrors> {
        Policy::compile(&PolicyDefinitionInput {
            rule: self.rule.clone(),
            parameters: Value::Object(self.parameters.clone()),
            parameter_values: self.parameter_values.clone(),
            mode: Some(rules_mode(self.mode).to_string()),
        })
    }

    /// Whether the rule, parameters, values or mode differ: what decides compliance.
    pub(super) fn rule_differs(&self, other: &Self) -> bool {
        self.rule != other.rule
            || self.parameters != other.parameters
            || self.parameter_values != other.parameter_values
            || self.mode != other.mode
    }

    /// Whether the descriptive fields or the scope differ.
    pub(super) fn details_differ(&self, other: &Self) -> bool {
        self.name != other.name
            || self.description != other.description
            || self.category != other.category
            || self.severity != other.severity
            || self.scope != other.scope
    }

    pub(super) fn created(&self, policy_id: Uuid) -> PolicyCreated {
        PolicyCreated {
            policy_id,
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            severity: self.severity,
            mode: self.mode,
            rule: self.rule.clone(),
            parameters: self.parameters.clone(),
            parameter_values: self.parameter_values.clone(),
            scope: self.scope.clone(),
            enabled: self.enabled,
        }
    }

    pub(super) fn from_created(event: &PolicyCreated) -> Self {
        Self {
            name: event.name.clone(),
            description: event.description.clone(),
            category: event.category.clone(),
            severity: event.severity,
            mode: event.mode,
            rule: event.rule.clone(),
            parameters: event.parameters.clone(),
            parameter_values: event.parameter_values.clone(),
            scope: event.scope.clone(),
            enabled: event.enabled,
        }
    }
}

/// The rule engine's mode and the event catalog's are the same two values; the crates are
/// independent, so they do not share the type.
fn event_mode(mode: Mode) -> PolicyMode {
    match mode {
        Mode::All => PolicyMode::All,
        Mode::Indexed => PolicyMode::Indexed,
    }
}

fn rules_mode(mode: PolicyMode) -> Mode {
    match mode {
        PolicyMode::All => Mode::All,
        PolicyMode::Indexed => Mode::Indexed,
    }
}
