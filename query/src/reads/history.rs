//! `GET /v1/resources/{resource_id}/history`: the resource's stream, oldest first, read from
//! the event store (not a read model: history is the log itself).

use chrono::{DateTime, Utc};
use cortex_events::{Direction, StreamName};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Prepared, ReadError, Reads};
use crate::cursor::{self, Scope};

/// One page of a resource's history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryQuery {
    pub resource_id: Uuid,
    pub limit: u32,
    /// The first revision of the page (0 for the first page).
    pub from: u64,
}

impl HistoryQuery {
    /// What a cursor of this history is bound to.
    pub fn scope(tenant_id: Uuid, resource_id: Uuid) -> Scope {
        Scope::of(&[&tenant_id.to_string(), "history", &resource_id.to_string()])
    }
}

/// One event of the resource: who, when, and what changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The event's revision in the resource's stream (0 for the first).
    pub revision: u64,
    /// Position in the log (the read-your-writes token of this event).
    pub position: String,
    pub event_id: Uuid,
    /// What happened (`ResourceRegistered`, `ResourceTagsChanged`, …).
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The API key (`key:<id>`) or component (`system:<name>`) that caused it.
    pub actor: String,
    pub correlation_id: Uuid,
    /// The event's data: the new value of what changed, and what it was before.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl Reads {
    /// One page of the resource's events. A stream that does not exist, or belongs to
    /// another tenant, is not found.
    #[tracing::instrument(skip(self, query), fields(resource_id = %query.resource_id, from = query.from))]
    pub async fn history(&self, tenant_id: Uuid, query: &HistoryQuery) -> Result<Prepared, ReadError> {
        let stream = StreamName::resource(query.resource_id);
        let mut events = self
            .store
            .read_stream(&stream, query.from, Direction::Forwards, query.limit as usize + 1)
            .await?;
        // Every event of a stream carries its tenant; one of another tenant's means the
        // whole stream is (the stream id is derived from the tenant).
        if events.iter().any(|e| e.tenant_id() != tenant_id) || (query.from == 0 && events.is_empty()) {
            return Err(ReadError::NotFound { what: "resource" });
        }
        let next_cursor = if events.len() > query.limit as usize {
            let next = events.pop().map(|e| e.revision);
            next.map(|revision| cursor::encode(HistoryQuery::scope(tenant_id, query.resource_id), &revision))
        } else {
            None
        };
        let items = events
            .into_iter()
            .map(|e| HistoryEntry {
                revision: e.revision,
                position: e.position.token(),
                event_id: e.metadata.event_id,
                event_type: e.event_type,
                occurred_at: e.metadata.occurred_at,
                actor: e.metadata.actor,
                correlation_id: e.metadata.correlation_id,
                data: e.data,
            })
            .collect();
        Prepared::json(&HistoryPage { items, next_cursor })
    }
}
