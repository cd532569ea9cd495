//! The pure part of the evaluator: one policy's result for one resource, scopes, exemptions,
//! and whether a result is news.

use chrono::{DateTime, Utc};
use cortex_events::catalog::{ComplianceState, PolicyResult, PolicyScope};
use cortex_rules::{CompiledPolicy, ComplianceState as RuleState, ResourceContext};
use serde_json::{Map, Value, json};

use super::rows::{Decision, ExemptionRow, PolicyRow, ResourceRow};

/// Whether `resource` lies in `scope`: both lists empty means the whole tenant; otherwise
/// the resource's subscription is listed, or its group is (`{subscription}/{group}`, or a
/// bare group name in any subscription). Compared case-insensitively, as Azure ids are.
pub fn in_scope(scope: &PolicyScope, resource: &ResourceRow) -> bool {
    if scope.subscriptions.is_empty() && scope.resource_groups.is_empty() {
        return true;
    }
    scope.subscriptions.iter().any(|s| s.eq_ignore_ascii_case(&resource.subscription_id))
        || scope.resource_groups.iter().any(|g| match g.split_once('/') {
            Some((sub, group)) => {
                sub.eq_ignore_ascii_case(&resource.subscription_id)
                    && group.eq_ignore_ascii_case(&resource.resource_group)
            }
            None => g.eq_ignore_ascii_case(&resource.resource_group),
        })
}

/// Longest reason kept (characters): results stay small enough that a resource's first
/// evaluation against every policy of its tenant fits the store's event size limit.
pub const MAX_REASON_CHARS: usize = 1024;
/// Largest `details` kept whole (bytes of JSON); past it the compared values are left out.
pub const MAX_DETAILS_BYTES: usize = 4096;

fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A policy revision compiled once, or why it does not compile (a stored rule an older
/// engine accepted: its pairs record `error`, the evaluator goes on).
pub type Compiled = Result<CompiledPolicy, String>;

/// The result of `policy` for `resource` at `now`.
pub fn judge(
    policy: &PolicyRow,
    compiled: &Compiled,
    ctx: &ResourceContext<'_>,
    resource: &ResourceRow,
    exemption: Option<&ExemptionRow>,
    now: DateTime<Utc>,
) -> PolicyResult {
    let policy_revision = Some(policy.rule_revision);
    if !in_scope(&policy.scope, resource) {
        return PolicyResult {
            policy_id: policy.policy_id,
            state: ComplianceState::NotApplicable,
            reason: Some("the resource is outside the policy's scope".into()),
            details: None,
            policy_revision,
        };
    }
    let (state, reason, details) = match compiled {
        Err(message) => (ComplianceState::Error, Some(format!("the rule does not compile: {message}")), None),
        Ok(compiled) => {
            let evaluation = compiled.evaluate(ctx);
            let state = match evaluation.state {
                RuleState::Compliant => ComplianceState::Compliant,
                RuleState::NonCompliant => ComplianceState::NonCompliant,
                RuleState::NotApplicable => ComplianceState::NotApplicable,
                RuleState::Error => ComplianceState::Error,
            };
            let reason = evaluation.reason.as_ref().map(|r| bounded(&r.message, MAX_REASON_CHARS));
            let details = evaluation.reason.as_ref().and_then(|r| match serde_json::to_value(r) {
                Ok(Value::Object(mut map)) => {
                    map.remove("message");
                    map.insert("effect".into(), Value::String(evaluation.effect.as_str().into()));
                    // The resource's value can be a whole property tree: past a size, the
                    // condition is named without the values it compared.
                    if serde_json::to_string(&map).map_or(0, |t| t.len()) > MAX_DETAILS_BYTES {
                        for key in ["actual", "expected", "value", "count"] {
                            map.remove(key);
                        }
                        map.insert("values_omitted".into(), Value::Bool(true));
                    }
                    Some(map)
                }
                _ => None,
            });
            (state, reason, details)
        }
    };
    match exemption.filter(|e| e.applies_at(now)) {
        Some(e) if state != ComplianceState::NotApplicable => {
            let mut details = Map::new();
            details.insert("exemption_id".into(), json!(e.exemption_id));
            if let Some(at) = e.expires_at {
                details.insert("expires_at".into(), json!(at));
            }
            details.insert("would_be".into(), json!(state.as_str()));
            PolicyResult {
                policy_id: policy.policy_id,
                state: ComplianceState::Exempt,
                reason: Some(format!("exempted: {}", e.reason)),
                details: Some(details),
                policy_revision,
            }
        }
        _ => PolicyResult { policy_id: policy.policy_id, state, reason, details, policy_revision },
    }
}

/// Whether `result` must be recorded given the last one: on the first evaluation (unless the
/// pair was never in scope: a resource outside a policy's scope has no result for it), and
/// whenever the state, the reason or the policy revision changes.
pub fn is_news(result: &PolicyResult, last: Option<&Decision>, in_scope: bool) -> bool {
    match last {
        None => in_scope,
        Some(last) => {
            last.state != result.state
                || last.reason != result.reason
                || last.policy_revision != result.policy_revision
        }
    }
}

impl From<&PolicyResult> for Decision {
    fn from(r: &PolicyResult) -> Self {
        Decision { state: r.state, reason: r.reason.clone(), policy_revision: r.policy_revision }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cortex_events::catalog::PolicyMode;
    use cortex_rules::{Policy, PolicyDefinitionInput};
    use uuid::Uuid;

    fn resource(sub: &str, group: &str, location: &str) -> ResourceRow {
        ResourceRow {
            tenant_id: Uuid::nil(),
            resource_id: Uuid::from_u128(1),
            revision: 3,
            cloud_id: format!(
                "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/st1"
            ),
            name: "st1".into(),
            resource_type: "Microsoft.Storage/storageAccounts".into(),
            location: location.into(),
            kind: None,
            tags: Default::default(),
            properties: Map::new(),
            subscription_id: sub.into(),
            resource_group: group.into(),
            deleted: false,
        }
    }

    fn policy(scope: PolicyScope) -> (PolicyRow, Compiled) {
        let rule = json!({"if": {"field": "location", "notIn": ["westeurope"]}, "then": {"effect": "audit"}});
        let row = PolicyRow {
            tenant_id: Uuid::nil(),
            policy_id: Uuid::from_u128(7),
            rule_revision: 4,
            mode: PolicyMode::All,
            rule: rule.clone(),
            parameters: Map::new(),
            parameter_values: Map::new(),
            scope,
            enabled: true,
            deleted: false,
        };
        let compiled =
            Policy::compile(&PolicyDefinitionInput { rule, ..Default::default() }).map_err(|e| e.to_string());
        (row, compiled)
    }

    fn run(
        p: &(PolicyRow, Compiled),
        r: &ResourceRow,
        e: Option<&ExemptionRow>,
        now: DateTime<Utc>,
    ) -> PolicyResult {
        let record = r.to_rules();
        let ctx = ResourceContext::new(&record, None, None);
        judge(&p.0, &p.1, &ctx, r, e, now)
    }

    #[test]
    fn scopes_match_subscriptions_and_groups_case_insensitively() {
        let r = resource("Sub-A", "RG-1", "westeurope");
        assert!(in_scope(&PolicyScope::default(), &r));
        assert!(in_scope(&PolicyScope { subscriptions: vec!["sub-a".into()], resource_groups: vec![] }, &r));
        assert!(in_scope(&PolicyScope { subscriptions: vec![], resource_groups: vec!["rg-1".into()] }, &r));
        assert!(in_scope(
            &PolicyScope { subscriptions: vec![], resource_groups: vec!["SUB-A/rg-1".into()] },
            &r
        ));
        assert!(!in_scope(
            &PolicyScope { subscriptions: vec![], resource_groups: vec!["sub-b/rg-1".into()] },
            &r
        ));
        assert!(!in_scope(
            &PolicyScope { subscriptions: vec!["sub-b".into()], resource_groups: vec!["rg-2".into()] },
            &r
        ));
    }

    #[test]
    fn results_carry_the_rule_revision_and_the_engine_reason() {
        let p = policy(PolicyScope::default());
        let now = Utc::now();
        let ok = run(&p, &resource("s", "g", "westeurope"), None, now);
        assert_eq!(
            (ok.state, ok.policy_revision, ok.reason.clone()),
            (ComplianceState::Compliant, Some(4), None)
        );
        let bad = run(&p, &resource("s", "g", "eastus"), None, now);
        assert_eq!(bad.state, ComplianceState::NonCompliant);
        assert!(bad.reason.is_some_and(|r| !r.is_empty()));
        assert_eq!(bad.details.and_then(|d| d.get("effect").cloned()), Some(json!("audit")));
        let out = run(
            &policy(PolicyScope { subscriptions: vec!["other".into()], resource_groups: vec![] }),
            &resource("s", "g", "eastus"),
            None,
            now,
        );
        assert_eq!(out.state, ComplianceState::NotApplicable);
    }

    #[test]
    fn an_exemption_applies_until_it_expires_and_never_to_a_pair_out_of_scope() {
        let p = policy(PolicyScope::default());
        let now = Utc::now();
        let mut e = ExemptionRow {
            tenant_id: Uuid::nil(),
            exemption_id: Uuid::from_u128(9),
            policy_id: p.0.policy_id,
            resource_id: Uuid::from_u128(1),
            reason: "waiver W-1".into(),
            expires_at: Some(now + chrono::Duration::seconds(10)),
            expired: false,
        };
        let r = resource("s", "g", "eastus");
        let exempt = run(&p, &r, Some(&e), now);
        assert_eq!(exempt.state, ComplianceState::Exempt);
        assert_eq!(exempt.reason.as_deref(), Some("exempted: waiver W-1"));
        assert_eq!(
            run(&p, &r, Some(&e), now + chrono::Duration::seconds(10)).state,
            ComplianceState::NonCompliant
        );
        e.expired = true;
        assert_eq!(run(&p, &r, Some(&e), now).state, ComplianceState::NonCompliant);
        e.expired = false;
        let scoped = policy(PolicyScope { subscriptions: vec!["other".into()], resource_groups: vec![] });
        assert_eq!(run(&scoped, &r, Some(&e), now).state, ComplianceState::NotApplicable);
    }

    #[test]
    fn large_reasons_and_details_are_bounded() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc…");
        let rule = json!({"if": {"field": "Microsoft.Storage/storageAccounts/networkAcls", "exists": "true"},
                          "then": {"effect": "audit"}});
        let (mut row, _) = policy(PolicyScope::default());
        row.rule = rule.clone();
        let compiled =
            Policy::compile(&PolicyDefinitionInput { rule, ..Default::default() }).map_err(|e| e.to_string());
        let mut r = resource("s", "g", "eastus");
        r.properties.insert("networkAcls".into(), json!({"ipRules": vec!["10.0.0.0/8"; 2000]}));
        let result = run(&(row, compiled), &r, None, Utc::now());
        assert_eq!(result.state, ComplianceState::NonCompliant);
        let details = result.details.unwrap_or_default();
        assert_eq!(details.get("values_omitted"), Some(&json!(true)));
        assert!(details.get("actual").is_none());
        assert!(serde_json::to_string(&details).unwrap_or_default().len() <= MAX_DETAILS_BYTES);
        assert!(result.reason.is_some_and(|r| r.chars().count() <= MAX_REASON_CHARS + 1));
    }

    #[test]
    fn news_is_a_first_result_in_scope_or_any_change() {
        let p = policy(PolicyScope::default());
        let r = run(&p, &resource("s", "g", "eastus"), None, Utc::now());
        assert!(is_news(&r, None, true));
        assert!(!is_news(&r, None, false));
        let same = Decision::from(&r);
        assert!(!is_news(&r, Some(&same), true));
        assert!(is_news(&r, Some(&Decision { policy_revision: Some(3), ..same.clone() }), true));
        assert!(is_news(&r, Some(&Decision { reason: None, ..same.clone() }), true));
        assert!(is_news(&r, Some(&Decision { state: ComplianceState::Compliant, ..same }), true));
    }
}
