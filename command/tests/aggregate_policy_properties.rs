//! Property tests of the policy aggregate over random command sequences, against a small
//! model of which commands must be refused: a decision that succeeds leads to the
//! definition the command described, repeating it changes nothing or is refused by design
//! (create, delete, grant, revoke), and every event it answers is storable.

mod aggregate_support;

use aggregate_support::check_storable;
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use cortex_command::aggregate::{
    Aggregate, DomainError, PolicyBody, PolicyCommand, PolicyDefinition, PolicyState,
};
use cortex_events::catalog::{PolicyMode, PolicyScope, Severity};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A compiling rule with its parameter definitions and values.
fn rule() -> impl Strategy<Value = (Value, Map<String, Value>, Map<String, Value>)> {
    let storage = json!({"if": {"field": "type", "equals": "Microsoft.Storage/storageAccounts"}, "then": {"effect": "audit"}});
    let locations = json!({"if": {"field": "location", "notIn": "[parameters('locations')]"},
        "then": {"effect": "[parameters('effect')]"}});
    let definitions = object(json!({"locations": {"type": "Array"},
        "effect": {"type": "String", "defaultValue": "audit", "allowedValues": ["audit", "deny", "disabled"]}}));
    prop_oneof![
        Just((storage, Map::new(), Map::new())),
        select(vec![
            json!({"locations": ["eastus"]}),
            json!({"locations": ["westeurope"], "effect": "Deny"})
        ])
        .prop_map(move |values| (locations.clone(), definitions.clone(), object(values))),
    ]
}

fn body() -> impl Strategy<Value = PolicyBody> {
    let text = || proptest::option::of(select(vec!["", "d", "D"]).prop_map(str::to_owned));
    let scope = (subsequence(vec!["s1", "s2"], 0..=2), subsequence(vec!["s1/rg1", "rg2"], 0..=2)).prop_map(
        |(s, g)| PolicyScope {
            subscriptions: s.into_iter().map(Into::into).collect(),
            resource_groups: g.into_iter().map(Into::into).collect(),
        },
    );
    (
        select(vec!["tags", "Tags", " "]),
        (text(), text()),
        select(vec![Severity::Low, Severity::Medium, Severity::High, Severity::Critical]),
        proptest::option::of(select(vec!["all", "All", "indexed", "INDEXED"])),
        rule(),
        scope,
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                name,
                (description, category),
                severity,
                mode,
                (rule, parameters, parameter_values),
                scope,
                enabled,
            )| {
                PolicyBody {
                    name: name.into(),
                    description,
                    category,
                    severity,
                    mode: mode.map(Into::into),
                    rule,
                    parameters,
                    parameter_values,
                    scope,
                    enabled,
                }
            },
        )
}

/// Commands, each after some time passes (so that exemptions expire).
fn steps() -> impl Strategy<Value = Vec<(i64, PolicyCommand)>> {
    let exemption = || (1u128..4).prop_map(Uuid::from_u128);
    let grant = (
        exemption(),
        (1u128..3).prop_map(Uuid::from_u128),
        select(vec!["legacy", " "]),
        proptest::option::of(prop_oneof![
            // At `now` to the microsecond: already expired.
            Just((0i64, 0i64)),
            Just((0, 999)),
            (-100i64..1_000, 0i64..1_000_000_000),
        ]),
    )
        .prop_map(|(exemption_id, resource_id, reason, expires)| {
            (exemption_id, resource_id, reason.to_owned(), expires)
        });
    let command = prop_oneof![
        2 => body().prop_map(|body| PolicyCommand::Create { policy_id: Uuid::from_u128(0x901), body }),
        4 => body().prop_map(|body| PolicyCommand::Update { body }),
        1 => Just(PolicyCommand::Enable),
        1 => Just(PolicyCommand::Disable),
        1 => Just(PolicyCommand::Delete),
        // Written as if at `start()`; shifted to the time of the step when it runs.
        3 => grant.prop_map(|(exemption_id, resource_id, reason, expires)| PolicyCommand::GrantExemption {
            exemption_id,
            resource_id,
            reason,
            expires_at: expires.map(|(s, n)| start() + Duration::seconds(s) + Duration::nanoseconds(n)),
            now: start(),
        }),
        2 => exemption().prop_map(|exemption_id| PolicyCommand::RevokeExemption { exemption_id }),
    ];
    let wait = prop_oneof![3 => Just(0i64), 1 => 0i64..600];
    proptest::collection::vec((wait, command), 1..40)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().unwrap_or_default()
}

/// What a body should become, computed apart from the aggregate's own parsing.
fn expected(body: &PolicyBody, enabled: bool) -> PolicyDefinition {
    let indexed = body.mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("indexed"));
    PolicyDefinition {
        name: body.name.clone(),
        description: body.description.clone(),
        category: body.category.clone(),
        severity: body.severity,
        mode: if indexed { PolicyMode::Indexed } else { PolicyMode::All },
        rule: body.rule.clone(),
        parameters: body.parameters.clone(),
        parameter_values: body.parameter_values.clone(),
        scope: body.scope.clone(),
        enabled: body.enabled.unwrap_or(enabled),
    }
}

/// The refusal the model predicts for `command` on `state` at `now`, if any.
fn predicted_refusal(
    state: &PolicyState,
    command: &PolicyCommand,
    now: DateTime<Utc>,
) -> Option<DomainError> {
    let not_found = |what| Some(DomainError::NotFound { what });
    let invalid = |blank: bool| blank.then(|| DomainError::Invalid(vec![]));
    let conflict = Some(DomainError::Conflict(String::new()));
    match command {
        PolicyCommand::Create { .. } if state.policy_id().is_some() => conflict,
        PolicyCommand::Create { body, .. } => invalid(body.name.trim().is_empty()),
        _ if !state.is_live() => not_found("policy"),
        PolicyCommand::Update { body } => invalid(body.name.trim().is_empty()),
        PolicyCommand::GrantExemption { exemption_id, resource_id, reason, expires_at, .. } => {
            if reason.trim().is_empty() || expires_at.is_some_and(|t| t.trunc_subsecs(6) <= now) {
                invalid(true)
            } else if state.exemptions().contains_key(exemption_id)
                || state.active_exemption_for(*resource_id, now).is_some()
            {
                conflict
            } else {
                None
            }
        }
        PolicyCommand::RevokeExemption { exemption_id } => match state.exemptions().get(exemption_id) {
            Some(exemption) if !exemption.revoked => None,
            _ => not_found("exemption"),
        },
        PolicyCommand::Enable | PolicyCommand::Disable | PolicyCommand::Delete => None,
    }
}

/// Same variant (and, for not found, the same thing not found).
fn same_kind(a: &DomainError, b: &DomainError) -> bool {
    match (a, b) {
        (DomainError::NotFound { what: a }, DomainError::NotFound { what: b }) => a == b,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

proptest! {
    #[test]
    fn policy_decisions_follow_the_model_and_repeat_as_no_change(steps in steps()) {
        let mut now = start();
        let mut state = PolicyState::default();
        let mut history = Vec::new();
        for (wait, mut command) in steps {
            now += Duration::seconds(wait);
            if let PolicyCommand::GrantExemption { now: at, expires_at, .. } = &mut command {
                *at = now;
                *expires_at = expires_at.map(|t| t + (now - start()));
            }
            let decided = state.decide(&command);
            let events = match (predicted_refusal(&state, &command, now), decided) {
                (Some(expected), Err(error)) => {
                    prop_assert!(same_kind(&expected, &error), "expected {expected:?}, got {error:?}");
                    continue;
                }
                (None, Ok(events)) => events,
                (expected, decided) => {
                    return Err(TestCaseError::fail(format!("{command:?}: expected {expected:?}, got {decided:?}")));
                }
            };
            check_storable(&events)?;
            history.extend_from_slice(&events);
            let before = state.clone();
            state = events.iter().fold(state, |state, event| state.evolve(event));
            let repeated = state.decide(&command);
            match &command {
                PolicyCommand::Create { body, .. } => {
                    prop_assert_eq!(state.definition(), Some(&expected(body, true)));
                    prop_assert!(matches!(repeated, Err(DomainError::Conflict(_))));
                }
                PolicyCommand::Update { body } => {
                    let enabled = before.definition().is_some_and(|d| d.enabled);
                    prop_assert_eq!(state.definition(), Some(&expected(body, enabled)));
                    prop_assert_eq!(repeated, Ok(vec![]));
                }
                PolicyCommand::Enable | PolicyCommand::Disable => {
                    let enabled = matches!(command, PolicyCommand::Enable);
                    prop_assert_eq!(state.definition().map(|d| d.enabled), Some(enabled));
                    prop_assert_eq!(repeated, Ok(vec![]));
                }
                PolicyCommand::Delete => {
                    prop_assert!(!state.is_live());
                    prop_assert_eq!(state.last_definition(), before.definition());
                    prop_assert_eq!(repeated, Err(DomainError::NotFound { what: "policy" }));
                }
                PolicyCommand::GrantExemption { exemption_id, resource_id, reason, expires_at, .. } => {
                    let exemption = &state.exemptions()[exemption_id];
                    prop_assert_eq!((exemption.resource_id, &exemption.reason), (*resource_id, reason));
                    prop_assert_eq!(exemption.expires_at, expires_at.map(|t| t.trunc_subsecs(6)));
                    prop_assert_eq!(state.active_exemption_for(*resource_id, now), Some(*exemption_id));
                    prop_assert!(matches!(repeated, Err(DomainError::Conflict(_))));
                }
                PolicyCommand::RevokeExemption { exemption_id } => {
                    prop_assert!(state.exemptions()[exemption_id].revoked);
                    prop_assert_eq!(repeated, Err(DomainError::NotFound { what: "exemption" }));
                }
            }
        }
        prop_assert_eq!(PolicyState::fold(&history), state, "folding the history differs");
    }
}
