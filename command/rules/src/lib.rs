//! # cortex-rules: the Azure Policy rule engine
//!
//! PolicyCortex evaluates governance rules written as Azure Policy definitions, unchanged and
//! with Azure's semantics (DESIGN §3). This crate is that engine: a pure library with no I/O
//! dependency, kept in its own crate under `command/` so its purity is enforced by
//! construction; `cortex-command` re-exports it for the command API (which refuses rules that
//! do not compile, 422) and the compliance evaluator.
//!
//! ## How data flows
//!
//! ```text
//! PolicyDefinitionInput ──Policy::compile──▶ CompiledPolicy (Arc, Send + Sync)
//!   rule, parameters,        │ or CompileErrors: every fault, each with a JSON pointer
//!   parameter values, mode   ▼
//! Resource ──ResourceContext::new──▶ ResourceContext ──CompiledPolicy::evaluate──▶ Evaluation
//!   + resource group, subscription      (built once per resource)   {state, effect, reason}
//! ```
//!
//! Compile once per policy revision; build one [`ResourceContext`] per resource and evaluate
//! every policy against it. Evaluation borrows from both and allocates only for reasons,
//! `[*]` collections and computed template-function values.
//!
//! ## Parts
//!
//! * [`policy`]: entry points, [`Mode`], the evaluation sequence (disabled effect → mode →
//!   applicability → conditions → reason).
//! * `params`: parameter definitions checked against the assignment's values.
//! * `compile`, `compile_leaf`: the `if` block into a `condition` tree, all faults collected.
//! * `field`, `aliases`, `scope`: field names, property aliases, `count` scoping.
//! * `expr`: template-function expressions, folded to constants where they can be.
//! * `operators`, `pattern`, `value`: Azure's comparison rules.
//! * `evaluate`, `applicability`, `explain`: evaluation, `not_applicable`, reasons.
//! * [`reason`], [`effect`], [`resource`], [`error`]: the public data types.
//! * [`check`]: the pure part of `cortex policy check`.
//!
//! ## Decisions where Azure or DESIGN leave room
//!
//! * `effect: disabled` → `not_applicable` with reason kind `effect_disabled`; `modify` and
//!   `append` report as `audit`; `auditIfNotExists`, `deployIfNotExists`, `denyAction` are
//!   refused at compile time (they need related resources).
//! * `indexed` mode: resource groups, subscriptions and records without a location are
//!   `not_applicable`.
//! * A `[*]` field condition over an empty or missing array is true (every member, of none,
//!   passes); a member lacking the property counts as missing for that member.
//! * JSON `null` reads as missing for field conditions. In `value` conditions a missing
//!   property read by an expression compares as `""` (so the built-in "inherit a tag"
//!   rule does not fire when the group lacks the tag); `exists` still reports it absent.
//! * `requestContext().apiVersion` is a recent version: scans of existing resources use the
//!   latest API, so legacy-version branches never match.
//! * `like` accepts more than one `*` (glob). `utcNow()` and other non-deterministic or
//!   deployment-only functions are refused.
//! * Parameter values and `allowedValues` compare case-insensitively, like the engine.
//! * Applicability follows Azure's published logic and special cases (see `applicability`):
//!   a rule made only of `type` conditions leaves resources of other types
//!   `not_applicable`, so e.g. "Allowed resource types" has no compliant resources.
//! * The resource-group type: records may be registered with ARM's
//!   `Microsoft.Resources/resourceGroups`; rules see `Microsoft.Resources/subscriptions/resourceGroups`,
//!   and a rule naming either spelling in a `type` condition matches groups.
//! * A `count.field` enumerates the members of the array its alias names, even when the alias
//!   maps inside the member (`securityRules[*]` → `securityRules[*].properties`).
//! * Reasons name one condition: the first child that decided an `allOf`/`anyOf`, or, when all
//!   children agreed, the first nested block or count (built-ins put selectors and exclusions
//!   first), with negations applied to the reported operator (`not {in}` reads `notIn`).
//! * A constant sub-expression that fails (`int('x')`) is not a compile fault: as in Azure it
//!   fails at evaluation, and only if reached (`if`, `and`, `or` are lazy).
//! * Template functions keep ARM's case rules (`contains`, `equals` case-sensitive); missing
//!   values read as `""` in string functions rather than failing.

pub mod check;
pub mod effect;
pub mod error;
pub mod policy;
pub mod reason;
pub mod resource;

mod aliases;
mod applicability;
mod compile;
mod compile_leaf;
mod condition;
mod evaluate;
mod explain;
mod expr;
mod field;
mod operators;
mod params;
mod pattern;
mod scope;
mod value;

pub use check::{CheckError, CheckOutcome, check};
pub use effect::Effect;
pub use error::{CompileErrors, CompileFault, FaultPart};
pub use policy::{CompiledPolicy, Mode, Policy, PolicyDefinitionInput};
pub use reason::{ComplianceState, Evaluation, Reason, ReasonKind};
pub use resource::{Resource, ResourceContext, ResourceGroupInfo, SubscriptionInfo};
