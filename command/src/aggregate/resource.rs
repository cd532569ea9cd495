//! The resource aggregate (stream `resource-{uuid}`, the uuid derived from the tenant and
//! the cloud id by [`cortex_events::resource_id`]).
//!
//! A scanner reports what a resource looks like now; [`ResourceState::decide`] answers only
//! the events for what changed since the last report, each with the new and the previous
//! value, and none when nothing did. What counts as a change:
//!
//! * **name**: compared exactly; a change of letter case is a rename, because the name is
//!   what people read and search, and ARM reports it consistently.
//! * **subscription, resource group**: compared case-insensitively, as Azure compares ids
//!   (ARM is known to report the same group in several casings). A case-only difference
//!   is not a move, and the first spelling is kept.
//! * **location**: compared as the rule engine does, lower case without whitespace
//!   (`East US 2` is `eastus2`); the first spelling is kept.
//! * **tags, properties, kind**: compared exactly (JSON values structurally).
//! * **type**: a difference other than letter case is refused (409): a resource does not
//!   change type, and policies keyed on the type would silently re-target it.
//! * **cloud id**: must be the stream's id in any case (the stream is derived from it); a
//!   case-only difference changes nothing.
//!
//! Events of one registration come in a fixed order: renamed, moved, tags, properties. A
//! [`ResourceMoved`] carries all three of subscription, group and location, the unchanged
//! ones in their recorded spelling.

mod record;

#[cfg(test)]
mod tests;

use cortex_events::DomainEvent;
use cortex_events::catalog::{
    ResourceDeleted, ResourceMoved, ResourcePropertiesChanged, ResourceRenamed, ResourceTagsChanged,
};
use uuid::Uuid;

use super::{Aggregate, DomainError, same_ignoring_case};

pub use record::{InventoryRecord, ResourceSnapshot, normalise_location};

/// What a client asks of a resource.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived command per decision; a box would only burden every caller"
)]
pub enum ResourceCommand {
    /// Registers the resource, or brings the registered one up to date with `snapshot`.
    Register { resource_id: Uuid, snapshot: ResourceSnapshot },
    /// The resource is gone from the cloud.
    Delete { resource_id: Uuid },
}

/// The state of one resource stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ResourceState {
    /// No event yet.
    #[default]
    Unregistered,
    Active(ResourceSnapshot),
    /// Deleted; the last snapshot is kept for history, and it may be registered again.
    Deleted(ResourceSnapshot),
}

impl ResourceState {
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active(_))
    }

    pub fn is_deleted(&self) -> bool {
        matches!(self, Self::Deleted(_))
    }

    /// The resource as it is now; `None` unless it is active.
    pub fn snapshot(&self) -> Option<&ResourceSnapshot> {
        match self {
            Self::Active(snapshot) => Some(snapshot),
            Self::Unregistered | Self::Deleted(_) => None,
        }
    }

    /// The resource as it is now or, when deleted, as it was last seen.
    pub fn last_snapshot(&self) -> Option<&ResourceSnapshot> {
        match self {
            Self::Active(snapshot) | Self::Deleted(snapshot) => Some(snapshot),
            Self::Unregistered => None,
        }
    }
}

impl Aggregate for ResourceState {
    type Command = ResourceCommand;

    fn decide(&self, command: &ResourceCommand) -> Result<Vec<DomainEvent>, DomainError> {
        match command {
            ResourceCommand::Register { resource_id, snapshot } => {
                let faults = snapshot.faults();
                if !faults.is_empty() {
                    return Err(DomainError::Invalid(faults));
                }
                match self {
                    Self::Active(current) => changes(*resource_id, current, snapshot),
                    Self::Unregistered | Self::Deleted(_) => {
                        Ok(vec![snapshot.registered(*resource_id).into()])
                    }
                }
            }
            ResourceCommand::Delete { resource_id } => match self {
                Self::Active(current) => Ok(vec![
                    ResourceDeleted {
                        resource_id: *resource_id,
                        cloud_id: current.cloud_id.clone(),
                        name: current.name.clone(),
                        resource_type: current.resource_type.clone(),
                    }
                    .into(),
                ]),
                Self::Unregistered | Self::Deleted(_) => Err(DomainError::NotFound { what: "resource" }),
            },
        }
    }

    fn evolve(self, event: &DomainEvent) -> Self {
        match (self, event) {
            (_, DomainEvent::ResourceRegistered(e)) => Self::Active(ResourceSnapshot::from_registered(e)),
            (Self::Active(mut s), DomainEvent::ResourceRenamed(e)) => {
                s.name.clone_from(&e.name);
                Self::Active(s)
            }
            (Self::Active(mut s), DomainEvent::ResourceMoved(e)) => {
                s.subscription_id.clone_from(&e.subscription_id);
                s.resource_group.clone_from(&e.resource_group);
                s.location.clone_from(&e.location);
                Self::Active(s)
            }
            (Self::Active(mut s), DomainEvent::ResourceTagsChanged(e)) => {
                s.tags.clone_from(&e.tags);
                Self::Active(s)
            }
            (Self::Active(mut s), DomainEvent::ResourcePropertiesChanged(e)) => {
                s.properties.clone_from(&e.properties);
                s.kind.clone_from(&e.kind);
                Self::Active(s)
            }
            (Self::Active(s), DomainEvent::ResourceDeleted(_)) => Self::Deleted(s),
            (state, _) => state,
        }
    }
}

/// The events that bring `current` to `new` (see the module doc for what is a change).
fn changes(
    resource_id: Uuid,
    current: &ResourceSnapshot,
    new: &ResourceSnapshot,
) -> Result<Vec<DomainEvent>, DomainError> {
    if !same_ignoring_case(&current.cloud_id, &new.cloud_id) {
        return Err(DomainError::Conflict(format!(
            "the record's id '{}' is not this resource's id '{}'",
            new.cloud_id, current.cloud_id
        )));
    }
    if !same_ignoring_case(&current.resource_type, &new.resource_type) {
        return Err(DomainError::Conflict(format!(
            "the resource type cannot change ('{}' to '{}'); delete and register again",
            current.resource_type, new.resource_type
        )));
    }
    let mut events = Vec::new();
    if current.name != new.name {
        events.push(
            ResourceRenamed { resource_id, name: new.name.clone(), previous_name: current.name.clone() }
                .into(),
        );
    }
    let subscription_moved = !same_ignoring_case(&current.subscription_id, &new.subscription_id);
    let group_moved = !same_ignoring_case(&current.resource_group, &new.resource_group);
    let location_moved = normalise_location(&current.location) != normalise_location(&new.location);
    if subscription_moved || group_moved || location_moved {
        let pick = |moved: bool, now: &String, was: &String| if moved { now.clone() } else { was.clone() };
        events.push(
            ResourceMoved {
                resource_id,
                subscription_id: pick(subscription_moved, &new.subscription_id, &current.subscription_id),
                resource_group: pick(group_moved, &new.resource_group, &current.resource_group),
                location: pick(location_moved, &new.location, &current.location),
                previous_subscription_id: current.subscription_id.clone(),
                previous_resource_group: current.resource_group.clone(),
                previous_location: current.location.clone(),
            }
            .into(),
        );
    }
    if current.tags != new.tags {
        events.push(
            ResourceTagsChanged { resource_id, tags: new.tags.clone(), previous_tags: current.tags.clone() }
                .into(),
        );
    }
    if current.properties != new.properties || current.kind != new.kind {
        events.push(
            ResourcePropertiesChanged {
                resource_id,
                properties: new.properties.clone(),
                previous_properties: current.properties.clone(),
                kind: new.kind.clone(),
                previous_kind: current.kind.clone(),
            }
            .into(),
        );
    }
    Ok(events)
}
