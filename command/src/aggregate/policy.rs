//! The policy aggregate (stream `policy-{uuid}`): a governance policy's definition, its
//! life cycle (created, enabled, disabled, deleted) and its exemptions.
//!
//! * Create and update compile the rule; a policy that would not evaluate is never recorded.
//! * Update is a PUT of the definition: it answers [`PolicyRuleChanged`] when the rule,
//!   parameters, values or mode differ (JSON compared structurally, mode after parsing),
//!   [`PolicyDetailsChanged`] when name, description, category, severity or scope differ
//!   (exactly; an empty description is not an absent one), and [`PolicyEnabled`] or
//!   [`PolicyDisabled`] only when the body says `enabled` and it differs, in that order.
//!   Enabling has its own routes, so a body without `enabled` keeps the current value.
//! * Enabling an enabled policy (disabling a disabled one) changes nothing.
//! * A deleted policy stays deleted: its id is not reused (create is a conflict) and every
//!   other command finds nothing, exemptions included.
//! * Exemptions: at most one active per resource; see `policy/exemption.rs`.

mod body;
mod exemption;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cortex_events::DomainEvent;
use cortex_events::catalog::{
    PolicyDeleted, PolicyDetailsChanged, PolicyDisabled, PolicyEnabled, PolicyRuleChanged,
};
use uuid::Uuid;

use super::{Aggregate, DomainError};

pub use body::{PolicyBody, PolicyDefinition};
pub use exemption::Exemption;

/// What a client asks of a policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyCommand {
    Create {
        policy_id: Uuid,
        body: PolicyBody,
    },
    /// Replaces the definition (`PUT`).
    Update {
        body: PolicyBody,
    },
    Enable,
    Disable,
    Delete,
    /// Exempts a resource (whose existence the handler has checked) until `expires_at`.
    GrantExemption {
        exemption_id: Uuid,
        resource_id: Uuid,
        reason: String,
        expires_at: Option<DateTime<Utc>>,
        /// The time of the request: expiry is judged against it.
        now: DateTime<Utc>,
    },
    RevokeExemption {
        exemption_id: Uuid,
    },
}

/// The state of one policy stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyState {
    policy_id: Option<Uuid>,
    definition: Option<PolicyDefinition>,
    deleted: bool,
    exemptions: BTreeMap<Uuid, Exemption>,
}

impl PolicyState {
    /// Created and not deleted.
    pub fn is_live(&self) -> bool {
        self.definition.is_some() && !self.deleted
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The id the policy was created with; `None` before it was.
    pub fn policy_id(&self) -> Option<Uuid> {
        self.policy_id
    }

    /// The current definition; `None` unless the policy is live.
    pub fn definition(&self) -> Option<&PolicyDefinition> {
        self.definition.as_ref().filter(|_| !self.deleted)
    }

    /// The current definition or, when deleted, the last one.
    pub fn last_definition(&self) -> Option<&PolicyDefinition> {
        self.definition.as_ref()
    }

    /// Every exemption ever granted, revoked and expired ones included.
    pub fn exemptions(&self) -> &BTreeMap<Uuid, Exemption> {
        &self.exemptions
    }

    /// The exemption of `resource_id` in force at `now`, if any (a grant refuses a second one).
    pub fn active_exemption_for(&self, resource_id: Uuid, now: DateTime<Utc>) -> Option<Uuid> {
        self.exemptions
            .iter()
            .find(|(_, exemption)| exemption.resource_id == resource_id && exemption.is_active_at(now))
            .map(|(id, _)| *id)
    }

    /// The id and definition of a live policy, or not found.
    fn live(&self) -> Result<(Uuid, &PolicyDefinition), DomainError> {
        match (self.policy_id, self.definition()) {
            (Some(id), Some(definition)) => Ok((id, definition)),
            _ => Err(DomainError::NotFound { what: "policy" }),
        }
    }

    fn live_id(&self) -> Result<Uuid, DomainError> {
        self.live().map(|(id, _)| id)
    }
}

impl Aggregate for PolicyState {
    type Command = PolicyCommand;

    fn decide(&self, command: &PolicyCommand) -> Result<Vec<DomainEvent>, DomainError> {
        match command {
            PolicyCommand::Create { policy_id, body } => {
                if self.policy_id.is_some() {
                    let why = if self.deleted {
                        "was deleted; ids of deleted policies are not reused"
                    } else {
                        "already exists"
                    };
                    return Err(DomainError::Conflict(format!("policy {policy_id} {why}")));
                }
                Ok(vec![body.definition(true)?.created(*policy_id).into()])
            }
            PolicyCommand::Update { body } => {
                let (policy_id, current) = self.live()?;
                let new = body.definition(current.enabled)?;
                Ok(updates(policy_id, current, &new))
            }
            PolicyCommand::Enable => {
                let (policy_id, current) = self.live()?;
                Ok(if current.enabled { vec![] } else { vec![PolicyEnabled { policy_id }.into()] })
            }
            PolicyCommand::Disable => {
                let (policy_id, current) = self.live()?;
                Ok(if current.enabled { vec![PolicyDisabled { policy_id }.into()] } else { vec![] })
            }
            PolicyCommand::Delete => {
                let (policy_id, current) = self.live()?;
                Ok(vec![PolicyDeleted { policy_id, name: current.name.clone() }.into()])
            }
            PolicyCommand::GrantExemption { exemption_id, resource_id, reason, expires_at, now } => {
                exemption::grant(self, *exemption_id, *resource_id, reason, *expires_at, *now)
            }
            PolicyCommand::RevokeExemption { exemption_id } => exemption::revoke(self, *exemption_id),
        }
    }

    fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::PolicyCreated(e) => {
                self.policy_id = Some(e.policy_id);
                self.definition = Some(PolicyDefinition::from_created(e));
            }
            DomainEvent::PolicyRuleChanged(e) => {
                if let Some(d) = self.definition.as_mut() {
                    d.rule.clone_from(&e.rule);
                    d.parameters.clone_from(&e.parameters);
                    d.parameter_values.clone_from(&e.parameter_values);
                    d.mode = e.mode;
                }
            }
            DomainEvent::PolicyDetailsChanged(e) => {
                if let Some(d) = self.definition.as_mut() {
                    d.name.clone_from(&e.name);
                    d.description.clone_from(&e.description);
                    d.category.clone_from(&e.category);
                    d.severity = e.severity;
                    d.scope.clone_from(&e.scope);
                }
            }
            DomainEvent::PolicyEnabled(_) => {
                if let Some(d) = self.definition.as_mut() {
                    d.enabled = true;
                }
            }
            DomainEvent::PolicyDisabled(_) => {
                if let Some(d) = self.definition.as_mut() {
                    d.enabled = false;
                }
            }
            DomainEvent::PolicyDeleted(_) => self.deleted = true,
            DomainEvent::ExemptionGranted(e) => {
                let exemption = Exemption {
                    resource_id: e.resource_id,
                    reason: e.reason.clone(),
                    expires_at: e.expires_at,
                    revoked: false,
                };
                self.exemptions.insert(e.exemption_id, exemption);
            }
            DomainEvent::ExemptionRevoked(e) => {
                if let Some(exemption) = self.exemptions.get_mut(&e.exemption_id) {
                    exemption.revoked = true;
                }
            }
            _ => {}
        }
        self
    }
}

/// The events of a PUT that replaces `current` with `new` (see the module doc).
fn updates(policy_id: Uuid, current: &PolicyDefinition, new: &PolicyDefinition) -> Vec<DomainEvent> {
    let mut events = Vec::new();
    if new.rule_differs(current) {
        events.push(
            PolicyRuleChanged {
                policy_id,
                rule: new.rule.clone(),
                parameters: new.parameters.clone(),
                parameter_values: new.parameter_values.clone(),
                mode: new.mode,
                previous_rule: current.rule.clone(),
                previous_parameters: current.parameters.clone(),
                previous_parameter_values: current.parameter_values.clone(),
                previous_mode: current.mode,
            }
            .into(),
        );
    }
    if new.details_differ(current) {
        events.push(
            PolicyDetailsChanged {
                policy_id,
                name: new.name.clone(),
                description: new.description.clone(),
                category: new.category.clone(),
                severity: new.severity,
                scope: new.scope.clone(),
                previous_name: current.name.clone(),
                previous_description: current.description.clone(),
                previous_category: current.category.clone(),
                previous_severity: current.severity,
                previous_scope: current.scope.clone(),
            }
            .into(),
        );
    }
    match (current.enabled, new.enabled) {
        (false, true) => events.push(PolicyEnabled { policy_id }.into()),
        (true, false) => events.push(PolicyDisabled { policy_id }.into()),
        _ => {}
    }
    events
}
