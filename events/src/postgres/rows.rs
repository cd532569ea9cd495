//! Decoding stored rows into [`RecordedEvent`]s (with upcasting).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Row, postgres::PgRow};

use crate::{Catalog, EventMetadata, Position, RecordedEvent, StoreError, StreamName};

/// The columns every event read selects, in the order [`decode`] expects.
pub(crate) const EVENT_COLUMNS: &str =
    "tx_id, seq, stream_name, stream_revision, event_type, schema_version, data, metadata, recorded_at";

pub(crate) fn position_of(row: &PgRow) -> Result<Position, sqlx::Error> {
    let tx: i64 = row.try_get("tx_id")?;
    let seq: i64 = row.try_get("seq")?;
    Ok(Position::new(tx as u64, seq as u64))
}

pub(crate) fn decode(catalog: &Catalog, row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let position = position_of(row).map_err(super::pg("decode event position"))?;
    let stream: String = row.try_get("stream_name").map_err(super::pg("decode event row"))?;
    let corrupt = |message: String| StoreError::Corrupt { stream: stream.clone(), position, message };
    let revision: i64 = row.try_get("stream_revision").map_err(super::pg("decode event row"))?;
    let event_type: String = row.try_get("event_type").map_err(super::pg("decode event row"))?;
    let version: i32 = row.try_get("schema_version").map_err(super::pg("decode event row"))?;
    let data: Value = row.try_get("data").map_err(super::pg("decode event row"))?;
    // Straight into the typed struct: no intermediate JSON tree on the catch-up hot path.
    let metadata: Result<sqlx::types::Json<EventMetadata>, _> = row.try_get("metadata");
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at").map_err(super::pg("decode event row"))?;
    let metadata = metadata.map_err(|e| corrupt(format!("metadata: {e}")))?.0;
    let stream_name = StreamName::parse(stream.clone()).map_err(|e| corrupt(e.to_string()))?;
    let stored_version = version as u32;
    // Clone the stored data only when an upcaster will replace it (the hash covers it).
    let (schema_version, data, stored_data) = if catalog.needs_upcast(&event_type, stored_version) {
        let (v, upcast) = catalog.upcast(&event_type, stored_version, data.clone())?;
        (v, upcast, Some(data))
    } else {
        (stored_version, data, None)
    };
    Ok(RecordedEvent {
        stream: stream_name,
        revision: revision as u64,
        position,
        event_type,
        schema_version,
        data,
        metadata,
        recorded_at,
        stored_data,
    })
}
