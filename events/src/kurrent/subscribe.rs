//! [`subscribe_all`](crate::EventStore::subscribe_all) on KurrentDB: a [`Follower`] task per
//! subscription opens server subscriptions to `$all` one after the other, re-checks the
//! filter on each event, sends our own caught-up signal, and resubscribes from the exact
//! last position when the server drops it (with backoff) or its watchdog finds it stalled.

use std::{convert::Infallible, sync::Arc, time::Duration};

use kurrentdb::{StreamPosition, SubscribeToAllOptions, Subscription, SubscriptionEvent};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::Instrument;

use super::{
    FIRST_BACKOFF, GRPC_ABORTED, GRPC_RESOURCE_EXHAUSTED, KurrentEventStore, MAX_BACKOFF, PUMP_BUFFER,
    RESUBSCRIBE_ATTEMPTS,
    codec::{RawEvent, category_of, decode, from_kurrent_position, to_kurrent_position},
    connection::{Connection, Lease},
    read::{has_event_after, non_system_head, original_event},
    server_filter::ServerFilter,
};
use crate::{Catalog, EventFilter, Position, StoreError, SubscriptionItem};

/// Whether a subscription should be re-opened after this error: the port's transient
/// errors, plus the gRPC codes a server uses to drop a subscriber it wants re-opened
/// ("consumer too slow", shutdown of a subscription).
pub(super) fn is_resubscribable(error: &StoreError) -> bool {
    error.is_transient()
        || matches!(error, StoreError::Kurrent { source: kurrentdb::Error::Grpc { code, .. }, .. }
            if matches!(i32::from(*code), GRPC_ABORTED | GRPC_RESOURCE_EXHAUSTED))
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
pub(super) struct Follower {
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
    pub(super) fn new(
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

    pub(super) async fn run(mut self) {
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
    use super::*;

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
}
