//! The KurrentDB (EventStoreDB) adapter of the [`EventStore`] port, over the official
//! `kurrentdb` gRPC client.
//!
//! - Storage: one KurrentDB event per [`NewEvent`], JSON data, our event id, and our sealed
//!   [`EventMetadata`](crate::EventMetadata) as the event's custom metadata, so a replay can
//!   verify the hash chain.
//! - `connection`: the client, renewed when its connection task dies, and the parsing of
//!   the connection string (the password kept out of errors). Every call below takes a
//!   lease on it and reports to it the errors the call got back.
//! - `codec`: the storage format — positions; the chain sealed into the metadata on the
//!   way in; decoding, the metadata check and upcasting on the way out.
//! - `append`: [`EventStore::append`] — validation, the hash chain (the previous hash is
//!   read from the stream), optimistic concurrency by `StreamState`, idempotent retries,
//!   and the client's errors in the port's terms.
//! - `read`: the stream reads behind [`EventStore::read_stream`] and the appends, and the
//!   `$all` reads behind [`EventStore::head`] and the subscription watchdog.
//! - `subscribe`: [`EventStore::subscribe_all`], a supervised catch-up subscription to
//!   `$all` (server-side filter from `server_filter`, client-side re-check, our own
//!   caught-up signal, watchdog, resubscription with backoff from the exact last position).
//!
//! System events (`$`-prefixed types or streams) are never delivered. Where the client's
//! semantics differ from the port's (exclusive subscription starts, idempotency only under
//! an explicit revision, `CaughtUp` only from 23.10), the code says how it bridges them.

mod append;
mod codec;
mod connection;
mod read;
mod server_filter;
mod subscribe;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::stream::BoxStream;
use kurrentdb::StreamState;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use self::{
    codec::{RawEvent, decode, from_kurrent_position},
    connection::Connection,
    read::{non_system_head, read_raw, read_stream_options},
    subscribe::Follower,
};
use crate::{
    AppendOutcome, Catalog, Direction, EventFilter, EventStore, ExpectedRevision, NewEvent, Position,
    RecordedEvent, StoreError, StreamName, SubscriptionItem, hash::GENESIS_HASH, store::check_append,
};

/// Silence on a subscription after which the watchdog compares the head with it.
const DEFAULT_WATCHDOG: Duration = Duration::from_secs(30);
/// Attempts of an `Any`/`StreamExists` append that lost a race to a concurrent writer.
const RACED_APPEND_ATTEMPTS: usize = 5;
/// Resubscription backoff after transient errors: first delay, cap, attempts in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const RESUBSCRIBE_ATTEMPTS: u32 = 10;
/// Items buffered between the subscription task and its consumer.
const SUBSCRIPTION_BUFFER: usize = 256;
/// Server messages buffered between the gRPC reader and the subscription task.
const PUMP_BUFFER: usize = 64;
/// Events per backward page while looking for the head.
const HEAD_PAGE: usize = 32;
/// gRPC status code `INVALID_ARGUMENT` (the client re-exports no `tonic::Code`).
const GRPC_INVALID_ARGUMENT: i32 = 3;
const GRPC_ABORTED: i32 = 10;
const GRPC_RESOURCE_EXHAUSTED: i32 = 8;

/// The KurrentDB adapter. Cheap to clone: the client multiplexes one connection.
#[derive(Clone)]
pub struct KurrentEventStore {
    connection: Arc<Connection>,
    catalog: Arc<Catalog>,
    watchdog: Duration,
}

impl fmt::Debug for KurrentEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The settings hold credentials: never print them.
        f.debug_struct("KurrentEventStore")
            .field("catalog", &self.catalog)
            .field("watchdog", &self.watchdog)
            .finish_non_exhaustive()
    }
}

impl KurrentEventStore {
    /// A store for a `kurrentdb://`, `kurrent://`, `esdb://` (or `+discover`) connection
    /// string. Connects lazily, on the first call; must be called within a Tokio runtime,
    /// which then runs the client's connection task and the subscriptions.
    pub fn new(connection_string: &str, catalog: Arc<Catalog>) -> Result<Self, StoreError> {
        let connection = Connection::new(connection_string)?;
        Ok(Self { connection: Arc::new(connection), catalog, watchdog: DEFAULT_WATCHDOG })
    }

    /// How long a subscription may stay silent before the watchdog checks whether the head
    /// moved past it (and resubscribes if so). Default 30 s.
    pub fn with_watchdog(mut self, idle: Duration) -> Self {
        self.watchdog = idle;
        self
    }
}

#[async_trait]
impl EventStore for KurrentEventStore {
    #[tracing::instrument(
        skip(self, events),
        fields(stream = %stream, expected = %expected, events = events.len())
    )]
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_append(self.catalog(), &events)?;
        match expected {
            ExpectedRevision::Exact(revision) => self.append_exact(stream, revision, &events).await,
            ExpectedRevision::NoStream => {
                self.append_at(stream, expected, StreamState::NoStream, GENESIS_HASH, &events).await
            }
            ExpectedRevision::Any | ExpectedRevision::StreamExists => {
                self.append_after_tail(stream, expected, &events).await
            }
        }
    }

    /// Missing, soft-deleted and tombstoned streams all read as empty: the port knows only
    /// "exists or not", and a tombstoned stream has no events to give.
    #[tracing::instrument(skip(self), fields(stream = %stream))]
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        dir: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let raw =
            read_raw(&self.connection, stream, &read_stream_options(from, dir, max), "read stream").await?;
        raw.iter().filter_map(|e| decode(&self.catalog, &RawEvent::from(e)).transpose()).collect()
    }

    fn subscribe_all(
        &self,
        from: Option<Position>,
        filter: EventFilter,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let span = tracing::info_span!("kurrent_subscription", from = ?from, filter = ?filter);
        let follower = Follower::new(self, from, filter, tx);
        self.connection.runtime().spawn(follower.run().instrument(span));
        Box::pin(ReceiverStream::new(rx))
    }

    #[tracing::instrument(skip(self))]
    async fn head(&self) -> Result<Option<Position>, StoreError> {
        Ok(non_system_head(&self.connection).await?.map(from_kurrent_position))
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A catalog with one event type at two versions and the upcaster between them, shared
    /// by the tests of the submodules.
    pub(super) fn catalog() -> Catalog {
        fn add_unit(mut data: Value) -> Result<Value, String> {
            data["unit"] = json!("celsius");
            Ok(data)
        }
        Catalog::builder()
            .schema("Measured", 1, json!({"type": "object"}))
            .schema("Measured", 2, json!({"type": "object"}))
            .upcaster("Measured", 1, add_unit)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_constructor_needs_no_server() {
        let store = KurrentEventStore::new("kurrentdb://localhost:1?tls=false", Arc::new(catalog()))
            .unwrap()
            .with_watchdog(Duration::from_secs(1));
        assert_eq!(store.watchdog, Duration::from_secs(1));
        assert!(format!("{store:?}").contains("watchdog"));
    }

    #[test]
    fn the_constructor_outside_a_runtime_is_an_error_not_a_panic() {
        let refused = KurrentEventStore::new("kurrentdb://localhost:1?tls=false", Arc::new(catalog()));
        assert!(matches!(refused, Err(StoreError::Kurrent { step: "find a tokio runtime", .. })));
    }
}
