//! # cortex-events
//!
//! Everything PolicyCortex records, and where it is recorded.
//!
//! - [`catalog`]: the typed domain events ([`DomainEvent`]) with their names and versions;
//!   their JSON Schemas live in `schemas/events/`.
//! - [`schema`]: the [`Catalog`] registry that validates new events against those schemas
//!   and upcasts old versions on read.
//! - [`metadata`]: the metadata every event carries, and [`hash`]: the per-stream hash chain
//!   sealed into it on append.
//! - [`stream`]: stream names (`{category}-{uuid}`) and deterministic resource ids.
//! - [`store`]: the [`EventStore`] port, with its adapters [`postgres`] (the default) and
//!   [`kurrent`] (EventStoreDB/KurrentDB). Both pass one conformance suite
//!   (`tests/conformance/`).
//! - [`wire`]: NATS subjects and messages, and the cache-key prefix, shared by the processes.
//!
//! Data flow: a command handler turns [`DomainEvent`]s into [`NewEvent`]s with a
//! [`Provenance`]; the store checks them against the [`Catalog`], seals them into the
//! stream's hash chain and appends them at the expected revision; subscribers follow `$all`
//! and receive [`RecordedEvent`]s, upcast to the current version, in one total order.

pub mod catalog;
pub mod hash;
pub mod kurrent;
pub mod metadata;
pub mod position;
pub mod postgres;
pub mod schema;
pub mod store;
pub mod stream;
pub mod testing;
pub mod wire;

pub use catalog::DomainEvent;
pub use metadata::{EventMetadata, NewEvent, Provenance};
pub use position::{InvalidPositionToken, Position};
pub use schema::{Catalog, CatalogError};
pub use store::{
    AppendOutcome, Direction, EventFilter, EventStore, ExpectedRevision, FROM_END, FROM_START,
    MAX_APPEND_BYTES, RecordedEvent, SchemaFault, StoreError, SubscriptionItem,
};
pub use stream::{InvalidStreamName, StreamName, resource_id};
