//! One read of `$all` shared by several subscribers gives each exactly what a subscription of
//! its own would: its filter's events after its own start, and positions that reach the head.

mod common;

use std::sync::Arc;

use common::{mixed_history, store};
use cortex_events::{EventFilter, EventStore, Position, StoreError, SubscriptionItem, testing::TestDatabase};
use cortex_projections::{fan_out::fan_out, registry};
use futures::{StreamExt, stream::BoxStream};
use uuid::Uuid;

/// The event ids a subscription yields before `CaughtUp`, and the last position it passed.
async fn until_caught_up(
    mut items: BoxStream<'static, Result<SubscriptionItem, StoreError>>,
    from: Option<Position>,
) -> (Vec<Uuid>, Option<Position>) {
    let (mut ids, mut passed) = (Vec::new(), from);
    while let Some(item) = items.next().await {
        let position = match item.expect("no error") {
            SubscriptionItem::Event(e) => {
                ids.push(e.event_id());
                e.position
            }
            SubscriptionItem::Checkpoint(p) => p,
            SubscriptionItem::CaughtUp => return (ids, passed),
        };
        assert!(
            Some(position) > passed,
            "positions move forward from the start: {position:?} after {passed:?}"
        );
        passed = Some(position);
    }
    panic!("the stream ended before CaughtUp");
}

#[tokio::test]
async fn each_subscriber_gets_what_its_own_subscription_would() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn EventStore> = store(&db);
    mixed_history(&store, Uuid::now_v7(), 60, 6, 3_000, 5).await;
    let head = store.head().await.unwrap();
    let all = until_caught_up(store.subscribe_all(None, EventFilter::all()), None).await.0;
    // A start in the middle of the log, as a resumed shadow has.
    let middle = store.subscribe_all(None, EventFilter::all()).skip(all.len() / 2).next().await;
    let Some(Ok(SubscriptionItem::Event(middle))) = middle else { panic!("an event in the middle") };

    let mut subscribers: Vec<(Option<Position>, EventFilter)> =
        registry().iter().map(|p| (None, p.filter())).collect();
    subscribers[1].0 = Some(middle.position);
    subscribers.push((Some(middle.position), EventFilter::all()));
    // A depth far below the log's length: subscribers wait on each other, so they are read
    // side by side.
    let shared = fan_out(&store, subscribers.clone(), 16);
    let got = futures::future::join_all(
        subscribers.iter().zip(shared).map(|((from, _), stream)| until_caught_up(stream, *from)),
    )
    .await;
    for ((from, filter), (got, passed)) in subscribers.into_iter().zip(got) {
        let (own, _) = until_caught_up(store.subscribe_all(from, filter.clone()), from).await;
        assert!(!own.is_empty(), "{filter:?} from {from:?} has events");
        assert_eq!(got, own, "{filter:?} from {from:?}");
        assert_eq!(passed, head, "{filter:?} from {from:?} passed the whole log");
    }
    db.drop_database().await;
}
