//! The `EventStore` port: what every adapter provides, with KurrentDB's semantics.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{Catalog, EventMetadata, NewEvent, Position, StreamName};

/// Largest append accepted, in bytes of serialised data and metadata (KurrentDB's default
/// `MaxAppendSize`; both adapters enforce it so that behaviour does not depend on the store).
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// The first revision of a stream, for forward reads.
pub const FROM_START: u64 = 0;
/// The last revision of a stream, for backward reads.
pub const FROM_END: u64 = u64::MAX;

/// Optimistic-concurrency precondition of an append (KurrentDB's `StreamState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "revision")]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("stream exists"),
            Self::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// A successful append: the revision of the stream's last event and its position in `$all`.
/// An idempotent retry answers the original append's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub revision: u64,
    pub position: Position,
}

/// An event as stored, upcast to the current version of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub stream: StreamName,
    pub revision: u64,
    pub position: Position,
    pub event_type: String,
    /// The version of `data` (after upcasting); `metadata.schema_version` is the stored one.
    pub schema_version: u32,
    pub data: Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    /// The data as stored, when upcasting changed it (the hash covers this form).
    pub stored_data: Option<Value>,
}

impl RecordedEvent {
    pub fn event_id(&self) -> Uuid {
        self.metadata.event_id
    }

    pub fn tenant_id(&self) -> Uuid {
        self.metadata.tenant_id
    }

    /// The data exactly as written, before any upcasting.
    pub fn data_as_stored(&self) -> &Value {
        self.stored_data.as_ref().unwrap_or(&self.data)
    }

    /// Whether the stored hash matches the event's content and its `prev_hash`.
    pub fn hash_is_intact(&self) -> bool {
        self.metadata.expected_hash(&self.event_type, self.data_as_stored()) == self.metadata.hash
    }
}

/// Which events a subscription delivers. Empty lists mean "all"; both lists set means both
/// must match. System events (KurrentDB's `$`-prefixed types and streams) never match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub categories: Vec<String>,
    pub event_types: Vec<String>,
}

impl EventFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn categories<I: IntoIterator<Item = S>, S: Into<String>>(mut self, categories: I) -> Self {
        self.categories = categories.into_iter().map(Into::into).collect();
        self
    }

    pub fn event_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    pub fn is_all(&self) -> bool {
        self.categories.is_empty() && self.event_types.is_empty()
    }

    pub fn matches(&self, category: &str, event_type: &str) -> bool {
        !event_type.starts_with('$')
            && !category.starts_with('$')
            && (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionItem {
    Event(Box<RecordedEvent>),
    /// Every event before this point has been delivered; live events follow. Sent once.
    CaughtUp,
    /// Events up to this position were scanned and none since the last item matched the
    /// filter: a subscriber may store it as its checkpoint (an exclusive start).
    Checkpoint(Position),
}

/// One field of event data that violates its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaFault {
    /// JSON pointer into the event's data.
    pub pointer: String,
    pub message: String,
}

/// Everything an adapter can answer instead of success. Bad input is refused before
/// anything is written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("wrong expected revision on {stream}: expected {expected}, stream is at {}", describe_actual(*actual))]
    WrongExpectedRevision {
        stream: StreamName,
        expected: ExpectedRevision,
        /// The stream's last revision, `None` when it does not exist.
        actual: Option<u64>,
    },
    #[error("event type {event_type:?} is not in the catalog")]
    UnknownEventType { event_type: String },
    #[error("{event_type} v{version} is not the current schema version (v{current}) of that type")]
    NotCurrentSchemaVersion { event_type: String, version: u32, current: u32 },
    #[error("event {event_id} ({event_type} v{version}) violates its schema: {}", describe_faults(faults))]
    SchemaViolation { event_type: String, version: u32, event_id: Uuid, faults: Vec<SchemaFault> },
    #[error("append of {size} bytes exceeds the limit of {limit} bytes")]
    AppendTooLarge { size: usize, limit: usize },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("event id {event_id} appears twice in one append")]
    DuplicateEventInAppend { event_id: Uuid },
    #[error(
        "event id {event_id} is already stored (in {stream} at revision {revision}) and this append is not a retry of that one"
    )]
    DuplicateEventId { event_id: Uuid, stream: StreamName, revision: u64 },
    #[error("upcasting {event_type} from v{version} failed: {message}")]
    Upcast { event_type: String, version: u32, message: String },
    #[error("stored event at {position} in {stream} is unreadable: {message}")]
    Corrupt { stream: String, position: Position, message: String },
    #[error("postgresql: {step}")]
    Postgres {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("kurrentdb: {step}")]
    Kurrent {
        step: &'static str,
        #[source]
        source: kurrentdb::Error,
    },
    /// The failure of one read of `$all` that several subscribers share (a rebuild of every
    /// projection), as each of them receives it.
    #[error("a read of $all shared by several subscribers failed")]
    Shared(#[source] std::sync::Arc<StoreError>),
}

fn describe_actual(actual: Option<u64>) -> String {
    actual.map_or_else(|| "no stream".to_owned(), |r| format!("revision {r}"))
}

fn describe_faults(faults: &[SchemaFault]) -> String {
    faults
        .iter()
        .map(|f| format!("{}: {}", if f.pointer.is_empty() { "/" } else { &f.pointer }, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl StoreError {
    /// Whether retrying the same call later may succeed (connection trouble), as opposed to
    /// a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Shared(inner) => inner.is_transient(),
            Self::Postgres { source, .. } => matches!(
                source,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            Self::Kurrent { source, .. } => {
                matches!(
                    source,
                    kurrentdb::Error::GrpcConnectionError(_)
                        | kurrentdb::Error::ConnectionClosed
                        | kurrentdb::Error::ServerError(_)
                        | kurrentdb::Error::NotLeaderException(_)
                        | kurrentdb::Error::DeadlineExceeded
                ) || matches!(
                    source,
                    // gRPC ABORTED, RESOURCE_EXHAUSTED, UNAVAILABLE: how a server sheds a slow or
                    // surplus client (the client crate re-exports no `tonic::Code`).
                    kurrentdb::Error::Grpc { code, .. } if matches!(i32::from(*code), 10 | 8 | 14)
                )
            }
            _ => false,
        }
    }
}

/// The event store port (DESIGN §2).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` atomically if `expected` holds. Retrying an append with
    /// the same event ids at the same revision succeeds without writing twice.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Up to `max` events of one stream from revision `from` (inclusive), in `dir` order.
    /// A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        dir: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event of each of `streams`, forwards, for a handler that decides many aggregates
    /// at once (a batch of inventory records). Streams with no events are absent from the
    /// answer. The default reads the streams one after another; adapters with a cheaper way
    /// override it.
    async fn read_streams(
        &self,
        streams: &[StreamName],
    ) -> Result<std::collections::HashMap<StreamName, Vec<RecordedEvent>>, StoreError> {
        const PAGE: usize = 1024;
        let mut found = std::collections::HashMap::with_capacity(streams.len());
        for stream in streams {
            let mut events: Vec<RecordedEvent> = Vec::new();
            loop {
                let from = events.last().map_or(FROM_START, |e| e.revision + 1);
                let page = self.read_stream(stream, from, Direction::Forwards, PAGE).await?;
                let full = page.len() == PAGE;
                events.extend(page);
                if !full {
                    break;
                }
            }
            if !events.is_empty() {
                found.insert(stream.clone(), events);
            }
        }
        Ok(found)
    }

    /// Follows `$all` after `from` (exclusive; `None` = from the start): the stored events,
    /// then [`SubscriptionItem::CaughtUp`], then live events as they commit, in one total
    /// order consistent with every stream's order. The stream ends only when dropped, or
    /// after yielding an error.
    fn subscribe_all(
        &self,
        from: Option<Position>,
        filter: EventFilter,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>>;

    /// Position of the last committed event (`None` for an empty store): a subscriber
    /// started now receives it before `CaughtUp`.
    async fn head(&self) -> Result<Option<Position>, StoreError>;

    /// How many events of `$all` lie after `from` (exclusive; `None` = all of them), for
    /// lag and progress figures. `None` when the store cannot count cheaply (KurrentDB).
    async fn count_after(&self, from: Option<Position>) -> Result<Option<u64>, StoreError> {
        let _ = from;
        Ok(None)
    }

    /// The schema registry this store validates and upcasts with.
    fn catalog(&self) -> &Catalog;
}

/// Checks shared by every adapter before anything is written: non-empty, no id twice, every
/// event valid against the catalog, and under the size limit.
pub fn check_append(catalog: &Catalog, events: &[NewEvent]) -> Result<(), StoreError> {
    let lens: Vec<usize> =
        events.iter().map(|e| serde_json::to_string(&e.data).map_or(0, |s| s.len())).collect();
    check_append_sized(catalog, events, &lens)
}

/// [`check_append`] for a writer that has already serialised each event's data (its byte
/// length in `data_lens`, one per event), so that it is not serialised once more.
pub fn check_append_sized(
    catalog: &Catalog,
    events: &[NewEvent],
    data_lens: &[usize],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    let mut ids = std::collections::HashSet::with_capacity(events.len());
    let mut size = 0usize;
    for (i, e) in events.iter().enumerate() {
        if !ids.insert(e.event_id) {
            return Err(StoreError::DuplicateEventInAppend { event_id: e.event_id });
        }
        catalog.validate(e)?;
        // Data plus the metadata's own size (ids, hashes, timestamps, actor, trace).
        size += data_lens.get(i).copied().unwrap_or(0)
            + 400
            + e.event_type.len()
            + e.provenance.actor.len()
            + e.provenance.traceparent.as_ref().map_or(0, String::len);
    }
    if size > MAX_APPEND_BYTES {
        return Err(StoreError::AppendTooLarge { size, limit: MAX_APPEND_BYTES });
    }
    Ok(())
}
