//! Runtime values and Azure's comparison rules (case-insensitive strings, location
//! normalisation, strings that stand for booleans and numbers).
//!
//! Values borrow from the resource and the compiled policy wherever they can, so a typical
//! evaluation allocates nothing.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A value met during evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    /// The field or property does not exist.
    Missing,
    /// Borrowed JSON (resource properties, tags, compiled constants).
    Ref(&'a Value),
    /// Borrowed string (resource name, type, normalised location).
    Str(&'a str),
    /// Computed by a template function.
    Owned(Value),
}

/// A uniform read-only view of a [`Val`]: JSON `null` reads as absent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum View<'v> {
    Absent,
    Bool(bool),
    Num(f64),
    Str(&'v str),
    Arr(&'v [Value]),
    Obj(&'v Map<String, Value>),
}

impl<'a> Val<'a> {
    pub(crate) fn view(&self) -> View<'_> {
        match self {
            Val::Missing => View::Absent,
            Val::Str(s) => View::Str(s),
            Val::Ref(v) => View::of(v),
            Val::Owned(v) => View::of(v),
        }
    }

    pub(crate) fn is_absent(&self) -> bool {
        matches!(self.view(), View::Absent)
    }

    /// Converts to owned JSON (for reasons and array-building functions).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Val::Missing => Value::Null,
            Val::Str(s) => Value::String((*s).to_owned()),
            Val::Ref(v) => (*v).clone(),
            Val::Owned(v) => v.clone(),
        }
    }

    pub(crate) fn into_json(self) -> Value {
        match self {
            Val::Owned(v) => v,
            other => other.to_json(),
        }
    }
}

impl<'v> View<'v> {
    pub(crate) fn of(value: &'v Value) -> Self {
        match value {
            Value::Null => View::Absent,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => View::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => View::Str(s),
            Value::Array(a) => View::Arr(a),
            Value::Object(o) => View::Obj(o),
        }
    }

    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            View::Absent => "null",
            View::Bool(_) => "boolean",
            View::Num(_) => "number",
            View::Str(_) => "string",
            View::Arr(_) => "array",
            View::Obj(_) => "object",
        }
    }
}

/// Case-insensitive string equality (ASCII fast path, Unicode lower-casing otherwise).
pub(crate) fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

/// Location equality: `East US 2` equals `eastus2` (case and white space ignored).
pub(crate) fn eq_location(a: &str, b: &str) -> bool {
    a.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .eq(b.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase))
}

/// Lower-cases and strips white space, as Azure normalises locations.
pub(crate) fn normalise_location(location: &str) -> String {
    location.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// Case-insensitive ordinal comparison.
pub(crate) fn cmp_ci(a: &str, b: &str) -> Ordering {
    a.chars().flat_map(char::to_lowercase).cmp(b.chars().flat_map(char::to_lowercase))
}

/// Case-insensitive substring test.
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        if n.is_empty() {
            return true;
        }
        return h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Case-insensitive key lookup: exact match first, then a scan (ARM property names are
/// case-insensitive).
pub(crate) fn get_ci<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| eq_ci(k, key)).map(|(_, v)| v))
}

/// The text a scalar compares as when the other side is a string (`true` ~ `"True"`).
fn scalar_text(view: View<'_>) -> Option<String> {
    match view {
        View::Bool(b) => Some(b.to_string()),
        View::Num(n) => Some(format_number(n)),
        _ => None,
    }
}

pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

/// Azure's equality: strings case-insensitively (locations also ignoring white space),
/// scalars against strings by their text, arrays and objects member by member.
pub(crate) fn loose_eq(a: View<'_>, b: View<'_>, location: bool) -> bool {
    match (a, b) {
        (View::Absent, View::Absent) => true,
        (View::Str(x), View::Str(y)) => {
            if location {
                eq_location(x, y)
            } else {
                eq_ci(x, y)
            }
        }
        (View::Str(s), other) | (other, View::Str(s)) => {
            scalar_text(other).is_some_and(|text| eq_ci(s, &text))
        }
        (View::Bool(x), View::Bool(y)) => x == y,
        (View::Num(x), View::Num(y)) => x == y,
        (View::Arr(x), View::Arr(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(View::of(p), View::of(q), location))
        }
        (View::Obj(x), View::Obj(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| get_ci(y, k).is_some_and(|w| loose_eq(View::of(v), View::of(w), location)))
        }
        _ => false,
    }
}

/// Ordering for `less`/`greater`: numbers numerically, strings case-insensitively (ISO dates
/// sort correctly as strings); anything else is an evaluation error, as in Azure.
pub(crate) fn compare(a: View<'_>, b: View<'_>) -> Result<Ordering, String> {
    match (a, b) {
        (View::Num(x), View::Num(y)) => {
            x.partial_cmp(&y).ok_or_else(|| "cannot compare a number that is not finite".to_owned())
        }
        (View::Str(x), View::Str(y)) => Ok(cmp_ci(x, y)),
        (x, y) => Err(format!("cannot compare a {} with a {}", x.type_name(), y.type_name())),
    }
}

/// Renders a value for a human sentence.
pub(crate) fn display(value: &Value) -> String {
    match value {
        Value::Null => "missing".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_compare_case_insensitively() {
        assert!(loose_eq(View::Str("Deny"), View::Str("deny"), false));
        assert!(!loose_eq(View::Str("Deny"), View::Str("Denied"), false));
    }

    #[test]
    fn booleans_equal_their_text() {
        assert!(loose_eq(View::Bool(false), View::Str("False"), false));
        assert!(!loose_eq(View::Bool(true), View::Str("false"), false));
    }

    #[test]
    fn locations_ignore_spaces_and_case() {
        assert!(loose_eq(View::Str("East US 2"), View::Str("eastus2"), true));
        assert!(!loose_eq(View::Str("East US 2"), View::Str("eastus2"), false));
        assert_eq!(normalise_location("West Europe"), "westeurope");
    }

    #[test]
    fn numbers_and_strings_do_not_order() {
        assert!(compare(View::Num(1.0), View::Str("2")).is_err());
        assert_eq!(compare(View::Str("1.1"), View::Str("1.2")), Ok(Ordering::Less));
    }

    #[test]
    fn objects_compare_with_case_insensitive_keys() {
        let a = json!({"Name": "x"});
        let b = json!({"name": "X"});
        assert!(loose_eq(View::of(&a), View::of(&b), false));
    }

    #[test]
    fn non_ascii_strings_compare_case_insensitively() {
        assert!(eq_ci("ÄRGER", "ärger"));
        assert!(contains_ci("GRÖSSE", "ö"));
    }
}
