//! The compliance aggregate (stream `compliance-{resource uuid}`): results of external
//! scanners submitted through `POST /v1/evaluations`.
//!
//! The built-in evaluator writes to the same stream (source `policycortex`, reserved for
//! it) without going through this decision; its results still fold into the state, so the
//! state is the latest result of every (policy, source) pair whoever wrote it. A scanner
//! that reports the same state and reason again for the same policy changes nothing, even
//! with other revisions: the verdict, not the moment it was re-confirmed, is what the read
//! models and audits follow.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cortex_events::DomainEvent;
use cortex_events::catalog::{ComplianceEvaluated, ComplianceState, PolicyResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Aggregate, DomainError, FieldFault, is_blank};

/// The source of PolicyCortex's own evaluator; refused from clients in any case.
pub const RESERVED_SOURCE: &str = "policycortex";

/// The body of `POST /v1/evaluations`: one scanner's verdict on one (resource, policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationBody {
    pub resource_id: Uuid,
    pub policy_id: Uuid,
    pub state: ComplianceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The scanner's name, compared exactly.
    pub source: String,
}

/// What a client asks of a resource's compliance stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ComplianceCommand {
    /// Records an external result; the handler supplies the revisions of the policy and
    /// resource streams it read, when it read them.
    RecordExternal { body: EvaluationBody, policy_revision: Option<u64>, resource_revision: Option<u64> },
}

/// The latest result of one (policy, source) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestResult {
    pub state: ComplianceState,
    pub reason: Option<String>,
    pub policy_revision: Option<u64>,
    pub resource_revision: Option<u64>,
}

/// The state of one resource's compliance stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceCompliance {
    latest: BTreeMap<(Uuid, String), LatestResult>,
}

impl ResourceCompliance {
    pub fn latest(&self, policy_id: Uuid, source: &str) -> Option<&LatestResult> {
        self.latest.get(&(policy_id, source.to_owned()))
    }

    /// Every (policy, source) pair with its latest result, by policy then source.
    pub fn results(&self) -> impl Iterator<Item = (Uuid, &str, &LatestResult)> {
        self.latest.iter().map(|((policy_id, source), result)| (*policy_id, source.as_str(), result))
    }
}

impl Aggregate for ResourceCompliance {
    type Command = ComplianceCommand;

    fn decide(&self, command: &ComplianceCommand) -> Result<Vec<DomainEvent>, DomainError> {
        let ComplianceCommand::RecordExternal { body, policy_revision, resource_revision } = command;
        if is_blank(&body.source) {
            return Err(DomainError::invalid("/source", "must not be empty"));
        }
        if body.source.trim().eq_ignore_ascii_case(RESERVED_SOURCE) {
            return Err(DomainError::Invalid(vec![FieldFault::new(
                "/source",
                format!("'{RESERVED_SOURCE}' is reserved for the built-in evaluator"),
            )]));
        }
        let unchanged = self
            .latest(body.policy_id, &body.source)
            .is_some_and(|latest| latest.state == body.state && latest.reason == body.reason);
        if unchanged {
            return Ok(vec![]);
        }
        Ok(vec![
            ComplianceEvaluated {
                resource_id: body.resource_id,
                resource_revision: *resource_revision,
                source: body.source.clone(),
                results: vec![PolicyResult {
                    policy_id: body.policy_id,
                    state: body.state,
                    reason: body.reason.clone(),
                    details: None,
                    policy_revision: *policy_revision,
                }],
            }
            .into(),
        ])
    }

    fn evolve(mut self, event: &DomainEvent) -> Self {
        if let DomainEvent::ComplianceEvaluated(e) = event {
            for result in &e.results {
                let latest = LatestResult {
                    state: result.state,
                    reason: result.reason.clone(),
                    policy_revision: result.policy_revision,
                    resource_revision: e.resource_revision,
                };
                self.latest.insert((result.policy_id, e.source.clone()), latest);
            }
        }
        self
    }
}
