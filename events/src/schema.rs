//! The schema registry: which event types exist, at which versions, what their data must
//! look like (JSON Schema 2020-12), and how old versions are upcast to the current one.
//!
//! Both adapters validate every [`NewEvent`] here before writing anything, and upcast every
//! event they read. Upcasting is a chain of single steps `v → v+1`, keyed by (event type,
//! version); the stored data and its version are never rewritten.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use crate::{NewEvent, StoreError, catalog::BUNDLED_SCHEMAS, store::SchemaFault};

/// One upcasting step of an event type, from version `v` to `v + 1`.
pub type UpcastFn = fn(Value) -> Result<Value, String>;

struct TypeEntry {
    current: u32,
    validators: HashMap<u32, Arc<jsonschema::Validator>>,
    upcasters: HashMap<u32, UpcastFn>,
}

/// The registry. Cheap to share behind an `Arc`; immutable once built.
pub struct Catalog {
    types: HashMap<String, TypeEntry>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.types.iter().map(|(t, e)| (t.as_str(), e.current)).collect();
        types.sort_unstable();
        f.debug_struct("Catalog").field("types", &types).finish()
    }
}

/// A registry that does not hold together (found when it is built, never at append time).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("schema of {event_type} v{version} is not valid JSON: {message}")]
    SchemaNotJson { event_type: String, version: u32, message: String },
    #[error("schema of {event_type} v{version} is not a valid JSON Schema: {message}")]
    SchemaInvalid { event_type: String, version: u32, message: String },
    #[error("{event_type} v{version} has a schema but no upcaster to v{}", version + 1)]
    MissingUpcaster { event_type: String, version: u32 },
    #[error("upcaster of {event_type} from v{version} has no schema for v{version} or v{}", version + 1)]
    UpcasterWithoutSchema { event_type: String, version: u32 },
    #[error("{event_type} has no schema for v1")]
    MissingFirstVersion { event_type: String },
}

/// Builds a [`Catalog`]: schemas by (type, version) and upcasters between versions.
#[derive(Default)]
pub struct CatalogBuilder {
    schemas: Vec<(String, u32, Value)>,
    upcasters: Vec<(String, u32, UpcastFn)>,
    errors: Vec<CatalogError>,
}

impl CatalogBuilder {
    pub fn schema(mut self, event_type: &str, version: u32, schema: Value) -> Self {
        self.schemas.push((event_type.to_owned(), version, schema));
        self
    }

    pub fn schema_text(mut self, event_type: &str, version: u32, text: &str) -> Self {
        match serde_json::from_str(text) {
            Ok(schema) => self.schemas.push((event_type.to_owned(), version, schema)),
            Err(e) => self.errors.push(CatalogError::SchemaNotJson {
                event_type: event_type.to_owned(),
                version,
                message: e.to_string(),
            }),
        }
        self
    }

    /// Registers the step from `from_version` to `from_version + 1`.
    pub fn upcaster(mut self, event_type: &str, from_version: u32, step: UpcastFn) -> Self {
        self.upcasters.push((event_type.to_owned(), from_version, step));
        self
    }

    pub fn build(self) -> Result<Catalog, CatalogError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let mut types: HashMap<String, TypeEntry> = HashMap::new();
        for (event_type, version, schema) in self.schemas {
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| CatalogError::SchemaInvalid {
                    event_type: event_type.clone(),
                    version,
                    message: e.to_string(),
                })?;
            let entry = types.entry(event_type).or_insert_with(|| TypeEntry {
                current: 0,
                validators: HashMap::new(),
                upcasters: HashMap::new(),
            });
            entry.current = entry.current.max(version);
            entry.validators.insert(version, Arc::new(validator));
        }
        for (event_type, from, step) in self.upcasters {
            let Some(entry) = types.get_mut(&event_type) else {
                return Err(CatalogError::UpcasterWithoutSchema { event_type, version: from });
            };
            if !entry.validators.contains_key(&from) || !entry.validators.contains_key(&(from + 1)) {
                return Err(CatalogError::UpcasterWithoutSchema { event_type, version: from });
            }
            entry.upcasters.insert(from, step);
        }
        for (event_type, entry) in &types {
            if !entry.validators.contains_key(&1) {
                return Err(CatalogError::MissingFirstVersion { event_type: event_type.clone() });
            }
            for &version in entry.validators.keys() {
                if version < entry.current && !entry.upcasters.contains_key(&version) {
                    return Err(CatalogError::MissingUpcaster { event_type: event_type.clone(), version });
                }
            }
        }
        Ok(Catalog { types })
    }
}

impl Catalog {
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// A builder preloaded with PolicyCortex's event schemas (`schemas/events/`), for
    /// callers that add their own types or versions.
    pub fn standard_builder() -> CatalogBuilder {
        BUNDLED_SCHEMAS.iter().fold(CatalogBuilder::default(), |b, (t, v, text)| b.schema_text(t, *v, text))
    }

    /// PolicyCortex's catalog.
    pub fn standard() -> Result<Catalog, CatalogError> {
        Self::standard_builder().build()
    }

    /// The current version of an event type, if the type is known.
    pub fn current_version(&self, event_type: &str) -> Option<u32> {
        self.types.get(event_type).map(|e| e.current)
    }

    /// Whether data stored at `version` is older than the current version of its type.
    pub fn needs_upcast(&self, event_type: &str, version: u32) -> bool {
        self.types.get(event_type).is_some_and(|e| e.current > version)
    }

    /// Checks a new event: a known type, written at its current version, with data that
    /// satisfies the schema. Names every fault by JSON pointer.
    pub fn validate(&self, event: &NewEvent) -> Result<(), StoreError> {
        let entry = self
            .types
            .get(&event.event_type)
            .ok_or_else(|| StoreError::UnknownEventType { event_type: event.event_type.clone() })?;
        if event.schema_version != entry.current {
            return Err(StoreError::NotCurrentSchemaVersion {
                event_type: event.event_type.clone(),
                version: event.schema_version,
                current: entry.current,
            });
        }
        let validator = &entry.validators[&entry.current];
        // The common case first: checking validity is much cheaper than collecting errors.
        if validator.is_valid(&event.data) {
            return Ok(());
        }
        let faults: Vec<SchemaFault> = validator
            .iter_errors(&event.data)
            .take(20)
            .map(|e| SchemaFault { pointer: e.instance_path().to_string(), message: e.to_string() })
            .collect();
        if faults.is_empty() {
            Ok(())
        } else {
            Err(StoreError::SchemaViolation {
                event_type: event.event_type.clone(),
                version: event.schema_version,
                event_id: event.event_id,
                faults,
            })
        }
    }

    /// Brings stored data to the current version of its type. Types and versions this
    /// catalog does not know are passed through unchanged (a KurrentDB log may hold other
    /// applications' events).
    pub fn upcast(
        &self,
        event_type: &str,
        mut version: u32,
        mut data: Value,
    ) -> Result<(u32, Value), StoreError> {
        let Some(entry) = self.types.get(event_type) else {
            return Ok((version, data));
        };
        while version < entry.current {
            let Some(step) = entry.upcasters.get(&version) else { break };
            data = step(data).map_err(|message| StoreError::Upcast {
                event_type: event_type.to_owned(),
                version,
                message,
            })?;
            version += 1;
        }
        Ok((version, data))
    }
}
