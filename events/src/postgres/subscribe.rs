//! `$all` subscriptions: catch up page by page under the visibility horizon, say
//! `CaughtUp` once everything committed before the call is delivered, then follow live, woken by LISTEN/NOTIFY rather than by polling.
//!
//! One LISTEN connection per store feeds a `watch` counter that every subscription of that
//! store waits on. A subscriber marks the counter seen *before* it reads, so a notification
//! that arrives while it reads wakes it again: no commit can slip between its last read and
//! its sleep. Two cases need a timer, and only these: rows committed beyond the horizon but
//! held back by an older open transaction (no notification comes when that transaction
//! ends; re-checked with a short backoff while such rows exist), and a notification lost
//! while the listener reconnected (`idle_recheck`, 10 s by default).

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, stream::BoxStream};
use sqlx::{
    PgPool,
    postgres::{PgListener, PgRow},
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use super::{Inner, NOTIFY_CHANNEL, pg, read};
use crate::{EventFilter, Position, StoreError, SubscriptionItem};

/// Wake-ups of one store's subscribers: a counter bumped on every notification.
pub(crate) struct Wakeups {
    counter: watch::Receiver<u64>,
}

impl Wakeups {
    /// Connects and LISTENs before returning, so a subscriber that starts reading after
    /// this returns cannot miss a notification.
    #[tracing::instrument(name = "es.listen", skip(pool))]
    pub(crate) async fn start(pool: &PgPool) -> Result<Self, StoreError> {
        let mut listener = PgListener::connect_with(pool).await.map_err(pg("connect listener"))?;
        listener.listen(NOTIFY_CHANNEL).await.map_err(pg("listen"))?;
        let (tx, counter) = watch::channel(0u64);
        tokio::spawn(
            async move {
                loop {
                    tokio::select! {
                        // Every receiver gone: the store was dropped.
                        () = tx.closed() => return,
                        next = listener.try_recv() => {
                            match next {
                                Ok(Some(_)) => {}
                                // The connection dropped; the next call reconnects. Wake
                                // everyone: a notification may have been lost meanwhile.
                                Ok(None) => tracing::warn!("event notification connection lost; reconnecting"),
                                Err(e) => {
                                    tracing::warn!(error = %e, "event notification listener failed; retrying in 1 s");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                            tx.send_modify(|n| *n = n.wrapping_add(1));
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("es.listener")),
        );
        Ok(Self { counter })
    }
}

type Batch = Result<Vec<SubscriptionItem>, StoreError>;

pub(crate) fn subscribe_all(
    inner: Arc<Inner>,
    from: Option<Position>,
    filter: EventFilter,
) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
    // Two pages in flight: the next page is read while the subscriber handles this one.
    let (tx, rx) = mpsc::channel::<Batch>(2);
    let span = tracing::info_span!("es.subscription", from = ?from.map(|p| p.token()), ?filter);
    tokio::spawn(
        async move {
            if let Err(e) = follow(&inner, from, &filter, &tx).await {
                tracing::warn!(error = %e, "subscription ended with an error");
                let _ = tx.send(Err(e)).await;
            }
        }
        .instrument(span),
    );
    ReceiverStream::new(rx)
        .flat_map(|batch| {
            let items: Vec<Result<SubscriptionItem, StoreError>> = match batch {
                Ok(items) => items.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
        .boxed()
}

/// First and longest wait before looking again at rows committed beyond the horizon (held
/// back by an older open transaction, whose end sends no notification). Such a transaction
/// is nearly always another short writer (an append, a projection's batch), so the first
/// look comes soon; a long one (an idle session holding an xid) costs two indexed reads per
/// `HELD_BACK_MAX` per subscription. (It was 5 ms doubling to 200 ms: a reader held back
/// twice in a row by short writers could sleep 200 ms past their end.)
const HELD_BACK_FIRST: Duration = Duration::from_millis(1);
const HELD_BACK_MAX: Duration = Duration::from_millis(25);

/// Runs until the subscriber goes away (Ok) or the store fails (Err).
async fn follow(
    inner: &Inner,
    from: Option<Position>,
    filter: &EventFilter,
    tx: &mpsc::Sender<Batch>,
) -> Result<(), StoreError> {
    let mut wake = inner.wakeups().await?.counter.clone();
    let settings = &inner.settings;
    let mut pos = from.unwrap_or(Position::new(0, 0));
    // CaughtUp means: every event committed before the subscription started was delivered.
    // The horizon alone would not do — an unrelated open transaction anywhere in the
    // cluster can hide a commit that finished before this call.
    let target = read::last_committed(inner.pool()).await?;
    let mut caught_up = false;
    let mut unreported = 0u64; // filtered-out rows scanned since the last item sent
    let mut held_back = HELD_BACK_FIRST;
    loop {
        wake.borrow_and_update();
        // While one page is decoded and handed over, the next is already being read:
        // PostgreSQL and this process work side by side during catch-up.
        let mut prefetch: Option<tokio::task::JoinHandle<Result<Vec<PgRow>, StoreError>>> = None;
        loop {
            let page = match prefetch.take() {
                Some(next) => next.await.map_err(|e| StoreError::Corrupt {
                    stream: String::new(),
                    position: pos,
                    message: format!("page reader task failed: {e}"),
                })??,
                None => {
                    read::fetch_page(
                        inner.pool().clone(),
                        pos,
                        filter.clone(),
                        settings.page_size,
                        settings.order,
                    )
                    .await?
                }
            };
            let full = page.len() as i64 >= settings.page_size;
            if full && let Some(last) = page.last() {
                let after = read::row_position(last)?;
                prefetch = Some(tokio::spawn(read::fetch_page(
                    inner.pool().clone(),
                    after,
                    filter.clone(),
                    settings.page_size,
                    settings.order,
                )));
            }
            let page = read::decode_page(&inner.catalog, &page)?;
            let mut items = Vec::with_capacity(page.len() + 2);
            for scanned in page {
                pos = scanned.position;
                match scanned.event {
                    Some(event) => {
                        items.push(SubscriptionItem::Event(Box::new(event)));
                        unreported = 0;
                    }
                    None => {
                        unreported += 1;
                        if unreported >= settings.checkpoint_interval {
                            items.push(SubscriptionItem::Checkpoint(pos));
                            unreported = 0;
                        }
                    }
                }
            }
            if !full {
                if unreported > 0 {
                    items.push(SubscriptionItem::Checkpoint(pos));
                    unreported = 0;
                }
                if !caught_up && target.is_none_or(|t| pos >= t) {
                    items.push(SubscriptionItem::CaughtUp);
                    caught_up = true;
                }
            }
            if !items.is_empty() && tx.send(Ok(items)).await.is_err() {
                return Ok(());
            }
            if !full {
                break;
            }
        }
        let wait = if read::rows_beyond(inner.pool(), pos).await? {
            held_back = (held_back * 2).min(HELD_BACK_MAX);
            held_back
        } else {
            held_back = HELD_BACK_FIRST;
            settings.idle_recheck
        };
        tokio::select! {
            () = tx.closed() => return Ok(()),
            changed = wake.changed() => {
                if changed.is_err() {
                    // The listener is gone only when the store is; keep going on the timer.
                    tokio::time::sleep(wait).await;
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}
