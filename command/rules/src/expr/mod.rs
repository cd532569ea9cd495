//! Template-function expressions (`[parameters('x')]`, `[concat(…)]`, `[field('…')]`, …):
//! parsed and resolved at compile time, with everything that does not depend on the resource
//! folded into a constant, so evaluation only runs what it must.
//!
//! * [`parse`]: text → syntax tree.
//! * this module: syntax tree → [`Expr`] (functions resolved, parameters substituted, folded).
//! * [`functions`]: the template functions (longer ones in `builtins`).
//! * [`eval`]: evaluation against a resource.

mod builtins;
pub(crate) mod eval;
pub(crate) mod functions;
pub(crate) mod parse;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::field::FieldRef;
use crate::scope::{self, Frame};
use functions::Func;
use parse::RawExpr;

/// `requestContext().apiVersion` during a compliance scan: Azure uses the latest API version
/// for existing resources, so legacy-version branches of built-in rules never apply.
pub(crate) const SCAN_API_VERSION: &str = "2024-01-01";

/// A resolved expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(Value),
    Call(Func, Vec<Expr>),
    Property(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    /// `field('…')`: the value, `""` when missing, an array for `[*]` paths.
    Field(FieldRef),
    /// `current(…)`: the member a count is visiting (or a property of it).
    Current(FieldRef),
    ResourceGroup,
    Subscription,
}

impl Expr {
    pub(crate) fn as_const(&self) -> Option<&Value> {
        match self {
            Expr::Const(v) => Some(v),
            _ => None,
        }
    }
}

/// What an expression may refer to while it is compiled.
pub(crate) struct ExprScope<'s> {
    /// Resolved parameter values, by name.
    pub(crate) params: &'s BTreeMap<String, Value>,
    /// The counts enclosing the expression.
    pub(crate) frames: &'s [Frame],
}

/// Parses and resolves an expression string (`[…]`).
pub(crate) fn compile(text: &str, scope: &ExprScope<'_>) -> Result<Expr, String> {
    let raw = parse::parse(text)?;
    resolve(&raw, scope)
}

fn resolve(raw: &RawExpr, scope: &ExprScope<'_>) -> Result<Expr, String> {
    Ok(match raw {
        RawExpr::Str(s) => Expr::Const(Value::String(s.clone())),
        RawExpr::Int(i) => Expr::Const(json!(i)),
        RawExpr::Float(f) => Expr::Const(json!(f)),
        RawExpr::Bool(b) => Expr::Const(Value::Bool(*b)),
        RawExpr::Null => Expr::Const(Value::Null),
        RawExpr::Property(target, name) => {
            fold(Expr::Property(Box::new(resolve(target, scope)?), name.clone()))?
        }
        RawExpr::Index(target, index) => {
            fold(Expr::Index(Box::new(resolve(target, scope)?), Box::new(resolve(index, scope)?)))?
        }
        RawExpr::Call(name, args) => call(name, args, scope)?,
    })
}

fn call(name: &str, args: &[RawExpr], scope: &ExprScope<'_>) -> Result<Expr, String> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "parameters" => {
            let param = const_string_arg(name, args, scope)?;
            return scope
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&param))
                .map(|(_, v)| Expr::Const(v.clone()))
                .ok_or_else(|| format!("parameter '{param}' is not defined"));
        }
        "field" => {
            let text = const_string_arg(name, args, scope)?;
            return Ok(Expr::Field(scope::resolve_field(&text, scope.frames)?));
        }
        "current" => {
            let arg = match args.len() {
                0 => None,
                _ => Some(const_string_arg(name, args, scope)?),
            };
            return Ok(Expr::Current(scope::resolve_current(arg.as_deref(), scope.frames)?));
        }
        "resourcegroup" => return no_args(name, args).map(|()| Expr::ResourceGroup),
        "subscription" => return no_args(name, args).map(|()| Expr::Subscription),
        "requestcontext" => {
            return no_args(name, args).map(|()| Expr::Const(json!({ "apiVersion": SCAN_API_VERSION })));
        }
        _ => {}
    }
    let func = Func::from_name(&lower).ok_or_else(|| format!("unsupported function '{name}'"))?;
    let (min, max) = func.arity();
    if args.len() < min || max.is_some_and(|m| args.len() > m) {
        return Err(match max {
            Some(m) if m == min => format!("{name}() takes {min} argument(s), got {}", args.len()),
            Some(m) => format!("{name}() takes {min} to {m} arguments, got {}", args.len()),
            None => format!("{name}() takes at least {min} argument(s), got {}", args.len()),
        });
    }
    let args = args.iter().map(|a| resolve(a, scope)).collect::<Result<Vec<_>, _>>()?;
    fold(Expr::Call(func, args))
}

fn no_args(name: &str, args: &[RawExpr]) -> Result<(), String> {
    if args.is_empty() { Ok(()) } else { Err(format!("{name}() takes no arguments")) }
}

/// The single constant string argument of `parameters`, `field` and `current`.
fn const_string_arg(name: &str, args: &[RawExpr], scope: &ExprScope<'_>) -> Result<String, String> {
    let [arg] = args else {
        return Err(format!("{name}() takes 1 argument, got {}", args.len()));
    };
    match resolve(arg, scope)? {
        Expr::Const(Value::String(s)) => Ok(s),
        _ => Err(format!("the argument of {name}() must be a constant string")),
    }
}

/// Evaluates now whatever does not depend on the resource.
fn fold(expr: Expr) -> Result<Expr, String> {
    let foldable = match &expr {
        Expr::Call(Func::If, args) => match args.first() {
            // A constant condition picks its branch; the other is never evaluated.
            Some(Expr::Const(cond)) => {
                let pick = if eval::truthy(cond)? { 1 } else { 2 };
                return Ok(args.get(pick).cloned().unwrap_or(Expr::Const(Value::Null)));
            }
            _ => false,
        },
        Expr::Call(_, args) => args.iter().all(|a| a.as_const().is_some()),
        Expr::Property(target, _) => target.as_const().is_some(),
        Expr::Index(target, index) => target.as_const().is_some() && index.as_const().is_some(),
        _ => false,
    };
    if !foldable {
        return Ok(expr);
    }
    // A constant expression that fails is left to fail at evaluation, and only if reached:
    // Azure turns template failures into evaluation errors, and a guarded branch (`if`,
    // `and`, `or`) may never run.
    Ok(match eval::eval_const(&expr) {
        Ok(value) => Expr::Const(value),
        Err(_) => expr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_with(text: &str, params: &[(&str, Value)]) -> Result<Expr, String> {
        let params: BTreeMap<String, Value> =
            params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        compile(text, &ExprScope { params: &params, frames: &[] })
    }

    #[test]
    fn parameters_and_constant_functions_fold_at_compile_time() {
        let expr =
            compile_with("[concat('tags[', parameters('tagName'), ']')]", &[("tagName", json!("env"))]);
        assert_eq!(expr, Ok(Expr::Const(json!("tags[env]"))));
    }

    #[test]
    fn an_undefined_parameter_is_a_compile_error() {
        assert_eq!(
            compile_with("[parameters('missing')]", &[]),
            Err("parameter 'missing' is not defined".to_owned())
        );
    }

    #[test]
    fn unknown_functions_and_wrong_arity_are_compile_errors() {
        assert!(compile_with("[frobnicate(1)]", &[]).is_err());
        assert!(compile_with("[toLower('a', 'b')]", &[]).is_err());
        assert!(compile_with("[utcNow()]", &[]).is_err());
    }

    #[test]
    fn resource_dependent_expressions_stay_dynamic() {
        let expr = compile_with("[toLower(field('name'))]", &[]);
        assert_eq!(expr, Ok(Expr::Call(Func::ToLower, vec![Expr::Field(FieldRef::Name)])));
    }

    #[test]
    fn request_context_reports_a_current_api_version() {
        assert_eq!(
            compile_with("[requestContext().apiVersion]", &[]),
            Ok(Expr::Const(json!(SCAN_API_VERSION)))
        );
    }

    #[test]
    fn a_constant_if_keeps_only_its_branch() {
        assert_eq!(
            compile_with("[if(equals(1, 1), 'yes', field('name'))]", &[]),
            Ok(Expr::Const(json!("yes")))
        );
    }
}
