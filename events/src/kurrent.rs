//! The KurrentDB (EventStoreDB) adapter of the [`EventStore`] port, over the official
//! `kurrentdb` gRPC client.
//!
//! - Storage: one KurrentDB event per [`NewEvent`], JSON data, our event id, and our sealed
//!   [`EventMetadata`] as the event's custom metadata, so a replay can verify the hash chain.
//! - [`EventStore::append`]: validation, the hash chain (the previous hash is read from the
//!   stream), optimistic concurrency by `StreamState`, idempotent retries.
//! - [`EventStore::read_stream`] and [`EventStore::head`].
//! - [`EventStore::subscribe_all`]: a supervised catch-up subscription to `$all` (server-side
//!   filter, client-side re-check, our own caught-up signal, watchdog, resubscription with
//!   backoff from the exact last position).
//! - `Connection`: the client, renewed when its connection task dies.
//!
//! System events (`$`-prefixed types or streams) are never delivered. Where the client's
//! semantics differ from the port's (exclusive subscription starts, idempotency only under
//! an explicit revision, `CaughtUp` only from 23.10), the code says how it bridges them.

use std::{
    convert::Infallible,
    fmt,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, ReadAllOptions,
    ReadStreamOptions, ResolvedEvent, StreamPosition, StreamState, SubscribeToAllOptions, Subscription,
    SubscriptionEvent, SubscriptionFilter,
};
use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    AppendOutcome, Catalog, Direction, EventFilter, EventMetadata, EventStore, ExpectedRevision, FROM_END,
    MAX_APPEND_BYTES, NewEvent, Position, RecordedEvent, StoreError, StreamName, SubscriptionItem,
    hash::GENESIS_HASH, store::check_append,
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
        let settings = parse_settings(connection_string)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            init_error("find a tokio runtime", format!("the KurrentDB client needs one: {e}"))
        })?;
        let client = Client::with_runtime_handle(runtime.clone(), settings.clone())
            .map_err(|e| init_error("create the client", format!("{e:#}")))?;
        let connection =
            Connection { settings, runtime, current: RwLock::new(Lease { generation: 0, client }) };
        Ok(Self { connection: Arc::new(connection), catalog, watchdog: DEFAULT_WATCHDOG })
    }

    /// How long a subscription may stay silent before the watchdog checks whether the head
    /// moved past it (and resubscribes if so). Default 30 s.
    pub fn with_watchdog(mut self, idle: Duration) -> Self {
        self.watchdog = idle;
        self
    }

    /// The hash of the event at `revision`, if the stream has it.
    async fn hash_at(&self, stream: &StreamName, revision: u64) -> Result<Option<String>, StoreError> {
        let options =
            ReadStreamOptions::default().position(StreamPosition::Position(revision)).forwards().max_count(1);
        let found = read_raw(&self.connection, stream, &options, "read the previous event").await?;
        found.iter().find(|e| e.revision == revision).map(|e| stored_metadata(e).map(|m| m.hash)).transpose()
    }

    /// The stream's last `count` events, newest first; empty for a missing stream.
    async fn tail(
        &self,
        stream: &StreamName,
        count: usize,
    ) -> Result<Vec<kurrentdb::RecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default().position(StreamPosition::End).backwards().max_count(count);
        read_raw(&self.connection, stream, &options, "read the end of the stream").await
    }

    /// One append under an explicit state. Under `NoStream` or a revision, the server
    /// answers a retry of the same ids with the original outcome.
    async fn append_at(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        state: StreamState,
        prev_hash: &str,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let (batch, size) = encode(events, prev_hash)?;
        let options = AppendToStreamOptions::default().stream_state(state);
        let lease = self.connection.lease();
        let written = lease.client.append_to_stream(stream.as_str(), &options, batch).await.map_err(|e| {
            self.connection.failed(&lease, &e);
            append_error(stream, expected, size, e)
        })?;
        let position = self.written_position(stream, &written).await?;
        Ok(AppendOutcome { revision: written.next_expected_version, position })
    }

    /// The `$all` position of an append's last event. An idempotent retry may come back
    /// without a position, which the client reports as `Position::start()`: read it then.
    async fn written_position(
        &self,
        stream: &StreamName,
        written: &kurrentdb::WriteResult,
    ) -> Result<Position, StoreError> {
        if written.position != kurrentdb::Position::start() {
            return Ok(from_kurrent_position(written.position));
        }
        let options = ReadStreamOptions::default()
            .position(StreamPosition::Position(written.next_expected_version))
            .forwards()
            .max_count(1);
        let found = read_raw(&self.connection, stream, &options, "read the position of an append").await?;
        found.first().map(|e| from_kurrent_position(e.position)).ok_or(StoreError::Kurrent {
            step: "read the position of an append",
            source: kurrentdb::Error::ResourceNotFound,
        })
    }

    /// `Exact(n)`: chain after the event at `n`; the server checks the revision. When `n`
    /// does not exist the server refuses the append, so the genesis hash is never stored.
    async fn append_exact(
        &self,
        stream: &StreamName,
        revision: u64,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let prev = self.hash_at(stream, revision).await?.unwrap_or_else(|| GENESIS_HASH.to_owned());
        let state = StreamState::StreamRevision(revision);
        self.append_at(stream, ExpectedRevision::Exact(revision), state, &prev, events).await
    }

    /// `Any` / `StreamExists`: the server only has a volatile id cache there, so we check the
    /// tail for a retry ourselves, then append at the exact revision we read (the chain must
    /// follow the event it was sealed after) and re-read after losing a race.
    async fn append_after_tail(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        // A soft-deleted stream reads as empty but continues at its old revision, which
        // only the server's refusal tells us.
        let mut revision_hint = None;
        let mut attempt = 1;
        loop {
            let tail = self.tail(stream, events.len()).await?;
            if let Some(done) = earlier_append(stream, &tail, events)? {
                return Ok(done);
            }
            let (state, prev) = match tail.first() {
                Some(last) => (StreamState::StreamRevision(last.revision), stored_metadata(last)?.hash),
                None if expected == ExpectedRevision::StreamExists => {
                    return Err(StoreError::WrongExpectedRevision {
                        stream: stream.clone(),
                        expected,
                        actual: None,
                    });
                }
                None => (
                    revision_hint.map_or(StreamState::NoStream, StreamState::StreamRevision),
                    GENESIS_HASH.to_owned(),
                ),
            };
            match self.append_at(stream, expected, state, &prev, events).await {
                Err(StoreError::WrongExpectedRevision { actual, .. }) if attempt < RACED_APPEND_ATTEMPTS => {
                    tracing::debug!(attempt, ?actual, "lost an append race; re-reading the stream");
                    revision_hint = if tail.is_empty() { actual } else { None };
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

#[async_trait]
impl EventStore for KurrentEventStore {
    #[tracing::instrument(
        skip(self, events),
        fields(stream = %stream, expected = %expected, events = events.len()),
        err(level = "warn")
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
    #[tracing::instrument(skip(self), fields(stream = %stream), err)]
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
        self.connection.runtime.spawn(follower.run().instrument(span));
        Box::pin(ReceiverStream::new(rx))
    }

    #[tracing::instrument(skip(self), err)]
    async fn head(&self) -> Result<Option<Position>, StoreError> {
        Ok(non_system_head(&self.connection).await?.map(from_kurrent_position))
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

// ----- connection -----------------------------------------------------------------------

/// The client, renewed when its connection task has ended. The client never restarts that
/// task after a failed (re)connection (e.g. the server was down at the first call, as when
/// PolicyCortex starts before KurrentDB) and then answers every call with
/// `ConnectionClosed`, forever.
struct Connection {
    settings: ClientSettings,
    runtime: tokio::runtime::Handle,
    current: RwLock<Lease>,
}

/// One client and its generation, so that the many callers that saw it die renew it once.
#[derive(Clone)]
struct Lease {
    generation: u64,
    client: Client,
}

impl Connection {
    fn lease(&self) -> Lease {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Notes that a call on `lease` failed with `error`; renews the client if the error
    /// says its connection task is gone (the client returns these two only then).
    fn failed(&self, lease: &Lease, error: &kurrentdb::Error) {
        if !matches!(error, kurrentdb::Error::ConnectionClosed | kurrentdb::Error::GrpcConnectionError(_)) {
            return;
        }
        // Built under the lock: a client built and then discarded would leak its idle
        // connection task. Building does no network I/O.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.generation != lease.generation {
            return;
        }
        match Client::with_runtime_handle(self.runtime.clone(), self.settings.clone()) {
            Ok(client) => {
                *current = Lease { generation: lease.generation + 1, client };
                tracing::warn!(cause = %error, generation = current.generation, "renewed the KurrentDB client");
            }
            Err(e) => tracing::error!(cause = %error, error = %e, "could not renew the KurrentDB client"),
        }
    }

    fn fail(&self, lease: &Lease, step: &'static str, source: kurrentdb::Error) -> StoreError {
        self.failed(lease, &source);
        StoreError::Kurrent { step, source }
    }
}

fn parse_settings(connection_string: &str) -> Result<ClientSettings, StoreError> {
    connection_string.parse::<ClientSettings>().map_err(|e| StoreError::Kurrent {
        step: "parse connection string",
        source: kurrentdb::Error::InitializationError(redact_userinfo(&e.to_string(), connection_string)),
    })
}

fn init_error(step: &'static str, message: String) -> StoreError {
    StoreError::Kurrent { step, source: kurrentdb::Error::InitializationError(message) }
}

/// `message` with every copy of `connection_string` replaced by a copy without its password
/// (the client's parse errors may quote the whole string).
fn redact_userinfo(message: &str, connection_string: &str) -> String {
    let Some((scheme, rest)) = connection_string.split_once("://") else {
        return message.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => message.replace(connection_string, &format!("{scheme}://***@{}", &rest[at + 1..])),
        None => message.to_owned(),
    }
}

// ----- mapping between the port and the client --------------------------------------------

fn from_kurrent_position(p: kurrentdb::Position) -> Position {
    Position::new(p.commit, p.prepare)
}

fn to_kurrent_position(p: Position) -> kurrentdb::Position {
    kurrentdb::Position { commit: p.major, prepare: p.minor }
}

/// The stream's last revision as the port reports it (`None`: no stream).
fn actual_revision(current: CurrentRevision) -> Option<u64> {
    match current {
        CurrentRevision::Current(revision) => Some(revision),
        CurrentRevision::NoStream => None,
    }
}

/// An append error in the port's terms. `size` is what we sent, for `AppendTooLarge`.
fn append_error(
    stream: &StreamName,
    expected: ExpectedRevision,
    size: usize,
    source: kurrentdb::Error,
) -> StoreError {
    match source {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => StoreError::WrongExpectedRevision {
            stream: stream.clone(),
            expected,
            actual: actual_revision(current),
        },
        // The server says "Maximum Append Size of 1048576 Exceeded." (its limit may be
        // configured differently from ours, which `check_append` enforces first).
        kurrentdb::Error::Grpc { code, message }
            if i32::from(code) == GRPC_INVALID_ARGUMENT && message.to_ascii_lowercase().contains("size") =>
        {
            StoreError::AppendTooLarge { size, limit: first_number(&message).unwrap_or(MAX_APPEND_BYTES) }
        }
        source => StoreError::Kurrent { step: "append", source },
    }
}

fn first_number(text: &str) -> Option<usize> {
    text.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

/// Whether a subscription should be re-opened after this error: the port's transient
/// errors, plus the gRPC codes a server uses to drop a subscriber it wants re-opened
/// ("consumer too slow", shutdown of a subscription).
fn is_resubscribable(error: &StoreError) -> bool {
    error.is_transient()
        || matches!(error, StoreError::Kurrent { source: kurrentdb::Error::Grpc { code, .. }, .. }
            if matches!(i32::from(*code), GRPC_ABORTED | GRPC_RESOURCE_EXHAUSTED))
}

fn read_stream_options(from: u64, dir: Direction, max: usize) -> ReadStreamOptions {
    let options = ReadStreamOptions::default().max_count(max);
    // `position(End)` forces backwards, so the direction is always set after it.
    match dir {
        Direction::Forwards => options.position(StreamPosition::Position(from)).forwards(),
        Direction::Backwards if from == FROM_END => options.position(StreamPosition::End).backwards(),
        Direction::Backwards => options.position(StreamPosition::Position(from)).backwards(),
    }
}

fn category_of(stream: &str) -> &str {
    stream.split_once('-').map_or(stream, |(category, _)| category)
}

fn is_system(stream: &str, event_type: &str) -> bool {
    stream.starts_with('$') || event_type.starts_with('$')
}

// ----- storage format --------------------------------------------------------------------

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
fn encode(events: &[NewEvent], prev_hash: &str) -> Result<(Vec<EventData>, usize), StoreError> {
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
struct RawEvent<'a> {
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
fn decode(catalog: &Catalog, raw: &RawEvent<'_>) -> Result<Option<RecordedEvent>, StoreError> {
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

fn stored_metadata(e: &kurrentdb::RecordedEvent) -> Result<EventMetadata, StoreError> {
    RawEvent::from(e).metadata()
}

/// When the stream's tail is exactly `events` (same ids, same order), the outcome of that
/// earlier append; an id of `events` elsewhere in the tail is a duplicate, not a retry.
fn earlier_append(
    stream: &StreamName,
    tail_newest_first: &[kurrentdb::RecordedEvent],
    events: &[NewEvent],
) -> Result<Option<AppendOutcome>, StoreError> {
    let retried = tail_newest_first.len() == events.len()
        && tail_newest_first.iter().rev().zip(events).all(|(stored, new)| stored.id == new.event_id);
    if retried {
        let last = &tail_newest_first[0];
        return Ok(Some(AppendOutcome {
            revision: last.revision,
            position: from_kurrent_position(last.position),
        }));
    }
    match tail_newest_first.iter().find(|stored| events.iter().any(|e| e.event_id == stored.id)) {
        Some(stored) => Err(StoreError::DuplicateEventId {
            event_id: stored.id,
            stream: stream.clone(),
            revision: stored.revision,
        }),
        None => Ok(None),
    }
}

// ----- reads -------------------------------------------------------------------------------

fn is_absent(e: &kurrentdb::Error) -> bool {
    matches!(e, kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted)
}

/// The stored events a stream read returns (system events included); empty when the stream
/// is missing or deleted, which the server reports on the first message.
async fn read_raw(
    connection: &Connection,
    stream: &StreamName,
    options: &ReadStreamOptions,
    step: &'static str,
) -> Result<Vec<kurrentdb::RecordedEvent>, StoreError> {
    let lease = connection.lease();
    let mut reader = match lease.client.read_stream(stream.as_str(), options).await {
        Ok(reader) => reader,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(source) => return Err(connection.fail(&lease, step, source)),
    };
    let mut events = Vec::new();
    loop {
        match reader.next().await {
            Ok(Some(resolved)) => events.extend(original_event(resolved)),
            Ok(None) => return Ok(events),
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(source) => return Err(connection.fail(&lease, step, source)),
        }
    }
}

/// The record that was read (the link itself for a link event: links are not resolved).
fn original_event(resolved: ResolvedEvent) -> Option<kurrentdb::RecordedEvent> {
    resolved.link.or(resolved.event)
}

/// The position of the newest non-system event of `$all`; `None` when there is none.
/// The server filters out system streams, we skip system event types in other streams
/// (a tombstone's `$streamDeleted`), paging backwards: there are few at the end of the log.
async fn non_system_head(connection: &Connection) -> Result<Option<kurrentdb::Position>, StoreError> {
    const STEP: &str = "read the head of $all";
    let filter = SubscriptionFilter::on_stream_name().exclude_system_events();
    let mut from = StreamPosition::End;
    loop {
        let options =
            ReadAllOptions::default().position(from).backwards().filter(filter.clone()).max_count(HEAD_PAGE);
        let lease = connection.lease();
        let mut reader =
            lease.client.read_all(&options).await.map_err(|e| connection.fail(&lease, STEP, e))?;
        let mut oldest = None;
        while let Some(resolved) = reader.next().await.map_err(|e| connection.fail(&lease, STEP, e))? {
            let Some(event) = original_event(resolved) else { continue };
            // A read from a position includes it: that event was looked at on the last page.
            if matches!(from, StreamPosition::Position(p) if event.position >= p) {
                continue;
            }
            if !event.event_type.starts_with('$') {
                return Ok(Some(event.position));
            }
            oldest = Some(event.position);
        }
        match oldest {
            Some(p) => from = StreamPosition::Position(p),
            None => return Ok(None),
        }
    }
}

/// Whether `$all` holds an event that passes the server-side `filter` after `after`
/// (exclusive). Reads forwards, so the server scans only what lies after `after`.
async fn has_event_after(
    connection: &Connection,
    filter: SubscriptionFilter,
    after: Option<kurrentdb::Position>,
) -> Result<bool, StoreError> {
    const STEP: &str = "look for events after a subscription's position";
    let start = after.map_or(StreamPosition::Start, StreamPosition::Position);
    // A read from a position includes it, hence two.
    let options = ReadAllOptions::default().position(start).forwards().filter(filter).max_count(2);
    let lease = connection.lease();
    let mut reader = lease.client.read_all(&options).await.map_err(|e| connection.fail(&lease, STEP, e))?;
    while let Some(resolved) = reader.next().await.map_err(|e| connection.fail(&lease, STEP, e))? {
        if original_event(resolved).is_some_and(|e| after.is_none_or(|a| e.position > a)) {
            return Ok(true);
        }
    }
    Ok(false)
}

// ----- subscriptions -------------------------------------------------------------------------

/// The server-side part of an [`EventFilter`]. The server takes one criterion (a regex
/// hides prefixes), so the full filter is always re-applied on the client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerFilter {
    /// A regex on the event type, anchored: `^(A|B)$`.
    EventTypes(String),
    /// Stream-name prefixes `{category}-`, any of which matches.
    StreamPrefixes(Vec<String>),
    /// Every stream whose name does not start with `$`.
    NonSystemStreams,
}

impl ServerFilter {
    fn for_filter(filter: &EventFilter) -> Self {
        if !filter.event_types.is_empty() {
            let alternatives: Vec<String> = filter.event_types.iter().map(|t| escape_regex(t)).collect();
            Self::EventTypes(format!("^({})$", alternatives.join("|")))
        } else if !filter.categories.is_empty() {
            Self::StreamPrefixes(filter.categories.iter().map(|c| format!("{c}-")).collect())
        } else {
            Self::NonSystemStreams
        }
    }

    fn to_kurrent(&self) -> SubscriptionFilter {
        match self {
            Self::EventTypes(regex) => SubscriptionFilter::on_event_type().regex(regex),
            Self::StreamPrefixes(prefixes) => {
                prefixes.iter().fold(SubscriptionFilter::on_stream_name(), |f, prefix| f.add_prefix(prefix))
            }
            Self::NonSystemStreams => SubscriptionFilter::on_stream_name().exclude_system_events(),
        }
    }
}

/// `text` as a literal in a .NET regex (the server's engine): the characters
/// `Regex.Escape` escapes, plus the closing brackets.
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        match c {
            '\\' | '*' | '+' | '?' | '|' | '{' | '}' | '[' | ']' | '(' | ')' | '^' | '$' | '.' | '#'
            | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a subscription that has seen up to `seen` has passed `target` (`None`: nothing
/// to reach).
fn reached(target: Option<kurrentdb::Position>, seen: Option<kurrentdb::Position>) -> bool {
    target.is_none_or(|t| seen.is_some_and(|s| s >= t))
}

/// Delay before resubscription attempt `attempt` (0-based): 100 ms doubling, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(attempt)).min(MAX_BACKOFF)
}

/// Why one server subscription ended.
enum Halt {
    /// The consumer dropped the stream: stop quietly.
    ReceiverGone,
    /// The watchdog found stored events the server did not send: resubscribe now.
    Stalled,
    Failed(StoreError),
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Self::Failed(e)
    }
}

/// Aborts the task reading the server's messages when the subscription is dropped.
struct Pump(JoinHandle<()>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The state of one `subscribe_all` across the server subscriptions it opens.
struct Follower {
    connection: Arc<Connection>,
    catalog: Arc<Catalog>,
    filter: EventFilter,
    server_filter: ServerFilter,
    watchdog: Duration,
    tx: mpsc::Sender<Result<SubscriptionItem, StoreError>>,
    /// The newest position the server sent (event or checkpoint): everything up to it was
    /// delivered or filtered out, so a resubscription starts after it.
    resume_from: Option<kurrentdb::Position>,
    /// The newest event seen, so that a redelivered one is dropped.
    last_event: Option<kurrentdb::Position>,
    /// The newest non-system event when we started (`head()`); passing it means caught up.
    caught_up_target: Option<Option<kurrentdb::Position>>,
    caught_up_sent: bool,
    /// Transient failures in a row since the last progress.
    failures: u32,
}

impl Follower {
    fn new(
        store: &KurrentEventStore,
        from: Option<Position>,
        filter: EventFilter,
        tx: mpsc::Sender<Result<SubscriptionItem, StoreError>>,
    ) -> Self {
        Self {
            connection: Arc::clone(&store.connection),
            catalog: Arc::clone(&store.catalog),
            server_filter: ServerFilter::for_filter(&filter),
            filter,
            watchdog: store.watchdog,
            tx,
            resume_from: from.map(to_kurrent_position),
            last_event: None,
            caught_up_target: None,
            caught_up_sent: false,
            failures: 0,
        }
    }

    async fn run(mut self) {
        loop {
            let Err(halt) = self.follow().await;
            match halt {
                Halt::ReceiverGone => return,
                Halt::Stalled => {
                    tracing::warn!(
                        cause = "watchdog: the server sent nothing while events for us were stored",
                        resume_from = ?self.resume_from,
                        "resubscribing to $all"
                    );
                }
                Halt::Failed(error) if is_resubscribable(&error) && self.failures < RESUBSCRIBE_ATTEMPTS => {
                    let delay = backoff(self.failures);
                    self.failures += 1;
                    tracing::warn!(
                        cause = %error,
                        attempt = self.failures,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        resume_from = ?self.resume_from,
                        "resubscribing to $all"
                    );
                    tokio::select! {
                        () = self.tx.closed() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Halt::Failed(error) => {
                    tracing::error!(%error, "subscription to $all ended");
                    // The consumer may be gone already; then nobody needs the error.
                    let _ = self.tx.send(Err(error)).await;
                    return;
                }
            }
        }
    }

    /// Opens one server subscription and serves it until it halts.
    async fn follow(&mut self) -> Result<Infallible, Halt> {
        if self.caught_up_target.is_none() {
            let target = non_system_head(&self.connection).await?;
            self.caught_up_target = Some(target);
            self.check_caught_up().await?;
        }
        let (mut messages, lease, _pump) = self.open();
        loop {
            let received = tokio::select! {
                () = self.tx.closed() => return Err(Halt::ReceiverGone),
                received = tokio::time::timeout(self.watchdog, messages.recv()) => received,
            };
            match received {
                Err(_silence) => self.on_silence().await?,
                Ok(Some(Ok(message))) => self.on_message(message).await?,
                Ok(Some(Err(source))) => {
                    return Err(self.connection.fail(&lease, "follow $all", source).into());
                }
                // The pump stops only after sending an error, so this is a lost connection.
                Ok(None) => {
                    let source = kurrentdb::Error::ConnectionClosed;
                    return Err(StoreError::Kurrent { step: "follow $all", source }.into());
                }
            }
        }
    }

    /// A server subscription after `resume_from`, read by its own task so that the watchdog
    /// never cancels the client mid-message (its `next_subscription_event` is not
    /// cancel-safe: it would silently reconnect from its own idea of the position).
    fn open(&self) -> (mpsc::Receiver<kurrentdb::Result<SubscriptionEvent>>, Lease, Pump) {
        let start = self.resume_from.map_or(StreamPosition::Start, StreamPosition::Position);
        let options =
            SubscribeToAllOptions::default().position(start).filter(self.server_filter.to_kurrent());
        let lease = self.connection.lease();
        let client = lease.client.clone();
        let (tx, rx) = mpsc::channel(PUMP_BUFFER);
        let pump = tokio::spawn(
            async move {
                let subscription = client.subscribe_to_all(&options).await;
                pump(subscription, tx).await;
            }
            .in_current_span(),
        );
        (rx, lease, Pump(pump))
    }

    async fn on_message(&mut self, message: SubscriptionEvent) -> Result<(), Halt> {
        match message {
            SubscriptionEvent::EventAppeared(resolved) => {
                self.failures = 0;
                match original_event(resolved) {
                    Some(event) => self.on_event(&event).await,
                    None => Ok(()),
                }
            }
            SubscriptionEvent::Checkpoint(position) => {
                self.failures = 0;
                self.on_checkpoint(position).await
            }
            SubscriptionEvent::CaughtUp(_) => {
                self.failures = 0;
                self.send_caught_up().await
            }
            SubscriptionEvent::Confirmed(id) => {
                tracing::debug!(subscription_id = %id, resume_from = ?self.resume_from, "subscribed to $all");
                Ok(())
            }
            // FellBehind is never sent by current servers; the positions are for stream
            // subscriptions.
            SubscriptionEvent::FellBehind(_)
            | SubscriptionEvent::FirstStreamPosition(_)
            | SubscriptionEvent::LastStreamPosition(_)
            | SubscriptionEvent::LastAllPosition(_) => Ok(()),
        }
    }

    async fn on_event(&mut self, event: &kurrentdb::RecordedEvent) -> Result<(), Halt> {
        if self.last_event.is_some_and(|last| event.position <= last) {
            return Ok(()); // delivered before a resubscription
        }
        self.last_event = Some(event.position);
        self.advance(event.position);
        if self.filter.matches(category_of(event.stream_id()), &event.event_type) {
            if let Some(recorded) = decode(&self.catalog, &RawEvent::from(event))? {
                self.send(SubscriptionItem::Event(Box::new(recorded))).await?;
            }
        }
        self.check_caught_up().await
    }

    async fn on_checkpoint(&mut self, position: kurrentdb::Position) -> Result<(), Halt> {
        // A checkpoint that does not advance tells the consumer nothing new.
        if self.resume_from.is_none_or(|seen| position > seen) {
            self.advance(position);
            self.send(SubscriptionItem::Checkpoint(from_kurrent_position(position))).await?;
        }
        self.check_caught_up().await
    }

    /// No message for a watchdog period: either nothing happened, or the server stopped
    /// sending. Look for an event it should have sent.
    async fn on_silence(&mut self) -> Result<(), Halt> {
        if has_event_after(&self.connection, self.server_filter.to_kurrent(), self.resume_from).await? {
            return Err(Halt::Stalled);
        }
        // Everything the server would send has been seen: caught up, whatever the server
        // (older than 23.10, or a lost message) said.
        if !self.caught_up_sent {
            self.send_caught_up().await?;
        }
        Ok(())
    }

    fn advance(&mut self, position: kurrentdb::Position) {
        if self.resume_from.is_none_or(|seen| position > seen) {
            self.resume_from = Some(position);
        }
    }

    /// Our own caught-up signal, for servers that send none (before 23.10). With a filter,
    /// the last events before the target may be filtered out and no checkpoint may cover
    /// them; the watchdog's look then says it.
    async fn check_caught_up(&mut self) -> Result<(), Halt> {
        match self.caught_up_target {
            Some(target) if !self.caught_up_sent && reached(target, self.resume_from) => {
                self.send_caught_up().await
            }
            _ => Ok(()),
        }
    }

    async fn send_caught_up(&mut self) -> Result<(), Halt> {
        if self.caught_up_sent {
            return Ok(());
        }
        self.caught_up_sent = true;
        self.send(SubscriptionItem::CaughtUp).await
    }

    async fn send(&self, item: SubscriptionItem) -> Result<(), Halt> {
        self.tx.send(Ok(item)).await.map_err(|_| Halt::ReceiverGone)
    }
}

/// Forwards a subscription's messages until its first error (included) or until the
/// receiver is gone.
async fn pump(mut subscription: Subscription, tx: mpsc::Sender<kurrentdb::Result<SubscriptionEvent>>) {
    loop {
        let message = subscription.next_subscription_event().await;
        let failed = message.is_err();
        if tx.send(message).await.is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Provenance;

    fn catalog() -> Catalog {
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

    fn new_event(event_type: &str, version: u32) -> NewEvent {
        NewEvent::new(event_type, version, json!({"value": 21}), Provenance::system(Uuid::now_v7(), "test"))
    }

    fn stream() -> StreamName {
        StreamName::parse("resource-1").unwrap()
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
    fn event_types_are_filtered_on_the_server_by_an_anchored_escaped_regex() {
        let filter = EventFilter::all().event_types(["PolicyCreated", "a.b|c(d)$"]).categories(["policy"]);
        assert_eq!(
            ServerFilter::for_filter(&filter),
            ServerFilter::EventTypes(r"^(PolicyCreated|a\.b\|c\(d\)\$)$".to_owned())
        );
    }

    #[test]
    fn categories_alone_are_filtered_on_the_server_by_stream_prefix() {
        let filter = EventFilter::all().categories(["resource", "policy"]);
        assert_eq!(
            ServerFilter::for_filter(&filter),
            ServerFilter::StreamPrefixes(vec!["resource-".to_owned(), "policy-".to_owned()])
        );
    }

    #[test]
    fn no_filter_still_excludes_system_streams_on_the_server() {
        assert_eq!(ServerFilter::for_filter(&EventFilter::all()), ServerFilter::NonSystemStreams);
    }

    #[test]
    fn the_regex_escape_leaves_names_alone_and_escapes_every_metacharacter() {
        assert_eq!(escape_regex("ResourceTagsChanged"), "ResourceTagsChanged");
        assert_eq!(escape_regex(r"\*+?{}[]^$.# "), r"\\\*\+\?\{\}\[\]\^\$\.\#\ ");
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
    fn the_current_revision_maps_to_the_actual_revision() {
        assert_eq!(actual_revision(CurrentRevision::Current(3)), Some(3));
        assert_eq!(actual_revision(CurrentRevision::NoStream), None);
    }

    #[test]
    fn a_wrong_expected_version_is_a_conflict_carrying_both_revisions() {
        let source = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(1),
            current: CurrentRevision::Current(4),
        };
        match append_error(&stream(), ExpectedRevision::Exact(1), 10, source) {
            StoreError::WrongExpectedRevision { stream: s, expected, actual } => {
                assert_eq!((s, expected, actual), (stream(), ExpectedRevision::Exact(1), Some(4)));
            }
            other => panic!("unexpected {other:?}"),
        }
        let missing = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamExists,
            current: CurrentRevision::NoStream,
        };
        assert!(matches!(
            append_error(&stream(), ExpectedRevision::StreamExists, 10, missing),
            StoreError::WrongExpectedRevision { actual: None, expected: ExpectedRevision::StreamExists, .. }
        ));
    }

    #[test]
    fn the_servers_size_refusal_is_an_append_too_large_with_its_limit() {
        let source = kurrentdb::Error::Grpc {
            code: GRPC_INVALID_ARGUMENT.into(),
            message: "Maximum Append Size of 2097152 Exceeded.".to_owned(),
        };
        assert!(matches!(
            append_error(&stream(), ExpectedRevision::Any, 3_000_000, source),
            StoreError::AppendTooLarge { size: 3_000_000, limit: 2_097_152 }
        ));
    }

    #[test]
    fn other_append_errors_keep_the_step_and_the_transient_ones_stay_transient() {
        let other =
            kurrentdb::Error::Grpc { code: GRPC_INVALID_ARGUMENT.into(), message: "bad stream".to_owned() };
        assert!(matches!(
            append_error(&stream(), ExpectedRevision::Any, 1, other),
            StoreError::Kurrent { step: "append", source: kurrentdb::Error::Grpc { .. } }
        ));
        let down = append_error(&stream(), ExpectedRevision::Any, 1, kurrentdb::Error::ConnectionClosed);
        assert!(down.is_transient() && is_resubscribable(&down));
        let aborted = StoreError::Kurrent {
            step: "follow $all",
            source: kurrentdb::Error::Grpc {
                code: GRPC_ABORTED.into(),
                message: "consumer too slow".to_owned(),
            },
        };
        assert!(is_resubscribable(&aborted));
        let denied = StoreError::Kurrent { step: "follow $all", source: kurrentdb::Error::AccessDenied };
        assert!(!is_resubscribable(&denied));
    }

    #[test]
    fn kurrentdb_and_esdb_connection_strings_are_accepted() {
        for url in [
            "kurrentdb://admin:changeit@localhost:2113?tls=false",
            "esdb://localhost:2113?tls=false",
            "esdb+discover://cluster.example.com:2113",
            "kurrentdb://host1:2113,host2:2113,host3:2113?nodePreference=leader",
        ] {
            assert!(parse_settings(url).is_ok(), "{url} refused");
        }
    }

    #[test]
    fn a_malformed_connection_string_is_refused_naming_the_step() {
        for url in ["", "not a url", "http://localhost:2113", "kurrentdb://", "esdb://host:notaport"] {
            match parse_settings(url) {
                Err(StoreError::Kurrent { step, source: kurrentdb::Error::InitializationError(_) }) => {
                    assert_eq!(step, "parse connection string");
                }
                other => panic!("{url:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_password_never_reaches_an_error_message() {
        let url = "esdb://admin:s3cret@host:1/x";
        let redacted = redact_userinfo(&format!("bad: {url}"), url);
        assert_eq!(redacted, "bad: esdb://***@host:1/x");
        assert_eq!(redact_userinfo("plain", "esdb://host:1"), "plain");
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

    #[tokio::test]
    async fn a_dead_client_is_renewed_once_and_other_errors_leave_it_alone() {
        let store = KurrentEventStore::new("kurrentdb://localhost:1?tls=false", Arc::new(catalog())).unwrap();
        let connection = &store.connection;
        let first = connection.lease();
        connection.failed(&first, &kurrentdb::Error::AccessDenied);
        assert_eq!(connection.lease().generation, 0);
        connection.failed(&first, &kurrentdb::Error::ConnectionClosed);
        connection.failed(&first, &kurrentdb::Error::ConnectionClosed);
        assert_eq!(connection.lease().generation, 1);
    }

    #[test]
    fn caught_up_is_reached_at_or_past_the_target_or_when_there_is_none() {
        let p = |c| Some(kurrentdb::Position { commit: c, prepare: c });
        assert!(reached(None, None));
        assert!(!reached(p(5), None));
        assert!(!reached(p(5), p(4)));
        assert!(reached(p(5), p(5)));
        assert!(reached(p(5), p(6)));
    }

    #[test]
    fn backoff_doubles_from_100_ms_up_to_5_s() {
        let delays: Vec<u128> = (0..8).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn categories_are_the_part_before_the_first_dash() {
        assert_eq!(category_of("resource-1-2"), "resource");
        assert_eq!(category_of("nodash"), "nodash");
        assert!(is_system("$ce-resource", "$>") && is_system("resource-1", "$metadata"));
        assert!(!is_system("resource-1", "ResourceRegistered"));
    }
}
