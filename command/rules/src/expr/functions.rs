//! The ARM template functions policy rules use, with ARM's semantics (string functions are
//! case-sensitive except `indexOf`, `startsWith`, `endsWith`). A function given the wrong
//! kind of value fails with a message; the condition using it then evaluates to `error`.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::builtins::{
    arithmetic, boolean, concat, contains, first_or_last, index_of, min_max, order, split, strict_eq,
    substring, take_or_skip, try_get,
};
use crate::value::{Val, View, format_number};

/// A supported template function (the resource-related ones are separate [`super::Expr`]
/// variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Concat,
    ToLower,
    ToUpper,
    Split,
    Substring,
    StartsWith,
    EndsWith,
    Replace,
    Trim,
    IndexOf,
    LastIndexOf,
    String,
    Join,
    First,
    Last,
    Length,
    Contains,
    Take,
    Skip,
    CreateArray,
    Array,
    Empty,
    TryGet,
    Equals,
    Not,
    And,
    Or,
    If,
    Coalesce,
    Less,
    LessOrEquals,
    Greater,
    GreaterOrEquals,
    Bool,
    Int,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Min,
    Max,
}

/// Name (lower case), function, fewest and most arguments (`None`: any number).
const TABLE: &[(&str, Func, usize, Option<usize>)] = &[
    ("concat", Func::Concat, 1, None),
    ("tolower", Func::ToLower, 1, Some(1)),
    ("toupper", Func::ToUpper, 1, Some(1)),
    ("split", Func::Split, 2, Some(2)),
    ("substring", Func::Substring, 2, Some(3)),
    ("startswith", Func::StartsWith, 2, Some(2)),
    ("endswith", Func::EndsWith, 2, Some(2)),
    ("replace", Func::Replace, 3, Some(3)),
    ("trim", Func::Trim, 1, Some(1)),
    ("indexof", Func::IndexOf, 2, Some(2)),
    ("lastindexof", Func::LastIndexOf, 2, Some(2)),
    ("string", Func::String, 1, Some(1)),
    ("join", Func::Join, 2, Some(2)),
    ("first", Func::First, 1, Some(1)),
    ("last", Func::Last, 1, Some(1)),
    ("length", Func::Length, 1, Some(1)),
    ("contains", Func::Contains, 2, Some(2)),
    ("take", Func::Take, 2, Some(2)),
    ("skip", Func::Skip, 2, Some(2)),
    ("createarray", Func::CreateArray, 0, None),
    ("array", Func::Array, 1, Some(1)),
    ("empty", Func::Empty, 1, Some(1)),
    ("tryget", Func::TryGet, 2, None),
    ("equals", Func::Equals, 2, Some(2)),
    ("not", Func::Not, 1, Some(1)),
    ("and", Func::And, 2, None),
    ("or", Func::Or, 2, None),
    ("if", Func::If, 3, Some(3)),
    ("coalesce", Func::Coalesce, 1, None),
    ("less", Func::Less, 2, Some(2)),
    ("lessorequals", Func::LessOrEquals, 2, Some(2)),
    ("greater", Func::Greater, 2, Some(2)),
    ("greaterorequals", Func::GreaterOrEquals, 2, Some(2)),
    ("bool", Func::Bool, 1, Some(1)),
    ("int", Func::Int, 1, Some(1)),
    ("add", Func::Add, 2, Some(2)),
    ("sub", Func::Sub, 2, Some(2)),
    ("mul", Func::Mul, 2, Some(2)),
    ("div", Func::Div, 2, Some(2)),
    ("mod", Func::Mod, 2, Some(2)),
    ("min", Func::Min, 1, None),
    ("max", Func::Max, 1, None),
];

impl Func {
    pub(crate) fn from_name(lower: &str) -> Option<Func> {
        TABLE.iter().find(|(n, ..)| *n == lower).map(|(_, f, ..)| *f)
    }

    pub(crate) fn arity(self) -> (usize, Option<usize>) {
        TABLE.iter().find(|(_, f, ..)| *f == self).map_or((0, None), |(_, _, min, max)| (*min, *max))
    }
}

pub(super) fn text<'v>(v: &'v Val<'_>) -> Result<Cow<'v, str>, String> {
    match v.view() {
        View::Str(s) => Ok(Cow::Borrowed(s)),
        // Missing properties read as "" (Azure's `field()` does the same).
        View::Absent => Ok(Cow::Borrowed("")),
        other => Err(format!("expected a string but got a {}", other.type_name())),
    }
}

pub(super) fn int(v: &Val<'_>) -> Result<i64, String> {
    match v.view() {
        View::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(n as i64),
        View::Str(s) => s.trim().parse::<i64>().map_err(|_| format!("'{s}' is not an integer")),
        other => Err(format!("expected an integer but got a {}", other.type_name())),
    }
}

pub(super) fn items(v: &Val<'_>) -> Result<Vec<Value>, String> {
    match v.view() {
        View::Arr(a) => Ok(a.to_vec()),
        View::Absent => Ok(Vec::new()),
        other => Err(format!("expected an array but got a {}", other.type_name())),
    }
}

/// Moves argument `at` out (functions that return part of an argument avoid a copy).
pub(super) fn take<'a>(args: &mut [Val<'a>], at: usize) -> Val<'a> {
    args.get_mut(at).map_or(Val::Missing, |v| std::mem::replace(v, Val::Missing))
}

pub(super) fn owned<'a>(value: Value) -> Result<Val<'a>, String> {
    Ok(Val::Owned(value))
}

pub(super) fn arg<'v, 'a>(args: &'v [Val<'a>], at: usize) -> &'v Val<'a> {
    args.get(at).unwrap_or(&Val::Missing)
}

/// Applies a strict (non-lazy) function to evaluated arguments.
pub(crate) fn apply<'a>(func: Func, args: &mut [Val<'a>]) -> Result<Val<'a>, String> {
    let a = |i: usize| arg(args, i);
    match func {
        Func::Concat => concat(args),
        Func::ToLower => owned(Value::from(text(a(0))?.to_lowercase())),
        Func::ToUpper => owned(Value::from(text(a(0))?.to_uppercase())),
        Func::Trim => owned(Value::from(text(a(0))?.trim())),
        Func::Replace => owned(Value::from(text(a(0))?.replace(&*text(a(1))?, &text(a(2))?))),
        Func::Split => split(a(0), a(1)),
        Func::Substring => substring(args),
        Func::StartsWith => {
            owned(Value::from(text(a(0))?.to_lowercase().starts_with(&text(a(1))?.to_lowercase())))
        }
        Func::EndsWith => {
            owned(Value::from(text(a(0))?.to_lowercase().ends_with(&text(a(1))?.to_lowercase())))
        }
        Func::IndexOf | Func::LastIndexOf => index_of(func, a(0), a(1)),
        Func::String => owned(Value::from(match a(0).view() {
            View::Str(s) => s.to_owned(),
            View::Num(n) => format_number(n),
            _ => a(0).to_json().to_string(),
        })),
        Func::Join => {
            let parts: Vec<String> = items(a(0))?
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            owned(Value::from(parts.join(&*text(a(1))?)))
        }
        Func::First | Func::Last => first_or_last(func, take(args, 0)),
        Func::Length => owned(Value::from(match a(0).view() {
            View::Str(s) => s.chars().count(),
            View::Arr(v) => v.len(),
            View::Obj(o) => o.len(),
            View::Absent => 0,
            other => return Err(format!("length() of a {}", other.type_name())),
        })),
        Func::Contains => contains(a(0), a(1)),
        Func::Take | Func::Skip => take_or_skip(func, a(0), int(a(1))?),
        Func::CreateArray => {
            owned(Value::Array((0..args.len()).map(|i| take(args, i).into_json()).collect()))
        }
        Func::Array => owned(match take(args, 0).into_json() {
            Value::Array(v) => Value::Array(v),
            other => Value::Array(vec![other]),
        }),
        Func::Empty => owned(Value::from(match a(0).view() {
            View::Absent => true,
            View::Str(s) => s.is_empty(),
            View::Arr(v) => v.is_empty(),
            View::Obj(o) => o.is_empty(),
            _ => false,
        })),
        Func::TryGet => try_get(args),
        Func::Equals => owned(Value::from(strict_eq(a(0).view(), a(1).view()))),
        Func::Not => owned(Value::from(!boolean(a(0))?)),
        Func::Less | Func::LessOrEquals | Func::Greater | Func::GreaterOrEquals => {
            let ord = order(a(0).view(), a(1).view())?;
            owned(Value::from(match func {
                Func::Less => ord == Ordering::Less,
                Func::LessOrEquals => ord != Ordering::Greater,
                Func::Greater => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        Func::Bool => owned(Value::from(match a(0).view() {
            View::Num(n) => n != 0.0,
            _ => boolean(a(0))?,
        })),
        Func::Int => owned(Value::from(int(a(0))?)),
        Func::Add | Func::Sub | Func::Mul | Func::Div | Func::Mod => arithmetic(func, int(a(0))?, int(a(1))?),
        Func::Min | Func::Max => min_max(func, args),
        // Lazy functions are evaluated by `eval`; reaching here means a direct call.
        Func::And | Func::Or | Func::If | Func::Coalesce => {
            Err("internal: lazy function applied strictly".to_owned())
        }
    }
}
