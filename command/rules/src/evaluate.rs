//! Evaluates a compiled condition tree against one resource.
//!
//! `allOf` stops at the first false child and `anyOf` at the first true one, so a failing
//! branch that is never reached does not turn the result into `error` (as in Azure).

use serde_json::Value;

use crate::condition::{Count, CountSource, Leaf, Lhs, Node, Operand};
use crate::explain;
use crate::expr::eval::{Env, eval};
use crate::field::{Selection, select};
use crate::operators::Operator;
use crate::resource::ResourceContext;
use crate::value::{Val, View};

/// The leaf that decided an outcome, and whether it held negated (it was false, so its
/// negation held).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decided<'a> {
    pub(crate) leaf: &'a Leaf,
    pub(crate) negated: bool,
}

/// An evaluation error: the condition where it happened and what went wrong.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) pointer: String,
    pub(crate) message: String,
}

/// Evaluation state: the resource and the members the enclosing counts are visiting.
pub(crate) struct Evaluator<'a> {
    ctx: &'a ResourceContext<'a>,
    members: Vec<Val<'a>>,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(ctx: &'a ResourceContext<'a>) -> Self {
        Self { ctx, members: Vec::new() }
    }

    pub(crate) fn node(&mut self, node: &'a Node) -> Result<bool, Failure> {
        self.decide::<false>(node).map(|(held, _)| held)
    }

    /// Evaluates the rule and tracks the leaf that decided the outcome, in the same pass
    /// (a non-compliant result then needs no second evaluation to explain itself).
    pub(crate) fn decide_root(&mut self, node: &'a Node) -> Result<(bool, Option<Decided<'a>>), Failure> {
        self.decide::<true>(node)
    }

    fn decide<const TRACK: bool>(&mut self, node: &'a Node) -> Result<(bool, Option<Decided<'a>>), Failure> {
        match node {
            Node::Leaf(leaf) => {
                let held = self.leaf(leaf)?;
                Ok((held, TRACK.then_some(Decided { leaf, negated: !held })))
            }
            Node::Not(child) => self.decide::<TRACK>(child).map(|(held, decided)| (!held, decided)),
            Node::AllOf(children) | Node::AnyOf(children) => {
                let all = matches!(node, Node::AllOf(_));
                // allOf stops at its first false child, anyOf at its first true one: that
                // child decided. Otherwise every child agreed: the best-ranked one is named.
                let mut best: Option<(u8, Decided<'a>)> = None;
                for child in children {
                    let (held, decided) = self.decide::<TRACK>(child)?;
                    if held != all {
                        return Ok((held, decided));
                    }
                    if TRACK {
                        let rank = explain::rank(child);
                        if best.is_none_or(|(top, _)| rank > top) {
                            best = decided.map(|d| (rank, d));
                        }
                    }
                }
                Ok((all, best.map(|(_, decided)| decided)))
            }
        }
    }

    pub(crate) fn leaf(&mut self, leaf: &'a Leaf) -> Result<bool, Failure> {
        self.leaf_with(leaf, false).map(|(held, _)| held)
    }

    /// Evaluates a leaf and also returns the resource-side value it tested (for reasons).
    pub(crate) fn leaf_explained(&mut self, leaf: &'a Leaf) -> Result<(bool, Value), Failure> {
        self.leaf_with(leaf, true).map(|(held, actual)| (held, actual.unwrap_or(Value::Null)))
    }

    fn leaf_with(&mut self, leaf: &'a Leaf, keep: bool) -> Result<(bool, Option<Value>), Failure> {
        let fail = |message: String| Failure { pointer: leaf.pointer.clone(), message };
        let expected = self.operand(&leaf.rhs).map_err(fail)?;
        let check = |actual: View<'_>| test(leaf, actual, expected.view()).map_err(fail);
        match &leaf.lhs {
            Lhs::Field(field) => match select(field, self.ctx, &self.members) {
                Selection::One(actual) => Ok((check(actual.view())?, keep.then(|| actual.to_json()))),
                // `[*]`: every member must pass; an empty collection passes (nothing fails).
                Selection::Many(values) => {
                    let mut held = true;
                    for value in &values {
                        if !check(value.view())? {
                            held = false;
                            break;
                        }
                    }
                    let actual = keep.then(|| Value::Array(values.into_iter().map(Val::into_json).collect()));
                    Ok((held, actual))
                }
            },
            Lhs::Value(operand) => {
                let actual = self.operand(operand).map_err(fail)?;
                let held = check(value_view(&actual, leaf.op))?;
                Ok((held, keep.then(|| actual.into_json())))
            }
            Lhs::Count(count) => {
                let n = self.count(count).map_err(|f| match f.pointer.is_empty() {
                    true => fail(f.message),
                    false => f,
                })?;
                Ok((check(View::Num(n as f64))?, keep.then(|| Value::from(n))))
            }
        }
    }

    pub(crate) fn expected(&self, leaf: &'a Leaf) -> Value {
        self.operand(&leaf.rhs).map_or(Value::Null, Val::into_json)
    }

    fn count(&mut self, count: &'a Count) -> Result<usize, Failure> {
        let members: Vec<Val<'a>> = match &count.source {
            CountSource::Field(field) => match select(field, self.ctx, &self.members) {
                Selection::Many(values) => values,
                Selection::One(_) => Vec::new(),
            },
            CountSource::Value(operand) => {
                let items =
                    self.operand(operand).map_err(|message| Failure { pointer: String::new(), message })?;
                match items {
                    Val::Ref(Value::Array(a)) => a.iter().map(Val::Ref).collect(),
                    Val::Owned(Value::Array(a)) => a.into_iter().map(Val::Owned).collect(),
                    other if other.is_absent() => Vec::new(),
                    other => {
                        return Err(Failure {
                            pointer: String::new(),
                            message: format!(
                                "count.value must be an array but is a {}",
                                other.view().type_name()
                            ),
                        });
                    }
                }
            }
        };
        let Some(filter) = &count.filter else {
            return Ok(members.len());
        };
        let mut n = 0;
        for member in members {
            self.members.push(member);
            let passed = self.node(filter);
            self.members.pop();
            if passed? {
                n += 1;
            }
        }
        Ok(n)
    }

    fn operand(&self, operand: &'a Operand) -> Result<Val<'a>, String> {
        match operand {
            Operand::Const(value) => Ok(Val::Ref(value)),
            Operand::Expr(expr) => eval(expr, &Env { ctx: Some(self.ctx), members: &self.members }),
            Operand::List(items) => items
                .iter()
                .map(|item| self.operand(item).map(Val::into_json))
                .collect::<Result<Vec<_>, _>>()
                .map(|values| Val::Owned(Value::Array(values))),
        }
    }
}

/// A `value` condition's left side never "does not exist" the way a field does: a null or
/// missing property read by an expression compares as `""` (so `notEquals ""` is false),
/// except for `exists`, which reports it absent.
fn value_view<'v>(actual: &'v Val<'_>, op: Operator) -> View<'v> {
    match actual.view() {
        View::Absent if op != Operator::Exists => View::Str(""),
        view => view,
    }
}

fn test(leaf: &Leaf, actual: View<'_>, expected: View<'_>) -> Result<bool, String> {
    if leaf.op == Operator::Exists {
        let wanted = matches!(expected, View::Bool(true));
        return Ok(Operator::Exists.test(actual, expected, false)? == wanted);
    }
    leaf.op.test(actual, expected, leaf.location)
}
