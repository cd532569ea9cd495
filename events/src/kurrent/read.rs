//! Reads: one stream (for [`read_stream`](crate::EventStore::read_stream) and the appends'
//! look at the chain), and `$all` (for [`head`](crate::EventStore::head) and the
//! subscription watchdog). Links are never resolved; system events are left to the callers.

use kurrentdb::{ReadAllOptions, ReadStreamOptions, ResolvedEvent, StreamPosition, SubscriptionFilter};

use super::{HEAD_PAGE, connection::Connection};
use crate::{Direction, FROM_END, StoreError, StreamName};

pub(super) fn read_stream_options(from: u64, dir: Direction, max: usize) -> ReadStreamOptions {
    let options = ReadStreamOptions::default().max_count(max);
    // `position(End)` forces backwards, so the direction is always set after it.
    match dir {
        Direction::Forwards => options.position(StreamPosition::Position(from)).forwards(),
        Direction::Backwards if from == FROM_END => options.position(StreamPosition::End).backwards(),
        Direction::Backwards => options.position(StreamPosition::Position(from)).backwards(),
    }
}

fn is_absent(e: &kurrentdb::Error) -> bool {
    matches!(e, kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted)
}

/// The stored events a stream read returns (system events included); empty when the stream
/// is missing or deleted, which the server reports on the first message.
pub(super) async fn read_raw(
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
pub(super) fn original_event(resolved: ResolvedEvent) -> Option<kurrentdb::RecordedEvent> {
    resolved.link.or(resolved.event)
}

/// The position of the newest non-system event of `$all`; `None` when there is none.
/// The server filters out system streams, we skip system event types in other streams
/// (a tombstone's `$streamDeleted`), paging backwards: there are few at the end of the log.
pub(super) async fn non_system_head(
    connection: &Connection,
) -> Result<Option<kurrentdb::Position>, StoreError> {
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
pub(super) async fn has_event_after(
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
