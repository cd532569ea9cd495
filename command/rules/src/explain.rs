//! Finds the condition that decided a non-compliant result and describes it, as Azure's
//! "reason for non-compliance" does: the field (or value, or count), the operator that held,
//! the resource's actual value and the value it was compared with.
//!
//! The deciding leaf is tracked during evaluation (`Evaluator::decide_root`); describing it
//! re-evaluates only that leaf, and only for non-compliant results.

use serde_json::Value;

use crate::condition::{Lhs, Node};
use crate::evaluate::{Decided, Evaluator};
use crate::operators::Operator;
use crate::reason::{Reason, ReasonKind};
use crate::value::display;

/// When every child of an `allOf`/`anyOf` agreed, the one a reason names: built-in rules put
/// selectors (`type`, `name`, `kind`) and exclusions first as plain conditions, and the check
/// itself in a nested block or a count. 2: such a block or count; 1: another condition that
/// is not a mere selector; 0: a selector. The first child of the highest rank is named.
pub(crate) fn rank(node: &Node) -> u8 {
    let plain_leaf = matches!(node, Node::Leaf(leaf) if !matches!(leaf.lhs, Lhs::Count(_)));
    match (substantive(node), plain_leaf) {
        (true, false) => 2,
        (true, true) => 1,
        (false, _) => 0,
    }
}

/// Whether a subtree tests anything beyond the resource's type, name or kind.
fn substantive(node: &Node) -> bool {
    let mut found = false;
    node.for_each_leaf(&mut |leaf| found |= leaf.selector.is_none());
    found
}

/// Describes the deciding leaf of a rule that matched.
pub(crate) fn describe<'a>(decided: Decided<'a>, ev: &mut Evaluator<'a>) -> Reason {
    let Decided { leaf, negated } = decided;
    // Deciding leaves are never inside a count's `where`, so this re-evaluates at the top.
    let actual = ev.leaf_explained(leaf).map_or(Value::Null, |(_, actual)| actual);
    let mut expected = ev.expected(leaf);
    let operator = if leaf.op == Operator::Exists {
        if negated {
            expected = Value::Bool(!expected.as_bool().unwrap_or(true));
        }
        Operator::Exists
    } else if negated {
        leaf.op.negation()
    } else {
        leaf.op
    };
    let subject = match &leaf.lhs {
        Lhs::Field(_) => format!("field '{}'", text(&leaf.source)),
        Lhs::Value(_) => format!("value '{}'", text(&leaf.source)),
        Lhs::Count(_) => format!("the count of '{}'", text(&leaf.source)),
    };
    let message = if operator == Operator::Exists {
        if expected.as_bool() == Some(true) {
            format!("{subject} exists; to comply it must not exist")
        } else {
            format!("{subject} does not exist; to comply it must exist")
        }
    } else {
        let verb = if actual.is_array() && matches!(leaf.lhs, Lhs::Field(_)) { "values are" } else { "is" };
        format!(
            "{subject} {verb} {}; to comply it must {} {}",
            display(&actual),
            operator.negation().phrase(),
            display(&expected)
        )
    };
    let mut reason = Reason::simple(ReasonKind::ConditionMatched, message);
    reason.pointer = Some(leaf.pointer.clone());
    match &leaf.lhs {
        Lhs::Field(_) => reason.field = Some(text(&leaf.source)),
        Lhs::Value(_) => reason.value = Some(leaf.source.clone()),
        Lhs::Count(_) => reason.count = Some(leaf.source.clone()),
    }
    reason.operator = Some(operator.name().to_owned());
    reason.actual = Some(actual);
    reason.expected = Some(expected);
    reason
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}
