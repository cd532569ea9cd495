//! A batch of inventory records: one read for every stream of the batch, one decision per
//! record, and every append submitted at once so that the event store commits them in a few
//! group transactions. A record whose append meets a concurrent change, or that names a
//! resource an earlier record of the same batch already named, goes through the one-record
//! path afterwards (reload, re-decide, bounded retries), so the batch decides exactly what
//! the same records sent one by one, in order, would.

use std::collections::HashSet;

use cortex_events::{StoreError, StreamName, resource_id};
use futures::future::join_all;

use super::{CommandError, Commands, Loaded, RequestContext, ResourceOutcome, fold_into, unchanged};
use crate::aggregate::{
    Aggregate, DomainError, InventoryRecord, ResourceCommand, ResourceSnapshot, ResourceState,
};

/// One record's answer, by its index in the batch.
pub type ItemResult = (usize, Result<ResourceOutcome, CommandError>);

impl Commands {
    /// Registers or updates every record; each answers on its own. Fails as a whole only
    /// when the batch's streams cannot be read (before anything is decided).
    #[tracing::instrument(skip_all, fields(records = records.len()))]
    pub async fn register_resources(
        &self,
        ctx: &RequestContext,
        records: Vec<(usize, InventoryRecord)>,
    ) -> Result<Vec<ItemResult>, CommandError> {
        let mut results: Vec<ItemResult> = Vec::with_capacity(records.len());
        let mut first: Vec<(usize, uuid::Uuid, ResourceSnapshot)> = Vec::new();
        let mut later: Vec<(usize, ResourceSnapshot)> = Vec::new();
        let mut seen = HashSet::new();
        for (index, record) in records {
            match record.normalise() {
                Err(faults) => results.push((index, Err(DomainError::Invalid(faults).into()))),
                Ok(snapshot) => {
                    let id = resource_id(ctx.caller.tenant_id, &snapshot.cloud_id);
                    if seen.insert(id) {
                        first.push((index, id, snapshot));
                    } else {
                        later.push((index, snapshot));
                    }
                }
            }
        }

        let streams: Vec<StreamName> = first.iter().map(|(_, id, _)| StreamName::resource(*id)).collect();
        // Nothing is decided yet: a failed read fails the whole request.
        let mut histories = self.store.read_streams(&streams).await?;

        let mut appends = Vec::new();
        for ((index, id, snapshot), stream) in first.into_iter().zip(streams) {
            let history = histories.remove(&stream).unwrap_or_default();
            let empty = Loaded { state: ResourceState::default(), revision: None, last_position: None };
            let loaded = match fold_into(empty, ctx, &stream, "resource", &history) {
                Ok(l) => l,
                Err(e) => {
                    results.push((index, Err(e)));
                    continue;
                }
            };
            let command = ResourceCommand::Register { resource_id: id, snapshot };
            match loaded.state.decide(&command) {
                Err(e) => results.push((index, Err(e.into()))),
                Ok(events) if events.is_empty() => {
                    let outcome = unchanged(loaded, "resource").map(|d| ResourceOutcome::of(id, &d));
                    results.push((index, outcome));
                }
                Ok(events) => appends.push(async move {
                    let outcome = self.append_decision(ctx, &stream, loaded.revision, events).await;
                    (index, id, command, outcome)
                }),
            }
        }

        // Concurrent changes and repeated resources: the one-record path, in batch order.
        let mut slow = later;
        for (index, id, command, outcome) in join_all(appends).await {
            match (outcome, command) {
                (
                    Err(StoreError::WrongExpectedRevision { .. }),
                    ResourceCommand::Register { snapshot, .. },
                ) => slow.push((index, snapshot)),
                (outcome, _) => {
                    results.push((index, outcome.map(|d| ResourceOutcome::of(id, &d)).map_err(Into::into)))
                }
            }
        }
        slow.sort_by_key(|(i, _)| *i);
        for (index, snapshot) in slow {
            results.push((index, self.register_snapshot(ctx, snapshot).await));
        }
        results.sort_by_key(|(i, _)| *i);
        Ok(results)
    }
}
