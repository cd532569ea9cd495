//! What every aggregate property test checks of the events a decision answers: each one
//! passes the store's schema check, and reads back from its JSON as the same event (so the
//! state folded from the store is the state folded in memory).

use std::sync::OnceLock;

use cortex_events::{Catalog, DomainEvent, Provenance};
use proptest::prelude::*;
use uuid::Uuid;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::standard().unwrap_or_else(|e| panic!("the bundled catalog: {e}")))
}

/// Every event satisfies its JSON Schema and survives its JSON round trip.
pub fn check_storable(events: &[DomainEvent]) -> Result<(), TestCaseError> {
    let provenance = Provenance::system(Uuid::from_u128(0x7e), "aggregate-properties");
    for event in events {
        let new = event.clone().into_new_event(provenance.clone());
        if let Err(e) = catalog().validate(&new) {
            return Err(TestCaseError::fail(format!("{event:?} does not validate: {e:?}")));
        }
        match DomainEvent::decode(event.event_type(), event.schema_version(), &new.data) {
            Ok(decoded) => prop_assert_eq!(&decoded, event, "the JSON round trip changed the event"),
            Err(e) => return Err(TestCaseError::fail(format!("{event:?} does not decode: {e}"))),
        }
    }
    Ok(())
}
