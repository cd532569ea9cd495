//! Given/when/then of external compliance results.

use cortex_events::catalog::{ComplianceEvaluated, ComplianceState, PolicyResult};

use super::*;
use crate::aggregate::testing::given;

fn resource() -> Uuid {
    Uuid::from_u128(0x5e)
}

fn policy() -> Uuid {
    Uuid::from_u128(0x901)
}

fn body(state: ComplianceState, reason: Option<&str>, source: &str) -> EvaluationBody {
    EvaluationBody {
        resource_id: resource(),
        policy_id: policy(),
        state,
        reason: reason.map(Into::into),
        source: source.into(),
    }
}

fn record(body: EvaluationBody) -> ComplianceCommand {
    ComplianceCommand::RecordExternal { body, policy_revision: Some(3), resource_revision: Some(7) }
}

fn evaluated(state: ComplianceState, reason: Option<&str>, source: &str) -> DomainEvent {
    ComplianceEvaluated {
        resource_id: resource(),
        resource_revision: Some(7),
        source: source.into(),
        results: vec![PolicyResult {
            policy_id: policy(),
            state,
            reason: reason.map(Into::into),
            details: None,
            policy_revision: Some(3),
        }],
    }
    .into()
}

#[test]
fn a_first_result_is_recorded_with_the_revisions_it_was_made_with() {
    let state = given::<ResourceCompliance>([])
        .when(record(body(ComplianceState::NonCompliant, Some("tls 1.0"), "defender")))
        .then([evaluated(ComplianceState::NonCompliant, Some("tls 1.0"), "defender")]);
    let latest =
        state.latest(policy(), "defender").map(|l| (l.state, l.policy_revision, l.resource_revision));
    assert_eq!(latest, Some((ComplianceState::NonCompliant, Some(3), Some(7))));
}

#[test]
fn the_same_result_from_the_same_source_appends_nothing() {
    let history = [evaluated(ComplianceState::Compliant, None, "defender")];
    let again = ComplianceCommand::RecordExternal {
        body: body(ComplianceState::Compliant, None, "defender"),
        policy_revision: Some(4),
        resource_revision: None,
    };
    given::<ResourceCompliance>(history).when(again).then_nothing();
}

#[test]
fn a_new_state_or_reason_is_recorded() {
    let history = || [evaluated(ComplianceState::Compliant, None, "defender")];
    given::<ResourceCompliance>(history())
        .when(record(body(ComplianceState::NonCompliant, None, "defender")))
        .then([evaluated(ComplianceState::NonCompliant, None, "defender")]);
    given::<ResourceCompliance>(history())
        .when(record(body(ComplianceState::Compliant, Some("checked"), "defender")))
        .then([evaluated(ComplianceState::Compliant, Some("checked"), "defender")]);
}

#[test]
fn sources_keep_their_own_latest_results() {
    given::<ResourceCompliance>([evaluated(ComplianceState::Compliant, None, "defender")])
        .when(record(body(ComplianceState::Compliant, None, "prowler")))
        .then([evaluated(ComplianceState::Compliant, None, "prowler")]);
}

#[test]
fn the_built_in_evaluators_results_fold_into_the_state() {
    let state = ResourceCompliance::fold(&[evaluated(ComplianceState::Exempt, None, RESERVED_SOURCE)]);
    let results: Vec<(Uuid, &str)> = state.results().map(|(p, s, _)| (p, s)).collect();
    assert_eq!(results, [(policy(), RESERVED_SOURCE)]);
}

#[test]
fn an_empty_or_reserved_source_is_invalid() {
    for source in ["", "  ", "policycortex", "PolicyCortex"] {
        let error = given::<ResourceCompliance>([])
            .when(record(body(ComplianceState::Compliant, None, source)))
            .error();
        let DomainError::Invalid(faults) = error else { panic!("expected invalid, got {error:?}") };
        assert_eq!(faults.iter().map(|f| f.pointer.as_str()).collect::<Vec<_>>(), ["/source"], "{source:?}");
    }
}

#[test]
fn an_evaluation_body_refuses_unknown_fields() {
    let body = serde_json::json!({"resource_id": resource(), "policy_id": policy(), "state": "compliant",
        "source": "defender", "effect": "audit"});
    assert!(serde_json::from_value::<EvaluationBody>(body).is_err());
}
