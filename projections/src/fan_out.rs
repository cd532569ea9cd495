//! One catch-up read of `$all` shared by several subscribers. A rebuild of every projection
//! reads and decodes the log once instead of once per projection: reading and decoding is
//! about half of what a projection's catch-up costs (`ops/bench/projections`).
//!
//! Each subscriber gets what [`EventStore::subscribe_all`] would give it: the events of its
//! own filter after its own start, a checkpoint after every [`CHECKPOINT_INTERVAL`] events
//! it skips (and before `CaughtUp`, so that its checkpoint reaches the end), and `CaughtUp`.
//! The read ends after `CaughtUp`: it is for catching up, not for following.
//!
//! Subscribers are fed in lockstep through bounded channels, so the slowest sets the pace and
//! memory stays bounded. A subscriber that drops its stream leaves the others going; a
//! failure of the read reaches every subscriber as [`StoreError::Shared`].

use std::sync::Arc;

use cortex_events::{EventFilter, EventStore, Position, RecordedEvent, StoreError, SubscriptionItem};
use futures::{StreamExt, stream::BoxStream};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Filtered-out events after which a subscriber is told the position it has passed.
pub const CHECKPOINT_INTERVAL: u64 = 1_000;

type Item = Result<SubscriptionItem, StoreError>;

/// Opens one read of `$all` for subscribers starting after `from` (exclusive) with `filter`
/// each, and answers their streams in the same order. Up to `depth` items wait for each
/// subscriber: enough that one subscriber's commit does not hold the others up.
pub fn fan_out(
    store: &Arc<dyn EventStore>,
    subscribers: Vec<(Option<Position>, EventFilter)>,
    depth: usize,
) -> Vec<BoxStream<'static, Item>> {
    let start = subscribers.iter().map(|(from, _)| *from).min().flatten();
    let upstream = store.subscribe_all(start, union(subscribers.iter().map(|(_, f)| f)));
    let mut outs = Vec::with_capacity(subscribers.len());
    let mut streams = Vec::with_capacity(subscribers.len());
    for (from, filter) in subscribers {
        let (tx, rx) = mpsc::channel(depth.max(1));
        outs.push(Out { tx: Some(tx), from, filter, unreported: None, skipped: 0 });
        streams.push(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }).boxed(),
        );
    }
    tokio::spawn(pump(upstream, outs).instrument(tracing::info_span!("projection.fan_out")));
    streams
}

/// The smallest filter every subscriber's events pass: a list is empty (everything) when any
/// subscriber's is.
fn union<'a>(filters: impl Iterator<Item = &'a EventFilter>) -> EventFilter {
    let mut union = EventFilter::all();
    let (mut any_category, mut any_type) = (false, false);
    for f in filters {
        any_category |= f.categories.is_empty();
        any_type |= f.event_types.is_empty();
        for c in &f.categories {
            if !union.categories.contains(c) {
                union.categories.push(c.clone());
            }
        }
        for t in &f.event_types {
            if !union.event_types.contains(t) {
                union.event_types.push(t.clone());
            }
        }
    }
    if any_category {
        union.categories.clear();
    }
    if any_type {
        union.event_types.clear();
    }
    union
}

struct Out {
    /// `None` once the subscriber has dropped its stream.
    tx: Option<mpsc::Sender<Item>>,
    from: Option<Position>,
    filter: EventFilter,
    /// The last position it skipped and has not been told of.
    unreported: Option<Position>,
    skipped: u64,
}

impl Out {
    async fn send(&mut self, item: Item) {
        if let Some(tx) = &self.tx
            && tx.send(item).await.is_err()
        {
            self.tx = None;
        }
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        self.tx.is_some()
            && Some(event.position) > self.from
            && self.filter.matches(event.stream.category(), &event.event_type)
    }

    async fn deliver(&mut self, event: Box<RecordedEvent>) {
        self.skipped = 0;
        self.unreported = None;
        self.send(Ok(SubscriptionItem::Event(event))).await;
    }

    /// Passes `position` without an event for this subscriber.
    async fn skip(&mut self, position: Position) {
        if Some(position) <= self.from {
            return;
        }
        self.unreported = Some(position);
        self.skipped += 1;
        if self.skipped >= CHECKPOINT_INTERVAL {
            self.report().await;
        }
    }

    async fn report(&mut self) {
        if let Some(position) = self.unreported.take() {
            self.skipped = 0;
            self.send(Ok(SubscriptionItem::Checkpoint(position))).await;
        }
    }
}

async fn pump(mut upstream: BoxStream<'static, Item>, mut outs: Vec<Out>) {
    while outs.iter().any(|o| o.tx.is_some()) {
        let Some(item) = upstream.next().await else { return };
        match item {
            Ok(SubscriptionItem::Event(event)) => {
                let position = event.position;
                // The last subscriber that wants the event takes it; the ones before get copies.
                let last = outs.iter().rposition(|o| o.wants(&event));
                for (i, out) in outs.iter_mut().enumerate() {
                    if Some(i) == last {
                        continue;
                    }
                    if out.wants(&event) {
                        out.deliver(event.clone()).await;
                    } else {
                        out.skip(position).await;
                    }
                }
                if let Some(i) = last {
                    outs[i].deliver(event).await;
                }
            }
            Ok(SubscriptionItem::Checkpoint(position)) => {
                for out in &mut outs {
                    if Some(position) > out.from {
                        out.unreported = Some(position);
                        out.report().await;
                    }
                }
            }
            Ok(SubscriptionItem::CaughtUp) => {
                for out in &mut outs {
                    out.report().await;
                    out.send(Ok(SubscriptionItem::CaughtUp)).await;
                }
                return;
            }
            Err(e) => {
                // Logged by each subscriber's rebuild, with its cause chain.
                let e = Arc::new(e);
                for out in &mut outs {
                    out.send(Err(StoreError::Shared(e.clone()))).await;
                }
                return;
            }
        }
    }
}
