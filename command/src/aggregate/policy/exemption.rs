//! Exemptions of resources from a policy: granted, revoked, or expired by time alone.
//!
//! An exemption is active from its grant until it is revoked or its `expires_at` is reached
//! (at `expires_at` it is already expired). Expiry needs no event (DESIGN §3): whoever asks
//! passes the time. A resource has at most one active exemption per policy, so that revoking
//! one is enough to end the resource's exemption.

use chrono::{DateTime, SubsecRound, Utc};
use cortex_events::DomainEvent;
use cortex_events::catalog::{ExemptionGranted, ExemptionRevoked};
use uuid::Uuid;

use super::PolicyState;
use crate::aggregate::{DomainError, FieldFault, is_blank};

/// One exemption of a policy, by its id in [`PolicyState::exemptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    pub resource_id: Uuid,
    pub reason: String,
    /// `None`: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

impl Exemption {
    /// Not revoked and not expired at `now`.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

pub(super) fn grant(
    state: &PolicyState,
    exemption_id: Uuid,
    resource_id: Uuid,
    reason: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<DomainEvent>, DomainError> {
    let policy_id = state.live_id()?;
    // The store keeps microseconds; deciding on the stored value keeps the check and the
    // state folded back from the store in agreement.
    let expires_at = expires_at.map(|t| t.trunc_subsecs(6));
    let mut faults = Vec::new();
    if is_blank(reason) {
        faults.push(FieldFault::new("/reason", "must not be empty"));
    }
    if expires_at.is_some_and(|expires_at| expires_at <= now) {
        faults.push(FieldFault::new("/expires_at", "must be in the future"));
    }
    if !faults.is_empty() {
        return Err(DomainError::Invalid(faults));
    }
    if state.exemptions.contains_key(&exemption_id) {
        return Err(DomainError::Conflict(format!("exemption {exemption_id} already exists")));
    }
    if let Some(active) = state.active_exemption_for(resource_id, now) {
        return Err(DomainError::Conflict(format!(
            "resource {resource_id} already has the active exemption {active} from this policy"
        )));
    }
    Ok(vec![
        ExemptionGranted { policy_id, exemption_id, resource_id, reason: reason.to_owned(), expires_at }
            .into(),
    ])
}

/// Revoking an exemption that has expired is allowed: it records that it is over for good.
pub(super) fn revoke(state: &PolicyState, exemption_id: Uuid) -> Result<Vec<DomainEvent>, DomainError> {
    let policy_id = state.live_id()?;
    match state.exemptions.get(&exemption_id) {
        Some(exemption) if !exemption.revoked => {
            Ok(vec![ExemptionRevoked { policy_id, exemption_id, resource_id: exemption.resource_id }.into()])
        }
        _ => Err(DomainError::NotFound { what: "exemption" }),
    }
}
