//! The engine's entry points: [`Policy::compile`] once per policy revision,
//! [`CompiledPolicy::evaluate`] once per (resource, policy).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::applicability::Applicability;
use crate::compile::Compiler;
use crate::condition::Node;
use crate::effect::Effect;
use crate::error::{CompileErrors, CompileFault, FaultPart};
use crate::evaluate::Evaluator;
use crate::explain::describe;
use crate::params;
use crate::reason::{ComplianceState, Evaluation, Reason, ReasonKind};
use crate::resource::ResourceContext;

/// Which resources a policy evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every resource, resource groups and subscriptions included.
    #[default]
    All,
    /// Only resources that support tags and location: resource groups, subscriptions and
    /// records without a location (child resources such as NSG rules) are `not_applicable`.
    Indexed,
}

impl FromStr for Mode {
    type Err = String;

    /// `all` or `indexed`, case-insensitive as in Azure (`Indexed`, `All`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "all" => Ok(Mode::All),
            "indexed" => Ok(Mode::Indexed),
            _ => Err(format!("unknown mode '{text}' (use all or indexed)")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::All => "all",
            Mode::Indexed => "indexed",
        })
    }
}

/// Everything a policy revision is compiled from. Kept as raw JSON so that every fault can
/// be reported with a pointer, rather than failing at the first shape mismatch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyDefinitionInput {
    /// Azure's `policyRule`: `{"if": …, "then": {"effect": …}}`.
    pub rule: Value,
    /// Parameter definitions: `{name: {type, defaultValue?, allowedValues?, metadata?}}`.
    #[serde(default)]
    pub parameters: Value,
    /// The assignment's values, by parameter name.
    #[serde(default)]
    pub parameter_values: Map<String, Value>,
    /// `all` (default) or `indexed`, any case.
    #[serde(default)]
    pub mode: Option<String>,
}

/// Namespace for compilation.
pub struct Policy;

impl Policy {
    /// Compiles a policy revision, or reports every fault found.
    pub fn compile(input: &PolicyDefinitionInput) -> Result<CompiledPolicy, CompileErrors> {
        let mut faults = Vec::new();
        let mode = match input.mode.as_deref().map(Mode::from_str) {
            None => Mode::All,
            Some(Ok(mode)) => mode,
            Some(Err(message)) => {
                faults.push(CompileFault::new(FaultPart::Mode, "", message));
                Mode::All
            }
        };
        let params = params::resolve(&input.parameters, &input.parameter_values, &mut faults);
        let mut compiler = Compiler::new(&params);
        let (root, effect) = compile_rule(&mut compiler, &input.rule);
        faults.append(&mut compiler.faults);
        match (root, effect) {
            (Some(root), Some(effect)) if faults.is_empty() => Ok(CompiledPolicy(Arc::new(Inner {
                applicability: Applicability::analyse(&root),
                root,
                effect,
                mode,
            }))),
            _ => Err(CompileErrors { faults }),
        }
    }
}

fn compile_rule(compiler: &mut Compiler<'_>, rule: &Value) -> (Option<Node>, Option<Effect>) {
    let Value::Object(map) = rule else {
        compiler.fault("", "the policy rule must be an object with 'if' and 'then'");
        return (None, None);
    };
    let (mut condition, mut then) = (None, None);
    for (key, value) in map {
        match key.to_ascii_lowercase().as_str() {
            "if" => condition = Some((key, value)),
            "then" => then = Some((key, value)),
            _ => compiler.fault(&format!("/{key}"), format!("unknown key '{key}' in the policy rule")),
        }
    }
    let root = match condition {
        Some((key, value)) => compiler.node(value, &format!("/{key}")),
        None => {
            compiler.fault("", "the policy rule has no 'if'");
            None
        }
    };
    let effect = match then {
        Some((key, value)) => effect(compiler, value, &format!("/{key}")),
        None => {
            compiler.fault("", "the policy rule has no 'then'");
            None
        }
    };
    (root, effect)
}

fn effect(compiler: &mut Compiler<'_>, then: &Value, pointer: &str) -> Option<Effect> {
    let found = then.as_object().and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case("effect")));
    let Some((key, value)) = found else {
        compiler.fault(pointer, "'then' needs an 'effect'");
        return None;
    };
    let at = format!("{pointer}/{key}");
    let name = compiler.constant_string(value, &at, "the effect")?;
    match Effect::parse(&name) {
        Ok(effect) => Some(effect),
        Err(message) => {
            compiler.fault(&at, message);
            None
        }
    }
}

/// A compiled policy revision: immutable, `Send + Sync`, cheap to clone (one `Arc`).
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy(Arc<Inner>);

#[derive(Debug, PartialEq)]
struct Inner {
    root: Node,
    effect: Effect,
    mode: Mode,
    applicability: Applicability,
}

impl CompiledPolicy {
    pub fn effect(&self) -> Effect {
        self.0.effect
    }

    pub fn mode(&self) -> Mode {
        self.0.mode
    }

    /// Evaluates the policy against one prepared resource. Never panics: a rule that fails
    /// on this resource yields state `error` with the reason.
    pub fn evaluate(&self, ctx: &ResourceContext<'_>) -> Evaluation {
        let inner = &*self.0;
        let outcome = |state, reason| Evaluation { state, effect: inner.effect, reason };
        if inner.effect == Effect::Disabled {
            return outcome(
                ComplianceState::NotApplicable,
                Some(Reason::simple(ReasonKind::EffectDisabled, "effect disabled")),
            );
        }
        if inner.mode == Mode::Indexed && !indexed(ctx) {
            return outcome(
                ComplianceState::NotApplicable,
                Some(Reason::simple(
                    ReasonKind::ModeExcluded,
                    "mode 'indexed' does not evaluate resources without tags and location support",
                )),
            );
        }
        // Shorten the context's lifetime to this call: evaluation borrows both sides.
        let ctx: &ResourceContext<'_> = ctx;
        if !inner.applicability.applies(&inner.root, ctx) {
            return outcome(
                ComplianceState::NotApplicable,
                Some(Reason::simple(
                    ReasonKind::NotSelected,
                    "the rule's type, name and kind conditions do not select this resource",
                )),
            );
        }
        let mut evaluator = Evaluator::new(ctx);
        match evaluator.decide_root(&inner.root) {
            Ok((false, _)) => outcome(ComplianceState::Compliant, None),
            Ok((true, decided)) => {
                let reason = match decided {
                    Some(decided) => describe(decided, &mut evaluator),
                    // A tree always has a leaf; should it not, still never panic.
                    None => Reason::simple(ReasonKind::ConditionMatched, "the rule's conditions matched"),
                };
                outcome(ComplianceState::NonCompliant, Some(reason))
            }
            Err(failure) => {
                let mut reason = Reason::simple(
                    ReasonKind::EvaluationFailed,
                    format!("evaluation failed: {}", failure.message),
                );
                reason.pointer = Some(failure.pointer);
                outcome(ComplianceState::Error, Some(reason))
            }
        }
    }
}

/// Indexed mode evaluates resources that support tags and location: not resource groups or
/// subscriptions, and not records without a location (child resources).
fn indexed(ctx: &ResourceContext<'_>) -> bool {
    !ctx.is_resource_group() && !ctx.is_subscription() && !ctx.location.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn a_compiled_policy_is_send_sync_and_cheap_to_share() {
        assert_send_sync::<CompiledPolicy>();
        let compiled = Policy::compile(&PolicyDefinitionInput {
            rule: json!({"if": {"field": "name", "equals": "x"}, "then": {"effect": "audit"}}),
            ..PolicyDefinitionInput::default()
        })
        .expect("compiles");
        let shared = compiled.clone();
        assert!(Arc::ptr_eq(&compiled.0, &shared.0));
    }

    #[test]
    fn modes_parse_case_insensitively() {
        assert_eq!("Indexed".parse::<Mode>(), Ok(Mode::Indexed));
        assert_eq!("ALL".parse::<Mode>(), Ok(Mode::All));
        assert!("Microsoft.KeyVault.Data".parse::<Mode>().is_err());
    }
}
