//! The event store conformance suite: one set of cases, run against every adapter.
//!
//! Each case gets a [`Harness`]: a store factory (so a case can reopen the same storage with
//! another catalog) and a namespace — a category of its own — so that cases can share one
//! KurrentDB server whose `$all` also holds other cases' events. Cases assert behaviour,
//! never timings; every wait has a generous bound only so that a broken adapter fails
//! instead of hanging.

// Each test binary uses the part of the suite it runs.
#![allow(dead_code, unused_imports)]

mod appends;
mod concurrency;
mod reads;
mod subscriptions;

use std::{sync::Arc, time::Duration};

use cortex_events::{
    Catalog, EventFilter, EventStore, NewEvent, Position, Provenance, RecordedEvent, StoreError, StreamName,
    SubscriptionItem,
};
use futures::{StreamExt, stream::BoxStream};
use serde_json::json;
use uuid::Uuid;

pub use appends::*;
pub use concurrency::*;
pub use reads::*;
pub use subscriptions::*;

/// Every case, by name. `$m!` is called with the list; adapters' test files turn each name
/// into a test.
#[macro_export]
macro_rules! for_each_case {
    ($m:ident) => {
        $m! {
            no_stream_append_creates_the_stream_at_revision_zero,
            no_stream_append_to_an_existing_stream_is_a_conflict,
            exact_append_at_the_current_revision_succeeds,
            exact_append_with_a_stale_revision_is_rejected_as_a_conflict,
            stream_exists_append_needs_an_existing_stream,
            any_append_succeeds_at_whatever_revision,
            retrying_an_append_with_the_same_event_ids_writes_nothing_twice,
            different_event_ids_at_a_taken_revision_are_a_conflict,
            an_oversize_append_is_refused_and_nothing_is_written,
            events_that_break_the_catalog_are_refused_and_nothing_is_written,
            streams_read_forwards_and_backwards_with_a_limit,
            a_missing_stream_reads_as_empty,
            many_streams_read_at_once_answer_each_stream_whole,
            every_event_is_sealed_into_its_stream_hash_chain,
            old_schema_versions_are_upcast_on_read,
            head_is_the_position_of_the_last_event,
            events_after_a_position_are_counted_or_reported_as_unknown,
            subscribing_from_the_start_delivers_history_then_caught_up_once,
            subscribing_from_a_checkpoint_starts_after_it,
            live_events_arrive_after_caught_up,
            filters_select_by_category_and_event_type,
            checkpoints_pass_while_filtered_out_events_are_scanned,
            concurrent_writers_are_seen_exactly_once_in_one_total_order,
        }
    };
}

/// Opens a store over the adapter's storage with the given catalog.
pub type Factory = Arc<dyn Fn(Arc<Catalog>) -> Arc<dyn EventStore> + Send + Sync>;

pub struct Harness {
    factory: Factory,
    pub store: Arc<dyn EventStore>,
    /// This case's own category.
    pub category: String,
    pub tenant: Uuid,
}

impl Harness {
    pub fn new(factory: Factory) -> Self {
        let store = factory(test_catalog());
        Self { factory, store, category: format!("t{}", Uuid::now_v7().simple()), tenant: Uuid::now_v7() }
    }

    /// Another harness over the same store and tenant, with its own category.
    pub fn new_sharing(other: &Harness) -> Self {
        Self {
            factory: other.factory.clone(),
            store: other.store.clone(),
            category: format!("t{}", Uuid::now_v7().simple()),
            tenant: other.tenant,
        }
    }

    pub fn reopen(&self, catalog: Catalog) -> Arc<dyn EventStore> {
        (self.factory)(Arc::new(catalog))
    }

    /// A new stream of this case's category.
    pub fn stream(&self) -> StreamName {
        StreamName::parse(format!("{}-{}", self.category, Uuid::now_v7().simple())).expect("valid name")
    }

    pub fn event(&self, n: u64) -> NewEvent {
        NewEvent::new("TestEvent", 1, json!({ "n": n }), Provenance::system(self.tenant, "conformance"))
    }

    pub fn other_event(&self, n: u64) -> NewEvent {
        NewEvent::new("OtherTestEvent", 1, json!({ "n": n }), Provenance::system(self.tenant, "conformance"))
    }

    pub fn events(&self, range: std::ops::Range<u64>) -> Vec<NewEvent> {
        range.map(|n| self.event(n)).collect()
    }

    /// A filter that sees only this case's events.
    pub fn own(&self) -> EventFilter {
        EventFilter::all().categories([self.category.clone()])
    }
}

const TEST_EVENT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["n"],
  "properties": { "n": { "type": "integer", "minimum": 0 }, "pad": { "type": "string" }, "writer": { "type": "integer" } }
}"#;

/// PolicyCortex's catalog plus the suite's two test event types.
pub fn test_catalog() -> Arc<Catalog> {
    Arc::new(test_catalog_builder().build().expect("test catalog builds"))
}

pub fn test_catalog_builder() -> cortex_events::schema::CatalogBuilder {
    Catalog::standard_builder().schema_text("TestEvent", 1, TEST_EVENT_SCHEMA).schema_text(
        "OtherTestEvent",
        1,
        TEST_EVENT_SCHEMA,
    )
}

/// Hang guard for waits (not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub type Sub = BoxStream<'static, Result<SubscriptionItem, StoreError>>;

/// The next item, failing the case (not hanging) if none comes.
pub async fn next_item(sub: &mut Sub) -> SubscriptionItem {
    match tokio::time::timeout(PATIENCE, sub.next()).await {
        Ok(Some(Ok(item))) => item,
        Ok(Some(Err(e))) => panic!("subscription failed: {e}"),
        Ok(None) => panic!("subscription ended"),
        Err(_) => panic!("no subscription item within {PATIENCE:?}"),
    }
}

/// Events until `CaughtUp` (which must come), and whether checkpoints came too.
pub async fn until_caught_up(sub: &mut Sub) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    loop {
        match next_item(sub).await {
            SubscriptionItem::Event(e) => events.push(*e),
            SubscriptionItem::CaughtUp => return events,
            SubscriptionItem::Checkpoint(_) => {}
        }
    }
}

/// The next `n` events, skipping checkpoints; a second `CaughtUp` fails the case.
pub async fn next_events(sub: &mut Sub, n: usize) -> Vec<RecordedEvent> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        match next_item(sub).await {
            SubscriptionItem::Event(e) => events.push(*e),
            SubscriptionItem::CaughtUp => panic!("CaughtUp sent twice"),
            SubscriptionItem::Checkpoint(_) => {}
        }
    }
    events
}

pub fn ns(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.data["n"].as_u64().expect("n")).collect()
}

pub fn positions_increase(events: &[RecordedEvent]) -> bool {
    events.windows(2).all(|w| w[0].position < w[1].position)
}

pub fn last_position(events: &[RecordedEvent]) -> Position {
    events.last().expect("at least one event").position
}
