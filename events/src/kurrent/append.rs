//! [`EventStore::append`](crate::EventStore::append) on KurrentDB: the previous hash is
//! read from the stream, the batch is sealed after it, and the server checks the revision.
//! Idempotent retries are the server's under `NoStream` or a revision, and ours (by the
//! stream's tail) under `Any` and `StreamExists`.

use kurrentdb::{AppendToStreamOptions, CurrentRevision, ReadStreamOptions, StreamPosition, StreamState};

use super::{
    GRPC_INVALID_ARGUMENT, KurrentEventStore, RACED_APPEND_ATTEMPTS,
    codec::{encode, from_kurrent_position, stored_metadata},
    read::read_raw,
};
use crate::{
    AppendOutcome, ExpectedRevision, MAX_APPEND_BYTES, NewEvent, Position, StoreError, StreamName,
    hash::GENESIS_HASH,
};

impl KurrentEventStore {
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
    pub(super) async fn append_at(
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
    pub(super) async fn append_exact(
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
    pub(super) async fn append_after_tail(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kurrent::{GRPC_ABORTED, subscribe::is_resubscribable};

    fn stream() -> StreamName {
        StreamName::parse("resource-1").unwrap()
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
}
