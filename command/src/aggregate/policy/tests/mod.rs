//! Given/when/then of every policy decision: definitions and life cycle here, exemptions in
//! `exemptions.rs`.

mod exemptions;

use chrono::TimeZone;
use cortex_events::catalog::{
    ExemptionGranted, ExemptionRevoked, PolicyCreated, PolicyMode, PolicyScope, Severity,
};
use cortex_rules::FaultPart;
use serde_json::{Value, json};

use super::*;
use crate::aggregate::FieldFault;
use crate::aggregate::testing::given;

fn id() -> Uuid {
    Uuid::from_u128(0x901)
}

fn resource() -> Uuid {
    Uuid::from_u128(0x5e)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().unwrap_or_default()
}

fn body() -> PolicyBody {
    serde_json::from_value(json!({
        "name": "Require an env tag",
        "severity": "high",
        "rule": {"if": {"field": "[concat('tags[', parameters('tag'), ']')]", "exists": "false"},
                 "then": {"effect": "audit"}},
        "parameters": {"tag": {"type": "String"}},
        "parameter_values": {"tag": "env"},
    }))
    .unwrap_or_else(|e| panic!("test body: {e}"))
}

fn created(body: &PolicyBody) -> DomainEvent {
    match body.definition(true) {
        Ok(definition) => definition.created(id()).into(),
        Err(e) => panic!("test body does not compile: {e}"),
    }
}

fn deleted() -> DomainEvent {
    PolicyDeleted { policy_id: id(), name: body().name }.into()
}

fn update(body: PolicyBody) -> PolicyCommand {
    PolicyCommand::Update { body }
}

fn grant(exemption: u128, expires_at: Option<DateTime<Utc>>) -> PolicyCommand {
    PolicyCommand::GrantExemption {
        exemption_id: Uuid::from_u128(exemption),
        resource_id: resource(),
        reason: "legacy workload".into(),
        expires_at,
        now: now(),
    }
}

fn granted(exemption: u128, expires_at: Option<DateTime<Utc>>) -> DomainEvent {
    ExemptionGranted {
        policy_id: id(),
        exemption_id: Uuid::from_u128(exemption),
        resource_id: resource(),
        reason: "legacy workload".into(),
        expires_at,
    }
    .into()
}

fn revoked(exemption: u128) -> DomainEvent {
    ExemptionRevoked { policy_id: id(), exemption_id: Uuid::from_u128(exemption), resource_id: resource() }
        .into()
}

const NOT_FOUND: DomainError = DomainError::NotFound { what: "policy" };

#[test]
fn creating_a_policy_records_its_definition_enabled_by_default() {
    let state =
        given::<PolicyState>([]).when(PolicyCommand::Create { policy_id: id(), body: body() }).then([
            PolicyCreated {
                policy_id: id(),
                name: "Require an env tag".into(),
                description: None,
                category: None,
                severity: Severity::High,
                mode: PolicyMode::All,
                rule: body().rule,
                parameters: body().parameters,
                parameter_values: body().parameter_values,
                scope: PolicyScope::default(),
                enabled: true,
            }
            .into(),
        ]);
    assert!(state.is_live());
    assert_eq!(state.policy_id(), Some(id()));
    assert!(state.definition().is_some_and(|d| d.compile().is_ok()));
}

#[test]
fn a_policy_created_disabled_stays_disabled() {
    let body = PolicyBody { enabled: Some(false), ..body() };
    let state = given::<PolicyState>([]).when(PolicyCommand::Create { policy_id: id(), body }).then_state();
    assert_eq!(state.definition().map(|d| d.enabled), Some(false));
}

#[test]
fn the_mode_is_read_in_any_case() {
    let body = PolicyBody { mode: Some("Indexed".into()), ..body() };
    let state = given::<PolicyState>([]).when(PolicyCommand::Create { policy_id: id(), body }).then_state();
    assert_eq!(state.definition().map(|d| d.mode), Some(PolicyMode::Indexed));
}

#[test]
fn field_faults_are_named_before_the_rule_is_compiled() {
    let body = PolicyBody {
        name: " ".into(),
        mode: Some("Microsoft.KeyVault.Data".into()),
        rule: json!("not a rule"),
        scope: PolicyScope { subscriptions: vec!["s1".into(), String::new()], resource_groups: vec![] },
        ..body()
    };
    let error = given::<PolicyState>([]).when(PolicyCommand::Create { policy_id: id(), body }).error();
    let DomainError::Invalid(faults) = error else { panic!("expected invalid, got {error:?}") };
    let pointers: Vec<&str> = faults.iter().map(|f| f.pointer.as_str()).collect();
    assert_eq!(pointers, ["/name", "/mode", "/scope/subscriptions/1"]);
}

#[test]
fn a_rule_that_does_not_compile_is_refused_with_its_faults() {
    let body = PolicyBody {
        rule: json!({"if": {"field": "name", "equalz": "x"}, "then": {"effect": "audit"}}),
        parameter_values: serde_json::Map::new(),
        ..body()
    };
    let error = given::<PolicyState>([]).when(PolicyCommand::Create { policy_id: id(), body }).error();
    let DomainError::RuleDoesNotCompile(errors) = error else { panic!("expected 422, got {error:?}") };
    assert!(errors.faults.iter().any(|f| f.part == FaultPart::Rule && f.pointer.starts_with("/if")));
    assert!(
        errors.faults.iter().any(|f| f.part == FaultPart::ParameterValues || f.part == FaultPart::Parameters)
    );
}

#[test]
fn creating_a_policy_that_exists_or_existed_is_a_conflict() {
    for history in [vec![created(&body())], vec![created(&body()), deleted()]] {
        let error = given::<PolicyState>(history)
            .when(PolicyCommand::Create { policy_id: id(), body: body() })
            .error();
        assert!(matches!(error, DomainError::Conflict(_)), "{error:?}");
    }
}

#[test]
fn updating_with_the_same_body_appends_nothing() {
    given::<PolicyState>([created(&body())]).when(update(body())).then_nothing();
    let same_mode_in_another_case = PolicyBody { mode: Some("ALL".into()), ..body() };
    given::<PolicyState>([created(&body())]).when(update(same_mode_in_another_case)).then_nothing();
}

#[test]
fn new_parameter_values_are_a_rule_change_with_the_previous_rule() {
    let new = PolicyBody {
        parameter_values: json_map(json!({"tag": "owner"})),
        mode: Some("indexed".into()),
        ..body()
    };
    given::<PolicyState>([created(&body())]).when(update(new.clone())).then([PolicyRuleChanged {
        policy_id: id(),
        rule: new.rule,
        parameters: new.parameters,
        parameter_values: new.parameter_values,
        mode: PolicyMode::Indexed,
        previous_rule: body().rule,
        previous_parameters: body().parameters,
        previous_parameter_values: body().parameter_values,
        previous_mode: PolicyMode::All,
    }
    .into()]);
}

#[test]
fn a_new_severity_or_scope_is_a_details_change() {
    let scope = PolicyScope { subscriptions: vec!["s1".into()], resource_groups: vec!["s1/rg1".into()] };
    let new =
        PolicyBody { severity: Severity::Low, scope: scope.clone(), description: Some("d".into()), ..body() };
    given::<PolicyState>([created(&body())]).when(update(new)).then([PolicyDetailsChanged {
        policy_id: id(),
        name: body().name,
        description: Some("d".into()),
        category: None,
        severity: Severity::Low,
        scope,
        previous_name: body().name,
        previous_description: None,
        previous_category: None,
        previous_severity: Severity::High,
        previous_scope: PolicyScope::default(),
    }
    .into()]);
}

#[test]
fn an_update_without_enabled_keeps_it_and_one_with_enabled_sets_it() {
    let disabled: DomainEvent = PolicyDisabled { policy_id: id() }.into();
    given::<PolicyState>([created(&body()), disabled.clone()]).when(update(body())).then_nothing();
    given::<PolicyState>([created(&body())])
        .when(update(PolicyBody { enabled: Some(false), ..body() }))
        .then([disabled.clone()]);
    given::<PolicyState>([created(&body()), disabled])
        .when(update(PolicyBody { enabled: Some(true), ..body() }))
        .then([PolicyEnabled { policy_id: id() }.into()]);
}

#[test]
fn an_update_of_everything_answers_rule_details_then_enablement() {
    let new = PolicyBody {
        name: "Tag owners".into(),
        parameter_values: json_map(json!({"tag": "owner"})),
        enabled: Some(false),
        ..body()
    };
    let events = given::<PolicyState>([created(&body())]).when(update(new)).result().expect("decides");
    let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(types, ["PolicyRuleChanged", "PolicyDetailsChanged", "PolicyDisabled"]);
}

#[test]
fn an_update_with_a_rule_that_does_not_compile_is_refused() {
    let new = PolicyBody { rule: json!({"if": {"field": "name", "equals": "x"}}), ..body() };
    let error = given::<PolicyState>([created(&body())]).when(update(new)).error();
    assert!(matches!(error, DomainError::RuleDoesNotCompile(_)), "{error:?}");
}

#[test]
fn commands_on_an_unknown_or_deleted_policy_find_nothing() {
    let commands = [
        update(body()),
        PolicyCommand::Enable,
        PolicyCommand::Disable,
        PolicyCommand::Delete,
        grant(1, None),
    ];
    for history in [vec![], vec![created(&body()), deleted()]] {
        for command in commands.clone() {
            given::<PolicyState>(history.clone()).when(command).then_error(NOT_FOUND);
        }
    }
    given::<PolicyState>([])
        .when(PolicyCommand::RevokeExemption { exemption_id: Uuid::from_u128(1) })
        .then_error(NOT_FOUND);
}

#[test]
fn enabling_and_disabling_change_only_what_is_not_so_already() {
    let disabled: DomainEvent = PolicyDisabled { policy_id: id() }.into();
    given::<PolicyState>([created(&body())]).when(PolicyCommand::Enable).then_nothing();
    given::<PolicyState>([created(&body())]).when(PolicyCommand::Disable).then([disabled.clone()]);
    given::<PolicyState>([created(&body()), disabled.clone()]).when(PolicyCommand::Disable).then_nothing();
    given::<PolicyState>([created(&body()), disabled])
        .when(PolicyCommand::Enable)
        .then([PolicyEnabled { policy_id: id() }.into()]);
}

#[test]
fn deleting_a_policy_records_its_name_and_keeps_the_last_definition() {
    let state = given::<PolicyState>([created(&body())]).when(PolicyCommand::Delete).then([deleted()]);
    assert!(!state.is_live() && state.is_deleted());
    assert_eq!(state.definition(), None);
    assert_eq!(state.last_definition().map(|d| d.name.as_str()), Some("Require an env tag"));
}

#[test]
fn a_policy_body_refuses_unknown_fields_and_defaults_the_rest() {
    let minimal = json!({"name": "n", "severity": "low", "rule": {}});
    let body: PolicyBody = serde_json::from_value(minimal).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((body.enabled, body.scope, body.parameters.len()), (None, PolicyScope::default(), 0));
    let unknown = json!({"name": "n", "severity": "low", "rule": {}, "effect": "deny"});
    assert!(serde_json::from_value::<PolicyBody>(unknown).is_err());
}

fn json_map(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}
