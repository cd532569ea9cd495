//! Appends: each expected-revision case, idempotency, refusals.

use cortex_events::{Direction, ExpectedRevision as Exp, FROM_START, StoreError};
use serde_json::json;

use super::Harness;

fn assert_conflict(r: Result<cortex_events::AppendOutcome, StoreError>, expected: Exp, actual: Option<u64>) {
    match r {
        Err(StoreError::WrongExpectedRevision { expected: e, actual: a, .. }) => {
            assert_eq!((e, a), (expected, actual), "conflict carries expected and actual revision")
        }
        other => panic!("expected a conflict (expected {expected}, actual {actual:?}), got {other:?}"),
    }
}

pub async fn no_stream_append_creates_the_stream_at_revision_zero(h: Harness) {
    let s = h.stream();
    let out = h.store.append(&s, Exp::NoStream, vec![h.event(0)]).await.unwrap();
    assert_eq!(out.revision, 0);
    let two = h.store.append(&h.stream(), Exp::NoStream, h.events(0..2)).await.unwrap();
    assert_eq!(two.revision, 1, "the revision of the last event written");
    assert!(two.position > out.position);
}

pub async fn no_stream_append_to_an_existing_stream_is_a_conflict(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, vec![h.event(0)]).await.unwrap();
    assert_conflict(h.store.append(&s, Exp::NoStream, vec![h.event(1)]).await, Exp::NoStream, Some(0));
}

pub async fn exact_append_at_the_current_revision_succeeds(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, h.events(0..3)).await.unwrap();
    let out = h.store.append(&s, Exp::Exact(2), vec![h.event(3)]).await.unwrap();
    assert_eq!(out.revision, 3);
}

pub async fn exact_append_with_a_stale_revision_is_rejected_as_a_conflict(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, h.events(0..2)).await.unwrap();
    assert_conflict(h.store.append(&s, Exp::Exact(0), vec![h.event(9)]).await, Exp::Exact(0), Some(1));
    assert_conflict(h.store.append(&s, Exp::Exact(5), vec![h.event(9)]).await, Exp::Exact(5), Some(1));
    assert_conflict(h.store.append(&h.stream(), Exp::Exact(0), vec![h.event(9)]).await, Exp::Exact(0), None);
    let read = h.store.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap();
    assert_eq!(super::ns(&read), [0, 1], "nothing written by refused appends");
}

pub async fn stream_exists_append_needs_an_existing_stream(h: Harness) {
    let s = h.stream();
    assert_conflict(h.store.append(&s, Exp::StreamExists, vec![h.event(0)]).await, Exp::StreamExists, None);
    h.store.append(&s, Exp::NoStream, vec![h.event(0)]).await.unwrap();
    assert_eq!(h.store.append(&s, Exp::StreamExists, vec![h.event(1)]).await.unwrap().revision, 1);
}

pub async fn any_append_succeeds_at_whatever_revision(h: Harness) {
    let s = h.stream();
    assert_eq!(h.store.append(&s, Exp::Any, vec![h.event(0)]).await.unwrap().revision, 0);
    assert_eq!(h.store.append(&s, Exp::Any, h.events(1..3)).await.unwrap().revision, 2);
}

pub async fn retrying_an_append_with_the_same_event_ids_writes_nothing_twice(h: Harness) {
    let s = h.stream();
    let first = h.events(0..2);
    let out = h.store.append(&s, Exp::NoStream, first.clone()).await.unwrap();
    assert_eq!(
        h.store.append(&s, Exp::NoStream, first.clone()).await.unwrap(),
        out,
        "retry answers the original outcome"
    );
    let second = vec![h.event(2)];
    let out2 = h.store.append(&s, Exp::Exact(1), second.clone()).await.unwrap();
    assert_eq!(h.store.append(&s, Exp::Exact(1), second.clone()).await.unwrap(), out2);
    let third = vec![h.event(3)];
    let out3 = h.store.append(&s, Exp::Any, third.clone()).await.unwrap();
    assert_eq!(h.store.append(&s, Exp::Any, third).await.unwrap(), out3, "idempotent under Any too");
    let read = h.store.read_stream(&s, FROM_START, Direction::Forwards, 100).await.unwrap();
    assert_eq!(super::ns(&read), [0, 1, 2, 3], "each event stored once");
}

pub async fn different_event_ids_at_a_taken_revision_are_a_conflict(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, h.events(0..2)).await.unwrap();
    // Same data, new ids: a different append, not a retry.
    assert_conflict(h.store.append(&s, Exp::NoStream, h.events(0..2)).await, Exp::NoStream, Some(1));
    // A retry whose ids only partly match is a conflict too.
    let read = h.store.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap();
    let mut partial = vec![h.event(0).with_id(read[0].event_id()), h.event(1)];
    partial[1].event_id = uuid::Uuid::now_v7();
    assert_conflict(h.store.append(&s, Exp::NoStream, partial).await, Exp::NoStream, Some(1));
}

pub async fn an_oversize_append_is_refused_and_nothing_is_written(h: Harness) {
    let s = h.stream();
    let mut big = h.event(0);
    big.data = json!({ "n": 0, "pad": "x".repeat(1024 * 1024) });
    match h.store.append(&s, Exp::Any, vec![big]).await {
        Err(StoreError::AppendTooLarge { size, limit }) => assert!(size > limit),
        other => panic!("expected AppendTooLarge, got {other:?}"),
    }
    // Many events under the limit each, over it together.
    let many: Vec<_> = (0..20)
        .map(|n| {
            let mut e = h.event(n);
            e.data = json!({ "n": n, "pad": "y".repeat(60 * 1024) });
            e
        })
        .collect();
    assert!(matches!(h.store.append(&s, Exp::Any, many).await, Err(StoreError::AppendTooLarge { .. })));
    assert!(h.store.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap().is_empty());
}

pub async fn events_that_break_the_catalog_are_refused_and_nothing_is_written(h: Harness) {
    let s = h.stream();
    let mut bad = h.event(0);
    bad.data = json!({ "n": "zero", "extra": true });
    match h.store.append(&s, Exp::Any, vec![h.event(1), bad]).await {
        Err(StoreError::SchemaViolation { event_type, faults, .. }) => {
            assert_eq!(event_type, "TestEvent");
            let pointers: Vec<_> = faults.iter().map(|f| f.pointer.as_str()).collect();
            assert!(pointers.contains(&"/n"), "names the bad field: {pointers:?}");
        }
        other => panic!("expected SchemaViolation, got {other:?}"),
    }
    let mut unknown = h.event(0);
    unknown.event_type = "NoSuchEvent".into();
    assert!(matches!(
        h.store.append(&s, Exp::Any, vec![unknown]).await,
        Err(StoreError::UnknownEventType { event_type }) if event_type == "NoSuchEvent"
    ));
    let mut future = h.event(0);
    future.schema_version = 7;
    assert!(matches!(
        h.store.append(&s, Exp::Any, vec![future]).await,
        Err(StoreError::NotCurrentSchemaVersion { version: 7, current: 1, .. })
    ));
    assert!(matches!(h.store.append(&s, Exp::Any, vec![]).await, Err(StoreError::EmptyAppend)));
    let e = h.event(0);
    assert!(matches!(
        h.store.append(&s, Exp::Any, vec![e.clone(), e]).await,
        Err(StoreError::DuplicateEventInAppend { .. })
    ));
    assert!(h.store.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap().is_empty());
}
