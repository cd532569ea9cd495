//! A batch of inventory records: one read for every stream of the batch, one decision per
//! record, and every append submitted at once so that the event store commits them in a few
//! group transactions. A record whose append meets a concurrent change, or that names a
//! resource an earlier record of the same batch already named, goes through the one-record
//! path afterwards (reload, re-decide, bounded retries), so the batch decides exactly what
//! the same records sent one by one, in order, would.

use std::collections::{HashMap, HashSet};

use cortex_events::{DomainEvent, ExpectedRevision, StoreError, StreamName, resource_id};
use futures::future::join_all;

use super::{CommandError, Commands, Loaded, RequestContext, ResourceOutcome, fold_into};
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
        let mut retry: Vec<usize> = Vec::new();
        let mut by_index: HashMap<usize, ResourceSnapshot> = HashMap::new();
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
                    let outcome = self.unchanged(loaded).await.map(|d| ResourceOutcome {
                        resource_id: id,
                        revision: d.revision,
                        changed: false,
                        created: false,
                        position: d.position,
                    });
                    results.push((index, outcome));
                }
                Ok(events) => {
                    // Kept for the one-record path, should the append meet a concurrent change.
                    if let ResourceCommand::Register { snapshot, .. } = command {
                        by_index.insert(index, snapshot);
                    }
                    appends.push(self.append_decided(ctx, index, id, stream, loaded.revision, events));
                }
            }
        }
        for (index, outcome) in join_all(appends).await {
            match outcome {
                Err(CommandError::Store(StoreError::WrongExpectedRevision { .. })) => retry.push(index),
                other => results.push((index, other)),
            }
        }

        // Concurrent changes and repeated resources: the one-record path, in batch order.
        let mut slow: Vec<(usize, ResourceSnapshot)> =
            retry.into_iter().filter_map(|i| by_index.remove(&i).map(|r| (i, r))).collect();
        slow.extend(later);
        slow.sort_by_key(|(i, _)| *i);
        for (index, snapshot) in slow {
            results.push((index, self.register_snapshot(ctx, snapshot).await));
        }
        results.sort_by_key(|(i, _)| *i);
        Ok(results)
    }

    async fn append_decided(
        &self,
        ctx: &RequestContext,
        index: usize,
        id: uuid::Uuid,
        stream: StreamName,
        revision: Option<u64>,
        events: Vec<DomainEvent>,
    ) -> ItemResult {
        let created = events.iter().any(|e| matches!(e, DomainEvent::ResourceRegistered(_)));
        let provenance = ctx.provenance();
        let new_events = events.into_iter().map(|e| e.into_new_event(provenance.clone())).collect();
        let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let outcome = self.store.append(&stream, expected, new_events).await.map(|o| ResourceOutcome {
            resource_id: id,
            revision: o.revision,
            changed: true,
            created,
            position: o.position,
        });
        (index, outcome.map_err(CommandError::from))
    }
}
