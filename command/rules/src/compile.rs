//! Compiles the `if` block: logical operators here, leaf conditions in
//! [`crate::compile_leaf`]. Every fault is recorded with its JSON pointer and compilation
//! carries on, so one pass reports all of them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::condition::{Node, Operand};
use crate::error::{CompileFault, FaultPart, pointer_join};
use crate::expr::{self, ExprScope, parse::is_expression};
use crate::scope::Frame;

/// Deepest logical nesting accepted (keeps evaluation's recursion bounded).
const MAX_DEPTH: usize = 100;

/// Compilation state for one rule.
pub(crate) struct Compiler<'p> {
    pub(crate) params: &'p BTreeMap<String, Value>,
    /// The counts enclosing the condition being compiled.
    pub(crate) frames: Vec<Frame>,
    pub(crate) faults: Vec<CompileFault>,
    depth: usize,
}

impl<'p> Compiler<'p> {
    pub(crate) fn new(params: &'p BTreeMap<String, Value>) -> Self {
        Self { params, frames: Vec::new(), faults: Vec::new(), depth: 0 }
    }

    pub(crate) fn fault(&mut self, pointer: &str, message: impl Into<String>) {
        self.faults.push(CompileFault::new(FaultPart::Rule, pointer, message));
    }

    /// Compiles a condition or logical operator found at `pointer`.
    pub(crate) fn node(&mut self, value: &Value, pointer: &str) -> Option<Node> {
        if self.depth >= MAX_DEPTH {
            self.fault(pointer, format!("conditions nested deeper than {MAX_DEPTH} levels"));
            return None;
        }
        self.depth += 1;
        let node = self.node_at_depth(value, pointer);
        self.depth -= 1;
        node
    }

    fn node_at_depth(&mut self, value: &Value, pointer: &str) -> Option<Node> {
        let Value::Object(map) = value else {
            self.fault(pointer, "a condition must be an object");
            return None;
        };
        let logical =
            map.iter().find(|(k, _)| ["allOf", "anyOf", "not"].iter().any(|l| l.eq_ignore_ascii_case(k)));
        let Some((key, inner)) = logical else {
            return self.leaf(map, pointer).map(|leaf| Node::Leaf(Box::new(leaf)));
        };
        if map.len() > 1 {
            self.fault(pointer, format!("'{key}' must be the only key of its object"));
            return None;
        }
        let at = pointer_join(pointer, key);
        if key.eq_ignore_ascii_case("not") {
            return self.node(inner, &at).map(|n| Node::Not(Box::new(n)));
        }
        let children = match inner {
            Value::Array(items) if !items.is_empty() => items,
            _ => {
                self.fault(&at, format!("'{key}' needs a non-empty array of conditions"));
                return None;
            }
        };
        let compiled: Vec<Option<Node>> = children
            .iter()
            .enumerate()
            .map(|(i, child)| self.node(child, &pointer_join(&at, &i.to_string())))
            .collect();
        let compiled: Option<Vec<Node>> = compiled.into_iter().collect();
        let compiled = compiled?;
        Some(if key.eq_ignore_ascii_case("allOf") { Node::AllOf(compiled) } else { Node::AnyOf(compiled) })
    }

    /// Compiles a literal or expression value; arrays may hold expressions.
    pub(crate) fn operand(&mut self, value: &Value, pointer: &str) -> Option<Operand> {
        match value {
            Value::String(text) if is_expression(text) => {
                let scope = ExprScope { params: self.params, frames: &self.frames };
                match expr::compile(text, &scope) {
                    Ok(expr::Expr::Const(v)) => Some(Operand::Const(v)),
                    Ok(e) => Some(Operand::Expr(e)),
                    Err(message) => {
                        self.fault(pointer, message);
                        None
                    }
                }
            }
            // `[[` escapes a literal string that starts with `[`.
            Value::String(text) if text.starts_with("[[") => {
                Some(Operand::Const(Value::String(text.get(1..).unwrap_or_default().to_owned())))
            }
            Value::Array(items) => {
                let compiled: Vec<Option<Operand>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.operand(item, &pointer_join(pointer, &i.to_string())))
                    .collect();
                let compiled: Vec<Operand> = compiled.into_iter().collect::<Option<_>>()?;
                if compiled.iter().all(|o| matches!(o, Operand::Const(_))) {
                    let values = compiled
                        .into_iter()
                        .filter_map(|o| match o {
                            Operand::Const(v) => Some(v),
                            _ => None,
                        })
                        .collect();
                    Some(Operand::Const(Value::Array(values)))
                } else {
                    Some(Operand::List(compiled))
                }
            }
            other => Some(Operand::Const(other.clone())),
        }
    }

    /// A value that must be known at compile time (a field name, the effect).
    pub(crate) fn constant_string(&mut self, value: &Value, pointer: &str, what: &str) -> Option<String> {
        match self.operand(value, pointer)? {
            Operand::Const(Value::String(s)) => Some(s),
            Operand::Const(_) => {
                self.fault(pointer, format!("{what} must be a string"));
                None
            }
            _ => {
                self.fault(pointer, format!("{what} may only use parameters and constant functions"));
                None
            }
        }
    }
}
