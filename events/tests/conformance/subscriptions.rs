//! `$all` subscriptions: start, checkpoint, live, caught-up, filters, checkpoints.

use cortex_events::{EventFilter, ExpectedRevision as Exp, SubscriptionItem};

use super::{Harness, last_position, next_events, next_item, ns, positions_increase, until_caught_up};

pub async fn subscribing_from_the_start_delivers_history_then_caught_up_once(h: Harness) {
    let (a, b) = (h.stream(), h.stream());
    h.store.append(&a, Exp::NoStream, h.events(0..3)).await.unwrap();
    h.store.append(&b, Exp::NoStream, h.events(3..5)).await.unwrap();
    h.store.append(&a, Exp::Exact(2), h.events(5..6)).await.unwrap();
    let mut sub = h.store.subscribe_all(None, h.own());
    let history = until_caught_up(&mut sub).await;
    assert_eq!(ns(&history), [0, 1, 2, 3, 4, 5], "every stored event, in commit order");
    assert!(positions_increase(&history));
    // Only live events after CaughtUp, and never a second CaughtUp.
    h.store.append(&b, Exp::Any, h.events(6..7)).await.unwrap();
    assert_eq!(ns(&next_events(&mut sub, 1).await), [6]);
}

pub async fn subscribing_from_a_checkpoint_starts_after_it(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, h.events(0..5)).await.unwrap();
    let mut sub = h.store.subscribe_all(None, h.own());
    let all = until_caught_up(&mut sub).await;
    let checkpoint = all[2].position;
    let mut resumed = h.store.subscribe_all(Some(checkpoint), h.own());
    assert_eq!(ns(&until_caught_up(&mut resumed).await), [3, 4], "the start position is exclusive");
    let mut at_end = h.store.subscribe_all(Some(last_position(&all)), h.own());
    assert!(until_caught_up(&mut at_end).await.is_empty());
}

pub async fn live_events_arrive_after_caught_up(h: Harness) {
    let mut sub = h.store.subscribe_all(None, h.own());
    assert!(until_caught_up(&mut sub).await.is_empty(), "nothing of this case stored yet");
    let s = h.stream();
    for n in 0..5 {
        h.store.append(&s, Exp::Any, vec![h.event(n)]).await.unwrap();
        assert_eq!(ns(&next_events(&mut sub, 1).await), [n], "each live event as it commits");
    }
    h.store.append(&h.stream(), Exp::Any, h.events(5..8)).await.unwrap();
    let batch = next_events(&mut sub, 3).await;
    assert_eq!(ns(&batch), [5, 6, 7]);
    assert!(positions_increase(&batch));
}

pub async fn filters_select_by_category_and_event_type(h: Harness) {
    let other_category = Harness { category: format!("o{}", &h.category[1..]), ..Harness::new_sharing(&h) };
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, vec![h.event(0), h.other_event(1), h.event(2)]).await.unwrap();
    other_category
        .store
        .append(&other_category.stream(), Exp::NoStream, vec![h.event(3), h.other_event(4)])
        .await
        .unwrap();

    let by_category = |cats: Vec<String>| EventFilter::all().categories(cats);
    let mut sub = h.store.subscribe_all(None, by_category(vec![h.category.clone()]));
    assert_eq!(ns(&until_caught_up(&mut sub).await), [0, 1, 2]);

    let both = vec![h.category.clone(), other_category.category.clone()];
    let mut sub = h.store.subscribe_all(None, by_category(both.clone()));
    assert_eq!(ns(&until_caught_up(&mut sub).await), [0, 1, 2, 3, 4]);

    let mut sub = h.store.subscribe_all(None, by_category(both).event_types(["OtherTestEvent"]));
    let others = until_caught_up(&mut sub).await;
    assert_eq!(ns(&others), [1, 4]);
    assert!(others.iter().all(|e| e.event_type == "OtherTestEvent"));

    let mut sub = h.store.subscribe_all(None, h.own().event_types(["TestEvent"]));
    assert_eq!(ns(&until_caught_up(&mut sub).await), [0, 2]);
}

pub async fn checkpoints_pass_while_filtered_out_events_are_scanned(h: Harness) {
    let s = h.stream();
    let only_test_events = h.own().event_types(["TestEvent"]);
    let first = h.store.append(&s, Exp::NoStream, vec![h.event(0)]).await.unwrap();
    let mut sub = h.store.subscribe_all(None, only_test_events.clone());
    assert_eq!(ns(&until_caught_up(&mut sub).await), [0]);
    // A long stretch of events this subscriber does not want …
    for chunk in 0..5 {
        let batch: Vec<_> = (0..40).map(|i| h.other_event(100 + chunk * 40 + i)).collect();
        h.store.append(&s, Exp::Any, batch).await.unwrap();
    }
    let last_filtered = h.store.head().await.unwrap().expect("head");
    // … still yields checkpoints that advance past them, and no events.
    let checkpoint = loop {
        match next_item(&mut sub).await {
            SubscriptionItem::Checkpoint(p) if p >= last_filtered => break p,
            SubscriptionItem::Checkpoint(p) => assert!(p > first.position, "checkpoints move forwards"),
            other => panic!("only checkpoints expected while filtered-out events pass, got {other:?}"),
        }
    };
    // A checkpoint is a valid exclusive start: resuming from it skips everything scanned.
    h.store.append(&s, Exp::Any, vec![h.event(1)]).await.unwrap();
    assert_eq!(ns(&next_events(&mut sub, 1).await), [1]);
    let mut resumed = h.store.subscribe_all(Some(checkpoint), only_test_events);
    assert_eq!(ns(&until_caught_up(&mut resumed).await), [1]);
}
