//! Given/when/then of exemption grants and revocations.

use chrono::Duration;

use super::*;

#[test]
fn granting_an_exemption_records_it_to_the_microsecond() {
    let expires_at = now() + Duration::days(30) + Duration::nanoseconds(1_234_567);
    let stored = now() + Duration::days(30) + Duration::microseconds(1_234);
    let state = given::<PolicyState>([created(&body())])
        .when(grant(1, Some(expires_at)))
        .then([granted(1, Some(stored))]);
    assert_eq!(state.active_exemption_for(resource(), now()), Some(Uuid::from_u128(1)));
    assert_eq!(state.active_exemption_for(resource(), stored), None, "expired at expires_at");
}

#[test]
fn an_exemption_without_a_reason_or_a_future_expiry_is_invalid() {
    let command = PolicyCommand::GrantExemption {
        exemption_id: Uuid::from_u128(1),
        resource_id: resource(),
        reason: "  ".into(),
        expires_at: Some(now()),
        now: now(),
    };
    given::<PolicyState>([created(&body())]).when(command).then_error(DomainError::Invalid(vec![
        FieldFault::new("/reason", "must not be empty"),
        FieldFault::new("/expires_at", "must be in the future"),
    ]));
}

#[test]
fn a_second_active_exemption_of_a_resource_is_a_conflict_naming_the_first() {
    let error = given::<PolicyState>([created(&body()), granted(1, None)]).when(grant(2, None)).error();
    let DomainError::Conflict(message) = error else { panic!("expected a conflict, got {error:?}") };
    assert!(message.contains(&Uuid::from_u128(1).to_string()), "{message}");
}

#[test]
fn an_expired_or_revoked_exemption_leaves_room_for_a_new_one() {
    let expired = granted(1, Some(now() - Duration::hours(1)));
    given::<PolicyState>([created(&body()), expired]).when(grant(2, None)).then([granted(2, None)]);
    given::<PolicyState>([created(&body()), granted(1, None), revoked(1)])
        .when(grant(2, None))
        .then([granted(2, None)]);
}

#[test]
fn an_exemption_id_is_used_once() {
    let error =
        given::<PolicyState>([created(&body()), granted(1, None), revoked(1)]).when(grant(1, None)).error();
    assert_eq!(error, DomainError::Conflict(format!("exemption {} already exists", Uuid::from_u128(1))));
}

#[test]
fn revoking_an_exemption_names_its_resource_once() {
    let revoke = PolicyCommand::RevokeExemption { exemption_id: Uuid::from_u128(1) };
    let state =
        given::<PolicyState>([created(&body()), granted(1, None)]).when(revoke.clone()).then([revoked(1)]);
    assert_eq!(state.active_exemption_for(resource(), now()), None);
    assert!(state.exemptions()[&Uuid::from_u128(1)].revoked);
    let not_found = DomainError::NotFound { what: "exemption" };
    given::<PolicyState>([created(&body()), granted(1, None), revoked(1)])
        .when(revoke.clone())
        .then_error(not_found.clone());
    given::<PolicyState>([created(&body())]).when(revoke).then_error(not_found);
}

#[test]
fn an_expired_exemption_may_still_be_revoked() {
    let expired = granted(1, Some(now() - Duration::hours(1)));
    given::<PolicyState>([created(&body()), expired])
        .when(PolicyCommand::RevokeExemption { exemption_id: Uuid::from_u128(1) })
        .then([revoked(1)]);
}
