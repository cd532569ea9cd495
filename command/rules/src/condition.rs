//! The compiled form of a rule's `if` block: a tree of logical nodes over leaf conditions,
//! with fields parsed, parameters substituted and constants folded.

use serde_json::Value;

use crate::expr::Expr;
use crate::field::FieldRef;
use crate::operators::Operator;

/// A logical node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    AllOf(Vec<Node>),
    AnyOf(Vec<Node>),
    Not(Box<Node>),
    Leaf(Box<Leaf>),
}

/// Which of the fields that decide applicability a leaf tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selector {
    Type,
    Name,
    Kind,
}

/// One condition: left side, operator, right side.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    /// JSON pointer of the condition object in the rule.
    pub(crate) pointer: String,
    pub(crate) lhs: Lhs,
    pub(crate) op: Operator,
    pub(crate) rhs: Operand,
    /// Set when the leaf tests `type`, `name` or `kind` of the resource itself.
    pub(crate) selector: Option<Selector>,
    /// Compare as locations (`East US 2` = `eastus2`): the field is `location`.
    pub(crate) location: bool,
    /// The field name or value expression as written, for reasons.
    pub(crate) source: Value,
}

/// The left side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lhs {
    Field(FieldRef),
    Value(Operand),
    Count(Box<Count>),
}

/// `count` over a field's array members or a value's items.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Count {
    pub(crate) source: CountSource,
    pub(crate) filter: Option<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CountSource {
    Field(FieldRef),
    Value(Operand),
}

/// A value in a condition: literal, expression, or an array with expressions inside.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Const(Value),
    Expr(Expr),
    List(Vec<Operand>),
}

impl Node {
    /// Calls `visit` on every leaf outside `count` filters.
    pub(crate) fn for_each_leaf(&self, visit: &mut impl FnMut(&Leaf)) {
        match self {
            Node::AllOf(children) | Node::AnyOf(children) => {
                children.iter().for_each(|c| c.for_each_leaf(visit));
            }
            Node::Not(child) => child.for_each_leaf(visit),
            Node::Leaf(leaf) => visit(leaf),
        }
    }
}
