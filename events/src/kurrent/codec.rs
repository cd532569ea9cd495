//! The storage format: how our events and positions map to the client's, and back.
//!
//! On the way in, a batch is sealed into the hash chain and each event carries its sealed
//! metadata as KurrentDB custom metadata. On the way out, an event is checked against that
//! metadata and upcast to its current version; system events are skipped, anything else
//! that is not ours is corrupt.

use chrono::{DateTime, Utc};
use kurrentdb::EventData;
use serde_json::Value;
use uuid::Uuid;

use crate::{Catalog, EventMetadata, NewEvent, Position, RecordedEvent, StoreError, StreamName};

pub(super) fn from_kurrent_position(p: kurrentdb::Position) -> Position {
    Position::new(p.commit, p.prepare)
}

pub(super) fn to_kurrent_position(p: Position) -> kurrentdb::Position {
    kurrentdb::Position { commit: p.major, prepare: p.minor }
}

pub(super) fn category_of(stream: &str) -> &str {
    stream.split_once('-').map_or(stream, |(category, _)| category)
}

fn is_system(stream: &str, event_type: &str) -> bool {
    stream.starts_with('$') || event_type.starts_with('$')
}

/// The metadata of `events`, sealed one after the other into the chain after `prev_hash`.
fn seal_chain(events: &[NewEvent], prev_hash: &str) -> Vec<EventMetadata> {
    let mut sealed: Vec<EventMetadata> = Vec::with_capacity(events.len());
    for event in events {
        let prev = sealed.last().map_or(prev_hash, |m| m.hash.as_str());
        sealed.push(event.seal(prev));
    }
    sealed
}

/// The events sealed into the chain after `prev_hash`, and the bytes they take on the wire.
pub(super) fn encode(events: &[NewEvent], prev_hash: &str) -> Result<(Vec<EventData>, usize), StoreError> {
    let encoding_failed = |e: serde_json::Error| StoreError::Kurrent {
        step: "encode event",
        source: kurrentdb::Error::InternalParsingError(e.to_string()),
    };
    let mut size = 0;
    let mut batch = Vec::with_capacity(events.len());
    for (event, metadata) in events.iter().zip(seal_chain(events, prev_hash)) {
        size += event.event_type.len()
            + serde_json::to_vec(&event.data).map_err(encoding_failed)?.len()
            + serde_json::to_vec(&metadata).map_err(encoding_failed)?.len();
        let data = EventData::json(&event.event_type, &event.data)
            .and_then(|d| d.id(event.event_id).metadata_as_json(&metadata))
            .map_err(encoding_failed)?;
        batch.push(data);
    }
    Ok((batch, size))
}

/// The parts of a stored event that decoding needs (the client's type cannot be built
/// outside the client, so tests build this one).
pub(super) struct RawEvent<'a> {
    stream: &'a str,
    event_type: &'a str,
    id: Uuid,
    revision: u64,
    position: kurrentdb::Position,
    data: &'a [u8],
    metadata: &'a [u8],
    created: DateTime<Utc>,
}

impl<'a> From<&'a kurrentdb::RecordedEvent> for RawEvent<'a> {
    fn from(e: &'a kurrentdb::RecordedEvent) -> Self {
        Self {
            stream: e.stream_id(),
            event_type: &e.event_type,
            id: e.id,
            revision: e.revision,
            position: e.position,
            data: &e.data,
            metadata: &e.custom_metadata,
            created: e.created,
        }
    }
}

impl RawEvent<'_> {
    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt {
            stream: self.stream.to_owned(),
            position: from_kurrent_position(self.position),
            message,
        }
    }

    fn metadata(&self) -> Result<EventMetadata, StoreError> {
        let metadata: EventMetadata = serde_json::from_slice(self.metadata)
            .map_err(|e| self.corrupt(format!("metadata is not PolicyCortex event metadata: {e}")))?;
        if metadata.event_id != self.id {
            return Err(self.corrupt(format!(
                "metadata names event {} but the event is {}",
                metadata.event_id, self.id
            )));
        }
        Ok(metadata)
    }
}

/// A stored event in the port's terms, upcast to its current version; `None` for a
/// system event. Anything else that is not ours is corrupt, never skipped.
pub(super) fn decode(catalog: &Catalog, raw: &RawEvent<'_>) -> Result<Option<RecordedEvent>, StoreError> {
    if is_system(raw.stream, raw.event_type) {
        return Ok(None);
    }
    let stream = StreamName::parse(raw.stream).map_err(|e| raw.corrupt(e.to_string()))?;
    let metadata = raw.metadata()?;
    let stored: Value =
        serde_json::from_slice(raw.data).map_err(|e| raw.corrupt(format!("data is not JSON: {e}")))?;
    let (schema_version, data, stored_data) =
        upcast(catalog, raw.event_type, metadata.schema_version, stored)?;
    Ok(Some(RecordedEvent {
        stream,
        revision: raw.revision,
        position: from_kurrent_position(raw.position),
        event_type: raw.event_type.to_owned(),
        schema_version,
        data,
        metadata,
        recorded_at: raw.created,
        stored_data,
    }))
}

/// `(version, data, stored data when upcasting changed the version)`; clones only then.
fn upcast(
    catalog: &Catalog,
    event_type: &str,
    version: u32,
    stored: Value,
) -> Result<(u32, Value, Option<Value>), StoreError> {
    if catalog.current_version(event_type).is_none_or(|current| current <= version) {
        return Ok((version, stored, None));
    }
    let (upcast_version, data) = catalog.upcast(event_type, version, stored.clone())?;
    let stored_data = (upcast_version != version).then_some(stored);
    Ok((upcast_version, data, stored_data))
}

pub(super) fn stored_metadata(e: &kurrentdb::RecordedEvent) -> Result<EventMetadata, StoreError> {
    RawEvent::from(e).metadata()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Provenance, hash::GENESIS_HASH, kurrent::tests::catalog};

    fn new_event(event_type: &str, version: u32) -> NewEvent {
        NewEvent::new(event_type, version, json!({"value": 21}), Provenance::system(Uuid::now_v7(), "test"))
    }

    fn raw<'a>(
        stream: &'a str,
        event_type: &'a str,
        id: Uuid,
        data: &'a [u8],
        metadata: &'a [u8],
    ) -> RawEvent<'a> {
        RawEvent {
            stream,
            event_type,
            id,
            revision: 4,
            position: kurrentdb::Position { commit: 900, prepare: 800 },
            data,
            metadata,
            created: Utc::now(),
        }
    }

    #[test]
    fn positions_map_commit_to_major_and_prepare_to_minor_both_ways() {
        let theirs = kurrentdb::Position { commit: 7, prepare: 5 };
        let ours = from_kurrent_position(theirs);
        assert_eq!(ours, Position::new(7, 5));
        assert_eq!(to_kurrent_position(ours), theirs);
        let (a, b) =
            (kurrentdb::Position { commit: 7, prepare: 9 }, kurrentdb::Position { commit: 8, prepare: 0 });
        assert_eq!(a < b, from_kurrent_position(a) < from_kurrent_position(b));
    }

    #[test]
    fn an_encoded_event_decodes_back_with_its_chain_and_upcast() {
        let event = new_event("Measured", 1);
        let metadata = event.seal(GENESIS_HASH);
        let (batch, size) = encode(std::slice::from_ref(&event), GENESIS_HASH).unwrap();
        assert_eq!(batch.len(), 1);
        assert!(size > event.data.to_string().len());
        let data = serde_json::to_vec(&event.data).unwrap();
        let meta = serde_json::to_vec(&metadata).unwrap();
        let decoded = decode(&catalog(), &raw("resource-1", "Measured", event.event_id, &data, &meta))
            .unwrap()
            .unwrap();
        assert_eq!(decoded.schema_version, 2);
        assert_eq!(decoded.data, json!({"value": 21, "unit": "celsius"}));
        assert_eq!(decoded.stored_data, Some(event.data.clone()));
        assert_eq!(decoded.position, Position::new(900, 800));
        assert_eq!((decoded.revision, decoded.metadata.clone()), (4, metadata));
        assert!(decoded.hash_is_intact());
    }

    #[test]
    fn an_event_at_its_current_version_keeps_no_stored_copy() {
        let event = new_event("Measured", 2);
        let meta = serde_json::to_vec(&event.seal(GENESIS_HASH)).unwrap();
        let data = serde_json::to_vec(&event.data).unwrap();
        let decoded = decode(&catalog(), &raw("resource-1", "Measured", event.event_id, &data, &meta))
            .unwrap()
            .unwrap();
        assert_eq!((decoded.schema_version, decoded.stored_data), (2, None));
    }

    #[test]
    fn system_events_are_skipped_and_foreign_events_are_corrupt() {
        let id = Uuid::now_v7();
        assert!(decode(&catalog(), &raw("$$resource-1", "$metadata", id, b"{}", b"")).unwrap().is_none());
        assert!(decode(&catalog(), &raw("resource-1", "$streamDeleted", id, b"{}", b"")).unwrap().is_none());
        match decode(&catalog(), &raw("orders-1", "OrderPlaced", id, b"{}", b"")) {
            Err(StoreError::Corrupt { stream, position, .. }) => {
                assert_eq!((stream.as_str(), position), ("orders-1", Position::new(900, 800)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn metadata_naming_another_event_is_corrupt() {
        let event = new_event("Measured", 2);
        let meta = serde_json::to_vec(&event.seal(GENESIS_HASH)).unwrap();
        let decoded = decode(&catalog(), &raw("resource-1", "Measured", Uuid::now_v7(), b"{}", &meta));
        assert!(matches!(decoded, Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn a_batch_is_chained_event_after_event_after_the_previous_hash() {
        let events = [new_event("Measured", 2), new_event("Measured", 2), new_event("Measured", 2)];
        let prev = "ab".repeat(32);
        let sealed = seal_chain(&events, &prev);
        assert_eq!(sealed[0], events[0].seal(&prev));
        assert_eq!(sealed[1], events[1].seal(&sealed[0].hash));
        assert_eq!(sealed[2], events[2].seal(&sealed[1].hash));
        assert_eq!(encode(&events, &prev).unwrap().0.len(), 3);
    }

    #[test]
    fn categories_are_the_part_before_the_first_dash() {
        assert_eq!(category_of("resource-1-2"), "resource");
        assert_eq!(category_of("nodash"), "nodash");
        assert!(is_system("$ce-resource", "$>") && is_system("resource-1", "$metadata"));
        assert!(!is_system("resource-1", "ResourceRegistered"));
    }
}
