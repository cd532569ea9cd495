//! Condition operators and Azure's rules for them: string comparisons case-insensitive except
//! `match`/`notMatch`; a missing value makes `equals`, `in`, `like`, `contains` (and the
//! other positive operators) false and their negations true; `less`/`greater` on values of
//! different kinds are an evaluation error.

use std::cmp::Ordering;

use crate::pattern;
use crate::value::{View, compare, contains_ci, get_ci, loose_eq};

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Operator {
    Equals,
    NotEquals,
    Like,
    NotLike,
    Match,
    NotMatch,
    MatchInsensitively,
    NotMatchInsensitively,
    Contains,
    NotContains,
    In,
    NotIn,
    ContainsKey,
    NotContainsKey,
    Less,
    LessOrEquals,
    Greater,
    GreaterOrEquals,
    Exists,
}

const NAMES: &[(&str, Operator)] = &[
    ("equals", Operator::Equals),
    ("notEquals", Operator::NotEquals),
    ("like", Operator::Like),
    ("notLike", Operator::NotLike),
    ("match", Operator::Match),
    ("notMatch", Operator::NotMatch),
    ("matchInsensitively", Operator::MatchInsensitively),
    ("notMatchInsensitively", Operator::NotMatchInsensitively),
    ("contains", Operator::Contains),
    ("notContains", Operator::NotContains),
    ("in", Operator::In),
    ("notIn", Operator::NotIn),
    ("containsKey", Operator::ContainsKey),
    ("notContainsKey", Operator::NotContainsKey),
    ("less", Operator::Less),
    ("lessOrEquals", Operator::LessOrEquals),
    ("greater", Operator::Greater),
    ("greaterOrEquals", Operator::GreaterOrEquals),
    ("exists", Operator::Exists),
];

impl Operator {
    /// Operator keys are matched case-insensitively, as Azure does.
    pub(crate) fn from_key(key: &str) -> Option<Operator> {
        NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, op)| *op)
    }

    pub(crate) fn name(self) -> &'static str {
        NAMES.iter().find(|(_, op)| *op == self).map_or("unknown", |(name, _)| name)
    }

    /// The operator that holds exactly when this one does not (`exists` negates by value).
    pub(crate) fn negation(self) -> Operator {
        use Operator::*;
        match self {
            Equals => NotEquals,
            NotEquals => Equals,
            Like => NotLike,
            NotLike => Like,
            Match => NotMatch,
            NotMatch => Match,
            MatchInsensitively => NotMatchInsensitively,
            NotMatchInsensitively => MatchInsensitively,
            Contains => NotContains,
            NotContains => Contains,
            In => NotIn,
            NotIn => In,
            ContainsKey => NotContainsKey,
            NotContainsKey => ContainsKey,
            Less => GreaterOrEquals,
            GreaterOrEquals => Less,
            LessOrEquals => Greater,
            Greater => LessOrEquals,
            Exists => Exists,
        }
    }

    /// The positive operator and whether this one negates it.
    fn positive(self) -> (Operator, bool) {
        use Operator::*;
        match self {
            NotEquals | NotLike | NotMatch | NotMatchInsensitively | NotContains | NotIn | NotContainsKey => {
                (self.negation(), true)
            }
            _ => (self, false),
        }
    }

    /// How a human reads "the value must <phrase> <expected>".
    pub(crate) fn phrase(self) -> &'static str {
        use Operator::*;
        match self {
            Equals => "equal",
            NotEquals => "not equal",
            Like => "be like",
            NotLike => "not be like",
            Match => "match",
            NotMatch => "not match",
            MatchInsensitively => "match (ignoring case)",
            NotMatchInsensitively => "not match (ignoring case)",
            Contains => "contain",
            NotContains => "not contain",
            In => "be one of",
            NotIn => "not be one of",
            ContainsKey => "contain the key",
            NotContainsKey => "not contain the key",
            Less => "be less than",
            LessOrEquals => "be less than or equal to",
            Greater => "be greater than",
            GreaterOrEquals => "be greater than or equal to",
            Exists => "exist",
        }
    }

    /// Tests one actual value against the expected one. `location` compares strings the
    /// way locations compare (`East US 2` = `eastus2`). `exists` is handled by the caller.
    pub(crate) fn test(self, actual: View<'_>, expected: View<'_>, location: bool) -> Result<bool, String> {
        let (positive, negated) = self.positive();
        let result = match positive {
            Operator::Exists => !matches!(actual, View::Absent),
            // Missing values satisfy no positive operator.
            _ if matches!(actual, View::Absent) => false,
            Operator::Equals => loose_eq(actual, expected, location),
            Operator::Like => pattern_text(actual)
                .zip(pattern_text(expected))
                .is_some_and(|(text, pat)| pattern::like(&text, &pat)),
            Operator::Match | Operator::MatchInsensitively => pattern_text(actual)
                .zip(pattern_text(expected))
                .is_some_and(|(text, pat)| pattern::matches(&text, &pat, positive == Operator::Match)),
            Operator::Contains => match (actual, expected) {
                (View::Str(hay), View::Str(needle)) => contains_ci(hay, needle),
                (View::Arr(items), wanted) => {
                    items.iter().any(|item| loose_eq(View::of(item), wanted, location))
                }
                (View::Str(hay), other) => {
                    pattern_text(other).is_some_and(|needle| contains_ci(hay, &needle))
                }
                _ => false,
            },
            Operator::In => match expected {
                View::Arr(items) => items.iter().any(|item| loose_eq(actual, View::of(item), location)),
                other => {
                    return Err(format!("'{}' needs an array but got a {}", self.name(), other.type_name()));
                }
            },
            Operator::ContainsKey => match (actual, expected) {
                (View::Obj(map), View::Str(key)) => get_ci(map, key).is_some(),
                _ => false,
            },
            Operator::Less => compare(actual, expected)? == Ordering::Less,
            Operator::LessOrEquals => compare(actual, expected)? != Ordering::Greater,
            Operator::Greater => compare(actual, expected)? == Ordering::Greater,
            Operator::GreaterOrEquals => compare(actual, expected)? != Ordering::Less,
            negative => {
                return Err(format!("internal: '{}' has no positive form", negative.name()));
            }
        };
        Ok(result != negated)
    }
}

/// The text a scalar is matched as by `like`, `match` and `contains`.
fn pattern_text(view: View<'_>) -> Option<std::borrow::Cow<'_, str>> {
    match view {
        View::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
        View::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        View::Num(n) => Some(std::borrow::Cow::Owned(crate::value::format_number(n))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test(op: Operator, actual: View<'_>, expected: View<'_>) -> bool {
        op.test(actual, expected, false).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_operator_name_round_trips_and_negation_is_an_involution() {
        for (name, op) in NAMES {
            assert_eq!(Operator::from_key(name), Some(*op));
            assert_eq!(Operator::from_key(&name.to_uppercase()), Some(*op));
            assert_eq!(op.negation().negation(), *op);
        }
    }

    #[test]
    fn a_missing_value_fails_positive_operators_and_passes_their_negations() {
        let list = json!(["a"]);
        let cases = [
            (Operator::Equals, View::Str("a")),
            (Operator::Like, View::Str("*")),
            (Operator::Contains, View::Str("a")),
            (Operator::In, View::of(&list)),
            (Operator::Match, View::Str(".")),
            (Operator::ContainsKey, View::Str("a")),
        ];
        for (op, expected) in cases {
            assert!(!test(op, View::Absent, expected), "{}", op.name());
            assert!(test(op.negation(), View::Absent, expected), "{}", op.negation().name());
        }
    }

    #[test]
    fn a_missing_value_is_neither_less_nor_greater() {
        for op in [Operator::Less, Operator::LessOrEquals, Operator::Greater, Operator::GreaterOrEquals] {
            assert!(!test(op, View::Absent, View::Num(1.0)));
        }
    }

    #[test]
    fn in_compares_case_insensitively_and_needs_an_array() {
        let list = json!(["Standard_LRS", "Standard_GRS"]);
        assert!(test(Operator::In, View::Str("standard_lrs"), View::of(&list)));
        assert!(Operator::In.test(View::Str("x"), View::Str("x"), false).is_err());
    }

    #[test]
    fn contains_finds_substrings_and_array_members() {
        let list = json!(["a", "B"]);
        assert!(test(Operator::Contains, View::Str("FunctionApp,linux"), View::Str("functionapp")));
        assert!(test(Operator::Contains, View::of(&list), View::Str("b")));
        assert!(test(Operator::NotContains, View::Str("app"), View::Str("functionapp")));
    }

    #[test]
    fn ordering_between_kinds_is_an_error() {
        assert!(Operator::Less.test(View::Bool(true), View::Num(1.0), false).is_err());
    }
}
