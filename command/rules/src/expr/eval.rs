//! Evaluates a resolved expression against a resource (or, for folding, against nothing).

use serde_json::Value;

use super::Expr;
use super::functions::{self, Func};
use crate::field::{Selection, select};
use crate::resource::ResourceContext;
use crate::value::{Val, View, get_ci};

/// What an expression can see: the resource (absent while folding constants) and the members
/// the enclosing counts are visiting.
pub(crate) struct Env<'e, 'a> {
    pub(crate) ctx: Option<&'a ResourceContext<'a>>,
    pub(crate) members: &'e [Val<'a>],
}

/// Evaluates an expression that has no resource-dependent parts.
pub(crate) fn eval_const(expr: &Expr) -> Result<Value, String> {
    let env = Env { ctx: None, members: &[] };
    eval(expr, &env).map(Val::into_json)
}

pub(crate) fn eval<'a>(expr: &'a Expr, env: &Env<'_, 'a>) -> Result<Val<'a>, String> {
    match expr {
        Expr::Const(value) => Ok(Val::Ref(value)),
        Expr::Field(field) => {
            let ctx = resource(env)?;
            Ok(match select(field, ctx, env.members) {
                // Azure documents `field()` of a missing property as "".
                Selection::One(Val::Missing) => Val::Str(""),
                Selection::One(v) => v,
                Selection::Many(values) => {
                    Val::Owned(Value::Array(values.into_iter().map(Val::into_json).collect()))
                }
            })
        }
        Expr::Current(field) => {
            let ctx = resource(env)?;
            Ok(match select(field, ctx, env.members) {
                Selection::One(v) => v,
                Selection::Many(values) => {
                    Val::Owned(Value::Array(values.into_iter().map(Val::into_json).collect()))
                }
            })
        }
        Expr::ResourceGroup => Ok(Val::Ref(&resource(env)?.group)),
        Expr::Subscription => Ok(Val::Ref(&resource(env)?.subscription)),
        Expr::Property(target, name) => property(eval(target, env)?, name),
        Expr::Index(target, index) => {
            let target = eval(target, env)?;
            let index = eval(index, env)?;
            index_into(target, &index)
        }
        Expr::Call(func, args) => call(*func, args, env),
    }
}

fn resource<'a>(env: &Env<'_, 'a>) -> Result<&'a ResourceContext<'a>, String> {
    env.ctx.ok_or_else(|| "this expression needs a resource to evaluate".to_owned())
}

fn call<'a>(func: Func, args: &'a [Expr], env: &Env<'_, 'a>) -> Result<Val<'a>, String> {
    // `if`, `and`, `or` and `coalesce` evaluate lazily so guards protect the branch they
    // guard (the `if(…, int(…), 'false')` idiom of the built-in NSG rules).
    match func {
        Func::If => {
            let cond = arg(args, 0, env)?;
            let pick = if truthy_val(&cond)? { 1 } else { 2 };
            return arg(args, pick, env);
        }
        Func::And | Func::Or => {
            let stop_on = func == Func::Or;
            for a in args {
                if truthy_val(&eval(a, env)?)? == stop_on {
                    return Ok(Val::Owned(Value::Bool(stop_on)));
                }
            }
            return Ok(Val::Owned(Value::Bool(!stop_on)));
        }
        Func::Coalesce => {
            for a in args {
                let v = eval(a, env)?;
                if !v.is_absent() {
                    return Ok(v);
                }
            }
            return Ok(Val::Owned(Value::Null));
        }
        _ => {}
    }
    // Arguments live on the stack for the usual one to three; only longer calls allocate.
    if args.len() <= 3 {
        let mut values = [Val::Missing, Val::Missing, Val::Missing];
        for (slot, a) in values.iter_mut().zip(args) {
            *slot = eval(a, env)?;
        }
        return functions::apply(func, values.get_mut(..args.len()).unwrap_or_default());
    }
    let mut values = args.iter().map(|a| eval(a, env)).collect::<Result<Vec<_>, _>>()?;
    functions::apply(func, &mut values)
}

fn arg<'a>(args: &'a [Expr], at: usize, env: &Env<'_, 'a>) -> Result<Val<'a>, String> {
    match args.get(at) {
        Some(expr) => eval(expr, env),
        None => Ok(Val::Missing),
    }
}

/// A boolean argument: `true`/`false` or their text.
pub(crate) fn truthy(value: &Value) -> Result<bool, String> {
    truthy_view(View::of(value))
}

fn truthy_val(value: &Val<'_>) -> Result<bool, String> {
    truthy_view(value.view())
}

fn truthy_view(view: View<'_>) -> Result<bool, String> {
    match view {
        View::Bool(b) => Ok(b),
        View::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        View::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("expected a boolean but got a {}", other.type_name())),
    }
}

/// `x.name`: an object's property (case-insensitive); missing when absent.
fn property<'a>(target: Val<'a>, name: &str) -> Result<Val<'a>, String> {
    match target {
        Val::Ref(Value::Object(map)) => Ok(get_ci(map, name).map_or(Val::Missing, Val::Ref)),
        Val::Owned(Value::Object(mut map)) => {
            let key = map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
            Ok(key.and_then(|k| map.remove(&k)).map_or(Val::Missing, Val::Owned))
        }
        other if other.is_absent() => Ok(Val::Missing),
        other => Err(format!("cannot read property '{name}' of a {}", other.view().type_name())),
    }
}

/// `x[i]` on arrays, `x['k']` on objects.
fn index_into<'a>(target: Val<'a>, index: &Val<'_>) -> Result<Val<'a>, String> {
    match (target, index.view()) {
        (target, View::Str(key)) => property(target, key),
        (Val::Ref(Value::Array(items)), View::Num(n)) => position(items.len(), n)
            .and_then(|i| items.get(i))
            .map(Val::Ref)
            .ok_or_else(|| format!("index {n} is out of range")),
        (Val::Owned(Value::Array(mut items)), View::Num(n)) => match position(items.len(), n) {
            Some(i) if i < items.len() => Ok(Val::Owned(items.swap_remove(i))),
            _ => Err(format!("index {n} is out of range")),
        },
        (target, other) => {
            Err(format!("cannot index a {} with a {}", target.view().type_name(), other.type_name()))
        }
    }
}

fn position(len: usize, n: f64) -> Option<usize> {
    if n.fract() != 0.0 || n < 0.0 || n >= len as f64 {
        return None;
    }
    Some(n as usize)
}
