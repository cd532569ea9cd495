//! Event metadata (DESIGN §2) and the new-event shape handed to the store.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::hash::{chain_hash, chain_hash_of_canonical};

/// Who caused a change, and in which trace — the part of the metadata a command handler
/// (or a system component) supplies once for all the events of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub tenant_id: Uuid,
    /// An API key id, or `system:<component>` for PolicyCortex's own components.
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    /// W3C `traceparent` of the span that decided, when tracing is on.
    pub traceparent: Option<String>,
}

impl Provenance {
    /// Provenance for a system component with a fresh correlation (e.g. a demo loader).
    pub fn system(tenant_id: Uuid, component: &str) -> Self {
        let id = Uuid::now_v7();
        Self {
            tenant_id,
            actor: format!("system:{component}"),
            correlation_id: id,
            causation_id: id,
            traceparent: None,
        }
    }
}

/// An event to append. The store validates it against the catalog, seals it into the
/// stream's hash chain and gives it a revision and a position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// UUIDv7 for fresh events; components that must be idempotent across restarts derive
    /// it deterministically (UUIDv5) instead.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub provenance: Provenance,
    pub occurred_at: DateTime<Utc>,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id, occurring now.
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        data: Value,
        provenance: Provenance,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            data,
            provenance,
            // Microseconds: the precision PostgreSQL keeps, so a replayed timestamp equals
            // the original one.
            occurred_at: Utc::now().trunc_subsecs(6),
        }
    }

    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// The metadata of this event once sealed after `prev_hash`.
    pub fn seal(&self, prev_hash: &str) -> EventMetadata {
        self.seal_with_data(prev_hash, &crate::hash::canonical_json(&self.data))
    }

    /// [`Self::seal`] given the canonical text of the data (which a writer also stores).
    pub fn seal_with_data(&self, prev_hash: &str, canonical_data: &str) -> EventMetadata {
        let mut meta = EventMetadata {
            event_id: self.event_id,
            tenant_id: self.provenance.tenant_id,
            actor: self.provenance.actor.clone(),
            correlation_id: self.provenance.correlation_id,
            causation_id: self.provenance.causation_id,
            occurred_at: self.occurred_at,
            schema_version: self.schema_version,
            traceparent: self.provenance.traceparent.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        let unsealed = meta.canonical_text(false);
        meta.hash = chain_hash_of_canonical(prev_hash, &self.event_type, canonical_data, &unsealed);
        meta
    }
}

/// The metadata stored with every event (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMetadata {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    #[serde(with = "micros")]
    pub occurred_at: DateTime<Utc>,
    /// The schema version the data was *written* with (upcasting does not change it).
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl EventMetadata {
    /// The metadata as JSON, without `hash`: what the hash covers.
    pub fn unsealed_json(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(map) = &mut v {
            map.remove("hash");
        }
        v
    }

    pub fn to_json(&self) -> Value {
        // Serialising a struct of strings, uuids and integers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The canonical JSON text of the metadata (`hash` included or not), written directly
    /// rather than through a `Value`: the fields below are declared in byte order of their
    /// names, which is what canonical JSON sorts them by (a test proves the two agree). This
    /// is on every append's path.
    pub fn canonical_text(&self, with_hash: bool) -> String {
        #[derive(Serialize)]
        struct Sorted<'a> {
            actor: &'a str,
            causation_id: Uuid,
            correlation_id: Uuid,
            event_id: Uuid,
            #[serde(skip_serializing_if = "Option::is_none")]
            hash: Option<&'a str>,
            #[serde(with = "micros")]
            occurred_at: DateTime<Utc>,
            prev_hash: &'a str,
            schema_version: u32,
            tenant_id: Uuid,
            #[serde(skip_serializing_if = "Option::is_none")]
            traceparent: Option<&'a str>,
        }
        let sorted = Sorted {
            actor: &self.actor,
            causation_id: self.causation_id,
            correlation_id: self.correlation_id,
            event_id: self.event_id,
            hash: with_hash.then_some(self.hash.as_str()),
            occurred_at: self.occurred_at,
            prev_hash: &self.prev_hash,
            schema_version: self.schema_version,
            tenant_id: self.tenant_id,
            traceparent: self.traceparent.as_deref(),
        };
        // Strings, uuids and integers: serialisation cannot fail.
        serde_json::to_string(&sorted).unwrap_or_default()
    }

    /// Recomputes this event's hash from its stored type and data.
    pub fn expected_hash(&self, event_type: &str, stored_data: &Value) -> String {
        chain_hash(&self.prev_hash, event_type, stored_data, &self.unsealed_json())
    }
}

/// RFC 3339 in UTC with exactly six fractional digits and `Z`, so that the serialised
/// metadata — and with it the hash — is the same after any number of round trips.
pub mod micros {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

/// [`micros`] for an optional timestamp.
pub mod micros_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::micros::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::micros")] DateTime<Utc>);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hash::GENESIS_HASH;

    #[test]
    fn the_direct_canonical_text_equals_canonical_json_of_the_metadata() {
        for traceparent in [None, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned())]
        {
            let mut provenance = Provenance::system(Uuid::now_v7(), "test \"quoted\" é");
            provenance.traceparent = traceparent;
            let meta = NewEvent::new("T", 1, json!({"a": 1}), provenance).seal(GENESIS_HASH);
            assert_eq!(meta.canonical_text(false), crate::hash::canonical_json(&meta.unsealed_json()));
            assert_eq!(meta.canonical_text(true), crate::hash::canonical_json(&meta.to_json()));
        }
    }

    #[test]
    fn sealed_metadata_round_trips_through_json_with_the_same_hash() {
        let e = NewEvent::new("T", 1, json!({"a": 1}), Provenance::system(Uuid::now_v7(), "test"));
        let meta = e.seal(GENESIS_HASH);
        let back: EventMetadata = serde_json::from_value(meta.to_json()).unwrap();
        assert_eq!(back, meta);
        assert_eq!(back.expected_hash("T", &e.data), meta.hash);
    }
}
