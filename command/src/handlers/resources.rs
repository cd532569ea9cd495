//! Resource commands: register-or-update from an inventory record, delete.

use cortex_events::{Position, StreamName, resource_id};
use uuid::Uuid;

use super::{CommandError, Commands, Decided, RequestContext};
use crate::aggregate::{InventoryRecord, ResourceCommand, ResourceSnapshot, ResourceState};

/// What a resource command did.
#[derive(Debug, Clone)]
pub struct ResourceOutcome {
    pub resource_id: Uuid,
    pub revision: u64,
    pub changed: bool,
    /// The resource was new (or registered again after a delete): HTTP 201.
    pub created: bool,
    pub position: Position,
}

impl ResourceOutcome {
    pub(crate) fn of(resource_id: Uuid, decided: &Decided) -> Self {
        Self {
            resource_id,
            revision: decided.revision,
            changed: decided.changed(),
            created: decided.event_types.contains(&"ResourceRegistered"),
            position: decided.position,
        }
    }
}

impl Commands {
    /// Registers a resource or brings it up to date with `record`.
    #[tracing::instrument(skip_all, fields(cloud_id = %record.id))]
    pub async fn register_resource(
        &self,
        ctx: &RequestContext,
        record: InventoryRecord,
    ) -> Result<ResourceOutcome, CommandError> {
        let snapshot = record.normalise().map_err(crate::aggregate::DomainError::Invalid)?;
        self.register_snapshot(ctx, snapshot).await
    }

    /// [`Commands::register_resource`] of an already normalised record.
    pub(crate) async fn register_snapshot(
        &self,
        ctx: &RequestContext,
        snapshot: ResourceSnapshot,
    ) -> Result<ResourceOutcome, CommandError> {
        let id = resource_id(ctx.caller.tenant_id, &snapshot.cloud_id);
        let stream = StreamName::resource(id);
        let decided = self
            .execute::<ResourceState, _>(ctx, &stream, "resource", None, || ResourceCommand::Register {
                resource_id: id,
                snapshot: snapshot.clone(),
            })
            .await?;
        Ok(ResourceOutcome::of(id, &decided))
    }

    #[tracing::instrument(skip(self, ctx))]
    pub async fn delete_resource(
        &self,
        ctx: &RequestContext,
        resource_id: Uuid,
    ) -> Result<ResourceOutcome, CommandError> {
        let stream = StreamName::resource(resource_id);
        let decided = self
            .execute::<ResourceState, _>(ctx, &stream, "resource", None, || ResourceCommand::Delete {
                resource_id,
            })
            .await?;
        Ok(ResourceOutcome::of(resource_id, &decided))
    }

    /// The resource's state and revision, as the caller's tenant sees it (for commands that
    /// refer to a resource).
    pub(crate) async fn resource(
        &self,
        ctx: &RequestContext,
        resource_id: Uuid,
    ) -> Result<(ResourceState, Option<u64>), CommandError> {
        let loaded = self.load::<ResourceState>(ctx, &StreamName::resource(resource_id), "resource").await?;
        Ok((loaded.state, loaded.revision))
    }
}
