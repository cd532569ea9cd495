//! Many writers on many streams while subscribers run.

use std::{collections::HashMap, collections::HashSet, sync::Arc};

use cortex_events::{ExpectedRevision as Exp, NewEvent, Provenance, RecordedEvent, StreamName};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use uuid::Uuid;

use super::{Harness, PATIENCE, next_events, positions_increase, until_caught_up};

const WRITERS: u64 = 8;
const PER_WRITER: u64 = 2_000;
const STREAMS: usize = 200;
const TOTAL: usize = (WRITERS * PER_WRITER) as usize;

/// 8 writers × 2,000 events over 200 shared streams (appends of 1–4 events under `Any`, so
/// writers also race on the same streams), while a subscriber follows from the start. It
/// must receive all 16,000 exactly once, in one total order consistent with every stream's
/// revision order; a second subscriber started from a random event's position receives
/// exactly the rest.
pub async fn concurrent_writers_are_seen_exactly_once_in_one_total_order(h: Harness) {
    let streams: Arc<Vec<StreamName>> = Arc::new((0..STREAMS).map(|_| h.stream()).collect());
    let mut sub = h.store.subscribe_all(None, h.own());
    assert!(until_caught_up(&mut sub).await.is_empty());
    let collector = tokio::spawn(async move { next_events(&mut sub, TOTAL).await });

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, streams, tenant) = (h.store.clone(), streams.clone(), h.tenant);
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w);
                let prov = Provenance::system(tenant, "conformance");
                let mut written = 0;
                while written < PER_WRITER {
                    let k = rng.random_range(1..=4).min(PER_WRITER - written);
                    let stream = &streams[rng.random_range(0..STREAMS)];
                    let events = (0..k)
                        .map(|i| {
                            NewEvent::new(
                                "TestEvent",
                                1,
                                json!({ "n": w * PER_WRITER + written + i, "writer": w }),
                                prov.clone(),
                            )
                        })
                        .collect();
                    store.append(stream, Exp::Any, events).await.expect("append under Any succeeds");
                    written += k;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer finished");
    }
    let seen = tokio::time::timeout(PATIENCE * 3, collector)
        .await
        .expect("subscriber received every event in time")
        .expect("subscriber task");

    let ids: HashSet<Uuid> = seen.iter().map(RecordedEvent::event_id).collect();
    assert_eq!(ids.len(), TOTAL, "no event delivered twice");
    let mut ns: Vec<u64> = seen.iter().map(|e| e.data["n"].as_u64().expect("n")).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..TOTAL as u64).collect::<Vec<_>>(), "every event delivered");
    assert!(positions_increase(&seen), "one total order");
    let mut next_revision: HashMap<&StreamName, u64> = HashMap::new();
    for e in &seen {
        let expected = next_revision.entry(&e.stream).or_insert(0);
        assert_eq!(e.revision, *expected, "{} delivered out of revision order", e.stream);
        *expected += 1;
    }
    // The stores agree with their own stream reads.
    for s in streams.iter().take(5) {
        let read = h.store.read_stream(s, 0, cortex_events::Direction::Forwards, TOTAL).await.unwrap();
        let via_all: Vec<Uuid> =
            seen.iter().filter(|e| &e.stream == s).map(RecordedEvent::event_id).collect();
        assert_eq!(read.iter().map(RecordedEvent::event_id).collect::<Vec<_>>(), via_all);
    }

    let cut = StdRng::from_os_rng().random_range(0..TOTAL);
    let mut second = h.store.subscribe_all(Some(seen[cut].position), h.own());
    let rest = until_caught_up(&mut second).await;
    let expected: Vec<Uuid> = seen[cut + 1..].iter().map(RecordedEvent::event_id).collect();
    assert_eq!(
        rest.iter().map(RecordedEvent::event_id).collect::<Vec<_>>(),
        expected,
        "exactly the rest after {cut}"
    );
}
