//! Event replay audits (DESIGN §9, issue 23): what the log says happened, read back for
//! auditors. The CLI (`cortex audit …`) and the API's `as_of` answers share these.

pub mod as_of;
pub mod history;
pub mod seal;
pub mod verify;

pub use history::{AuditEntry, Change, history};

use cortex_events::{EventFilter, EventStore, Position, RecordedEvent, StoreError, SubscriptionItem};
use futures::{StreamExt, TryStreamExt, future::ready, stream::BoxStream};

/// The events of the log after `from` (exclusive; `None`: from the first) that `filter`
/// passes, in log order, up to the log's head as it is when this is called: what a seal, a
/// verification and a replay as of a time each read.
pub(crate) async fn events_to_head(
    store: &dyn EventStore,
    from: Option<Position>,
    filter: EventFilter,
) -> Result<BoxStream<'static, Result<Box<RecordedEvent>, StoreError>>, StoreError> {
    let head = store.head().await?;
    Ok(store
        .subscribe_all(from, filter)
        .take_while(|item| ready(!matches!(item, Ok(SubscriptionItem::CaughtUp))))
        .try_filter_map(|item| {
            ready(Ok(match item {
                SubscriptionItem::Event(event) => Some(event),
                SubscriptionItem::CaughtUp | SubscriptionItem::Checkpoint(_) => None,
            }))
        })
        .try_take_while(move |event| ready(Ok(head.is_some_and(|h| event.position <= h))))
        .boxed())
}
