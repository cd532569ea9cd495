//! The event catalog v1: every domain event type, typed, with its name and schema version.
//!
//! [`DomainEvent`] is the closed set the command side writes and the projections read. The
//! store itself works on [`crate::NewEvent`] / [`crate::RecordedEvent`] (type name, version,
//! JSON data) and checks them against the JSON Schemas in `schemas/events/` through
//! [`crate::Catalog`]; `tests/schemas.rs` proves these Rust types and those schemas agree.

mod audit;
mod compliance;
mod examples;
mod policy;
mod resource;

use serde_json::Value;

pub use audit::{AuditSealed, SEAL_STREAM, StreamHead};
pub use compliance::{ComplianceEvaluated, ComplianceState, PolicyResult};
pub use examples::examples;
pub use policy::{
    ExemptionGranted, ExemptionRevoked, PolicyCreated, PolicyDeleted, PolicyDetailsChanged, PolicyDisabled,
    PolicyEnabled, PolicyMode, PolicyRuleChanged, PolicyScope, Severity,
};
pub use resource::{
    ResourceDeleted, ResourceMoved, ResourcePropertiesChanged, ResourceRegistered, ResourceRenamed,
    ResourceTagsChanged, Tags,
};

use crate::{NewEvent, Provenance, RecordedEvent};

/// Data of a stored event that does not decode into its catalog type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event type {0:?} is not in the catalog")]
    UnknownType(String),
    #[error("event {event_type} v{version} is not the current version {current}; upcast it first")]
    NotCurrent { event_type: String, version: u32, current: u32 },
    #[error("event {event_type} does not decode: {source}")]
    Data {
        event_type: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! catalog {
    ($($name:ident = $version:literal),+ $(,)?) => {
        /// Every domain event, current schema versions.
        #[derive(Debug, Clone, PartialEq)]
        pub enum DomainEvent {
            $($name($name),)+
        }

        /// (event type, current schema version) of every catalog event.
        pub const EVENT_TYPES: &[(&str, u32)] = &[$((stringify!($name), $version),)+];

        /// (event type, version, JSON Schema text) of every catalog event, embedded from
        /// `schemas/events/{Type}.v{version}.json`.
        pub(crate) const BUNDLED_SCHEMAS: &[(&str, u32, &str)] = &[$((
            stringify!($name),
            $version,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events/", stringify!($name), ".v", stringify!($version), ".json")),
        ),)+];

        impl DomainEvent {
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(DomainEvent::$name(_) => stringify!($name),)+
                }
            }

            pub fn schema_version(&self) -> u32 {
                match self {
                    $(DomainEvent::$name(_) => $version,)+
                }
            }

            /// The event's data as JSON.
            pub fn to_data(&self) -> Value {
                // The catalog types hold only JSON-representable data (string keys), so
                // serialisation cannot fail.
                match self {
                    $(DomainEvent::$name(e) => serde_json::to_value(e).unwrap_or(Value::Null),)+
                }
            }

            /// Decodes current-version data of the named type.
            pub fn decode(event_type: &str, version: u32, data: &Value) -> Result<Self, DecodeError> {
                match event_type {
                    $(stringify!($name) => {
                        if version != $version {
                            return Err(DecodeError::NotCurrent {
                                event_type: event_type.to_owned(),
                                version,
                                current: $version,
                            });
                        }
                        <$name as serde::Deserialize>::deserialize(data)
                            .map(DomainEvent::$name)
                            .map_err(|source| DecodeError::Data { event_type: stringify!($name), source })
                    })+
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }

        $(impl From<$name> for DomainEvent {
            fn from(e: $name) -> Self {
                DomainEvent::$name(e)
            }
        })+
    };
}

catalog! {
    ResourceRegistered = 1,
    ResourceTagsChanged = 1,
    ResourcePropertiesChanged = 1,
    ResourceMoved = 1,
    ResourceRenamed = 1,
    ResourceDeleted = 1,
    PolicyCreated = 1,
    PolicyRuleChanged = 1,
    PolicyDetailsChanged = 1,
    PolicyEnabled = 1,
    PolicyDisabled = 1,
    PolicyDeleted = 1,
    ExemptionGranted = 1,
    ExemptionRevoked = 1,
    ComplianceEvaluated = 1,
    AuditSealed = 1,
}

impl DomainEvent {
    /// A new event (fresh UUIDv7 id, occurring now) carrying this domain event.
    pub fn into_new_event(self, provenance: Provenance) -> NewEvent {
        NewEvent::new(self.event_type(), self.schema_version(), self.to_data(), provenance)
    }

    /// Decodes a recorded (already upcast) event.
    pub fn from_recorded(event: &RecordedEvent) -> Result<Self, DecodeError> {
        Self::decode(&event.event_type, event.schema_version, &event.data)
    }
}
