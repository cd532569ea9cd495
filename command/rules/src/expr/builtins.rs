//! Implementations of the template functions that need more than a line (see
//! [`super::functions`] for the table and the dispatch).

use std::cmp::Ordering;

use serde_json::Value;

use super::functions::{Func, arg, int, items, owned, take, text};
use crate::value::{Val, View, format_number, get_ci};

pub(super) fn boolean(v: &Val<'_>) -> Result<bool, String> {
    match v.view() {
        View::Bool(b) => Ok(b),
        View::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        View::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("expected a boolean but got a {}", other.type_name())),
    }
}

pub(super) fn concat<'a>(args: &[Val<'a>]) -> Result<Val<'a>, String> {
    if matches!(args.first().map(Val::view), Some(View::Arr(_))) {
        let mut out = Vec::new();
        for a in args {
            out.extend(items(a)?);
        }
        return owned(Value::Array(out));
    }
    let mut out = String::new();
    for a in args {
        match a.view() {
            View::Num(n) => out.push_str(&format_number(n)),
            View::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            _ => out.push_str(&text(a)?),
        }
    }
    owned(Value::String(out))
}

pub(super) fn split<'a>(s: &Val<'_>, delim: &Val<'_>) -> Result<Val<'a>, String> {
    let s = text(s)?;
    let parts: Vec<Value> = match delim.view() {
        // One delimiter (the common case): split directly, without intermediate strings.
        View::Str(d) if !d.is_empty() => s.split(d).map(Value::from).collect(),
        View::Str(_) => vec![Value::from(s.as_ref())],
        View::Arr(list) => {
            let delims: Vec<&str> = list.iter().filter_map(Value::as_str).filter(|d| !d.is_empty()).collect();
            let mut parts = vec![s.into_owned()];
            for d in delims {
                parts = parts.iter().flat_map(|p| p.split(d).map(str::to_owned)).collect();
            }
            parts.into_iter().map(Value::String).collect()
        }
        other => {
            return Err(format!(
                "split() needs a string or an array of delimiters, not a {}",
                other.type_name()
            ));
        }
    };
    owned(Value::Array(parts))
}

pub(super) fn substring<'a>(args: &[Val<'a>]) -> Result<Val<'a>, String> {
    let s: Vec<char> = text(arg(args, 0))?.chars().collect();
    let start = usize::try_from(int(arg(args, 1))?).map_err(|_| "substring start is negative")?;
    let len = match args.get(2) {
        Some(l) => usize::try_from(int(l)?).map_err(|_| "substring length is negative")?,
        None => s.len().saturating_sub(start),
    };
    let end = start.checked_add(len).filter(|e| *e <= s.len());
    match (s.get(start..), end) {
        (Some(_), Some(end)) => {
            owned(Value::from(s.get(start..end).unwrap_or_default().iter().collect::<String>()))
        }
        _ => Err(format!("substring({start}, {len}) is out of range for a string of {}", s.len())),
    }
}

pub(super) fn index_of<'a>(func: Func, s: &Val<'_>, needle: &Val<'_>) -> Result<Val<'a>, String> {
    let (s, needle) = (text(s)?.to_lowercase(), text(needle)?.to_lowercase());
    let at = if func == Func::IndexOf { s.find(&needle) } else { s.rfind(&needle) };
    owned(Value::from(at.map_or(-1, |byte| s.get(..byte).map_or(0, |p| p.chars().count()) as i64)))
}

pub(super) fn first_or_last(func: Func, v: Val<'_>) -> Result<Val<'_>, String> {
    let pick = |len: usize| if func == Func::First { 0 } else { len.saturating_sub(1) };
    match v {
        Val::Ref(Value::Array(a)) => Ok(a.get(pick(a.len())).map_or(Val::Missing, Val::Ref)),
        Val::Owned(Value::Array(mut a)) => {
            let i = pick(a.len());
            Ok(if i < a.len() { Val::Owned(a.swap_remove(i)) } else { Val::Missing })
        }
        other => match other.view() {
            View::Str(s) => {
                let c = if func == Func::First { s.chars().next() } else { s.chars().last() };
                owned(Value::from(c.map(String::from).unwrap_or_default()))
            }
            View::Absent => Ok(Val::Missing),
            view => Err(format!("first()/last() of a {}", view.type_name())),
        },
    }
}

pub(super) fn contains<'a>(container: &Val<'_>, item: &Val<'_>) -> Result<Val<'a>, String> {
    owned(Value::from(match container.view() {
        View::Str(s) => s.contains(&*text(item)?),
        View::Arr(a) => a.iter().any(|v| strict_eq(View::of(v), item.view())),
        View::Obj(o) => get_ci(o, &text(item)?).is_some(),
        View::Absent => false,
        other => return Err(format!("contains() of a {}", other.type_name())),
    }))
}

pub(super) fn take_or_skip<'a>(func: Func, v: &Val<'_>, n: i64) -> Result<Val<'a>, String> {
    let n = usize::try_from(n.max(0)).unwrap_or(0);
    let take = func == Func::Take;
    owned(match v.view() {
        View::Str(s) => Value::from(if take {
            s.chars().take(n).collect::<String>()
        } else {
            s.chars().skip(n).collect()
        }),
        View::Arr(a) => Value::Array(if take {
            a.iter().take(n).cloned().collect()
        } else {
            a.iter().skip(n).cloned().collect()
        }),
        other => return Err(format!("take()/skip() of a {}", other.type_name())),
    })
}

pub(super) fn try_get<'a>(args: &mut [Val<'a>]) -> Result<Val<'a>, String> {
    let mut current = take(args, 0).into_json();
    for key in args.iter().skip(1) {
        current = match (current, key.view()) {
            (Value::Object(mut map), View::Str(k)) => {
                let found = map.keys().find(|x| x.eq_ignore_ascii_case(k)).cloned();
                match found.and_then(|f| map.remove(&f)) {
                    Some(v) => v,
                    None => return Ok(Val::Missing),
                }
            }
            (Value::Array(mut a), View::Num(n)) if n >= 0.0 && (n as usize) < a.len() => {
                a.swap_remove(n as usize)
            }
            _ => return Ok(Val::Missing),
        };
    }
    Ok(Val::Owned(current))
}

/// ARM's `equals`: JSON equality, numbers by value, strings case-sensitively.
pub(super) fn strict_eq(a: View<'_>, b: View<'_>) -> bool {
    match (a, b) {
        (View::Num(x), View::Num(y)) => x == y,
        (View::Str(x), View::Str(y)) => x == y,
        (View::Bool(x), View::Bool(y)) => x == y,
        (View::Absent, View::Absent) => true,
        (View::Arr(x), View::Arr(y)) => x == y,
        (View::Obj(x), View::Obj(y)) => x == y,
        _ => false,
    }
}

pub(super) fn order(a: View<'_>, b: View<'_>) -> Result<Ordering, String> {
    match (a, b) {
        (View::Num(x), View::Num(y)) => x.partial_cmp(&y).ok_or_else(|| "cannot order NaN".to_owned()),
        (View::Str(x), View::Str(y)) => Ok(x.cmp(y)),
        (x, y) => Err(format!("cannot compare a {} with a {}", x.type_name(), y.type_name())),
    }
}

pub(super) fn arithmetic<'a>(func: Func, x: i64, y: i64) -> Result<Val<'a>, String> {
    let result = match func {
        Func::Add => x.checked_add(y),
        Func::Sub => x.checked_sub(y),
        Func::Mul => x.checked_mul(y),
        Func::Div => x.checked_div(y),
        _ => x.checked_rem(y),
    };
    result
        .map(|r| Val::Owned(Value::from(r)))
        .ok_or_else(|| "arithmetic overflow or division by zero".to_owned())
}

pub(super) fn min_max<'a>(func: Func, args: &[Val<'a>]) -> Result<Val<'a>, String> {
    let mut numbers = Vec::new();
    for a in args {
        match a.view() {
            View::Arr(items) => {
                for v in items {
                    numbers.push(int(&Val::Ref(v))?);
                }
            }
            _ => numbers.push(int(a)?),
        }
    }
    let pick = if func == Func::Min { numbers.iter().min() } else { numbers.iter().max() };
    pick.map(|n| Val::Owned(Value::from(*n))).ok_or_else(|| "min()/max() of nothing".to_owned())
}
