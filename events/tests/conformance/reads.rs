//! Stream reads, the hash chain, upcasting and the head.

use cortex_events::{
    Direction, ExpectedRevision as Exp, FROM_END, FROM_START, NewEvent, Provenance, hash::GENESIS_HASH,
};
use serde_json::{Value, json};

use super::{Harness, ns, test_catalog_builder};

pub async fn streams_read_forwards_and_backwards_with_a_limit(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, h.events(0..10)).await.unwrap();
    let fwd = h.store.read_stream(&s, FROM_START, Direction::Forwards, 4).await.unwrap();
    assert_eq!(ns(&fwd), [0, 1, 2, 3]);
    assert_eq!(fwd.iter().map(|e| e.revision).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let mid = h.store.read_stream(&s, 7, Direction::Forwards, 100).await.unwrap();
    assert_eq!(ns(&mid), [7, 8, 9]);
    let back = h.store.read_stream(&s, FROM_END, Direction::Backwards, 3).await.unwrap();
    assert_eq!(ns(&back), [9, 8, 7]);
    let back_from = h.store.read_stream(&s, 2, Direction::Backwards, 100).await.unwrap();
    assert_eq!(ns(&back_from), [2, 1, 0]);
    assert!(fwd.iter().all(|e| e.stream == s && e.event_type == "TestEvent" && e.tenant_id() == h.tenant));
}

pub async fn a_missing_stream_reads_as_empty(h: Harness) {
    let s = h.stream();
    assert!(h.store.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap().is_empty());
    assert!(h.store.read_stream(&s, FROM_END, Direction::Backwards, 10).await.unwrap().is_empty());
}

pub async fn many_streams_read_at_once_answer_each_stream_whole(h: Harness) {
    let (a, b, empty) = (h.stream(), h.stream(), h.stream());
    h.store.append(&a, Exp::NoStream, h.events(0..3)).await.unwrap();
    h.store.append(&b, Exp::NoStream, h.events(10..11)).await.unwrap();
    h.store.append(&a, Exp::Exact(2), h.events(3..5)).await.unwrap();
    let found = h.store.read_streams(&[b.clone(), empty.clone(), a.clone()]).await.unwrap();
    assert_eq!(found.len(), 2, "a stream with no events is absent");
    assert_eq!(ns(&found[&a]), [0, 1, 2, 3, 4]);
    assert_eq!(found[&a].iter().map(|e| e.revision).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(ns(&found[&b]), [10]);
    assert!(!found.contains_key(&empty));
}

pub async fn every_event_is_sealed_into_its_stream_hash_chain(h: Harness) {
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, h.events(0..3)).await.unwrap();
    h.store.append(&s, Exp::Exact(2), h.events(3..5)).await.unwrap();
    let read = h.store.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap();
    assert_eq!(read[0].metadata.prev_hash, GENESIS_HASH);
    for pair in read.windows(2) {
        assert_eq!(pair[1].metadata.prev_hash, pair[0].metadata.hash, "each event links to its predecessor");
    }
    assert!(read.iter().all(|e| e.hash_is_intact()), "every stored hash matches its content");
    // The metadata is complete: tenant, actor, correlation, causation, time, version.
    let m = &read[0].metadata;
    assert_eq!((m.tenant_id, m.actor.as_str(), m.schema_version), (h.tenant, "system:conformance", 1));
    // A tampered copy no longer matches.
    let mut tampered = read[1].clone();
    tampered.data = json!({ "n": 99 });
    assert!(!tampered.hash_is_intact());
}

const V2_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object", "additionalProperties": false, "required": ["count", "unit"],
  "properties": { "count": { "type": "integer" }, "unit": { "type": "string" } }
}"#;

const V1_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object", "additionalProperties": false, "required": ["n"],
  "properties": { "n": { "type": "integer" } }
}"#;

/// v1 `{n}` became v2 `{count, unit}`.
fn widget_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let n = data.get_mut("n").and_then(|n| n.as_i64()).ok_or("v1 WidgetCounted without n")?;
    data = json!({ "count": n, "unit": "piece" });
    Ok(data)
}

pub async fn old_schema_versions_are_upcast_on_read(h: Harness) {
    let s = h.stream();
    let prov = Provenance::system(h.tenant, "conformance");
    // Yesterday's deployment knows only v1 …
    let v1 = h.reopen(test_catalog_builder().schema_text("WidgetCounted", 1, V1_SCHEMA).build().unwrap());
    v1.append(&s, Exp::NoStream, vec![NewEvent::new("WidgetCounted", 1, json!({ "n": 3 }), prov.clone())])
        .await
        .unwrap();
    // … today's knows v2 and how to upcast v1.
    let v2 = h.reopen(
        test_catalog_builder()
            .schema_text("WidgetCounted", 1, V1_SCHEMA)
            .schema_text("WidgetCounted", 2, V2_SCHEMA)
            .upcaster("WidgetCounted", 1, widget_v1_to_v2)
            .build()
            .unwrap(),
    );
    let stale = NewEvent::new("WidgetCounted", 1, json!({ "n": 4 }), prov.clone());
    assert!(
        v2.append(&s, Exp::Exact(0), vec![stale]).await.is_err(),
        "new writes must use the current version"
    );
    v2.append(
        &s,
        Exp::Exact(0),
        vec![NewEvent::new("WidgetCounted", 2, json!({ "count": 5, "unit": "box" }), prov)],
    )
    .await
    .unwrap();
    let read = v2.read_stream(&s, FROM_START, Direction::Forwards, 10).await.unwrap();
    assert_eq!(read.iter().map(|e| e.schema_version).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(read[0].data, json!({ "count": 3, "unit": "piece" }));
    assert_eq!(read[1].data, json!({ "count": 5, "unit": "box" }));
    assert_eq!(read[0].metadata.schema_version, 1, "the stored version is kept in the metadata");
    assert_eq!(read[0].data_as_stored(), &json!({ "n": 3 }));
    assert!(read.iter().all(|e| e.hash_is_intact()), "the hash covers the stored form");
    // Subscriptions upcast too.
    let mut sub = v2.subscribe_all(None, h.own());
    let seen = super::until_caught_up(&mut sub).await;
    assert_eq!(seen.iter().map(|e| e.schema_version).collect::<Vec<_>>(), [2, 2]);
}

pub async fn head_is_the_position_of_the_last_event(h: Harness) {
    let s = h.stream();
    let out = h.store.append(&s, Exp::NoStream, h.events(0..3)).await.unwrap();
    let head = h.store.head().await.unwrap().expect("a head once events exist");
    assert!(head >= out.position);
    let out2 = h.store.append(&s, Exp::Any, vec![h.event(3)]).await.unwrap();
    let head2 = h.store.head().await.unwrap().expect("head");
    assert!(head2 >= out2.position && head2 > head);
}

pub async fn events_after_a_position_are_counted_or_reported_as_unknown(h: Harness) {
    let s = h.stream();
    let first = h.store.append(&s, Exp::NoStream, h.events(0..3)).await.unwrap();
    h.store.append(&s, Exp::Exact(2), h.events(3..5)).await.unwrap();
    let (Some(all), Some(after)) =
        (h.store.count_after(None).await.unwrap(), h.store.count_after(Some(first.position)).await.unwrap())
    else {
        // The adapter cannot count cheaply; it must say so for every position alike.
        assert_eq!(h.store.count_after(Some(first.position)).await.unwrap(), None);
        return;
    };
    // Other cases share the store, so only lower bounds hold.
    assert!(all >= 5, "{all}");
    assert!(after >= 2 && after < all, "{after} of {all}");
    let head = h.store.head().await.unwrap();
    assert!(h.store.count_after(head).await.unwrap().unwrap() <= after);
}
