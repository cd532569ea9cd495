//! Given/when/then for aggregate unit tests (after serverlesstechnology/cqrs's
//! `TestFramework`): a history, a command, and the events or error it must decide.

use std::fmt::Debug;

use cortex_events::DomainEvent;

use super::{Aggregate, DomainError};

/// The state folded from `events`.
pub(crate) fn given<A: Aggregate>(events: impl IntoIterator<Item = DomainEvent>) -> Given<A> {
    let events: Vec<DomainEvent> = events.into_iter().collect();
    Given { state: A::fold(&events) }
}

pub(crate) struct Given<A> {
    pub(crate) state: A,
}

impl<A: Aggregate> Given<A> {
    pub(crate) fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.decide(&command);
        Then { state: self.state, result }
    }
}

pub(crate) struct Then<A> {
    state: A,
    result: Result<Vec<DomainEvent>, DomainError>,
}

impl<A: Aggregate + Debug> Then<A> {
    /// Asserts exactly these events, and that the state can apply them.
    pub(crate) fn then(self, expected: impl IntoIterator<Item = DomainEvent>) -> A {
        let expected: Vec<DomainEvent> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "decided events differ from the expected ones");
                events.iter().fold(self.state, |state, event| state.evolve(event))
            }
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// The state after whatever events were decided (for assertions on the state alone).
    pub(crate) fn then_state(self) -> A {
        match self.result {
            Ok(events) => events.iter().fold(self.state, |state, event| state.evolve(event)),
            Err(error) => panic!("expected events, got error {error:?}"),
        }
    }

    /// Asserts that the command changes nothing.
    pub(crate) fn then_nothing(self) {
        self.then([]);
    }

    pub(crate) fn then_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }

    /// The decision as it is, for assertions on its shape.
    pub(crate) fn result(self) -> Result<Vec<DomainEvent>, DomainError> {
        self.result
    }

    /// The refusal, for assertions on part of it (a message, one fault).
    pub(crate) fn error(self) -> DomainError {
        match self.result {
            Ok(events) => panic!("expected an error, got events {events:?}"),
            Err(error) => error,
        }
    }
}
