//! Compiles one leaf condition: exactly one left side (`field`, `value` or `count`), exactly
//! one operator, and a right side of the kind that operator needs.

use serde_json::{Map, Value};

use crate::compile::Compiler;
use crate::condition::{Count, CountSource, Leaf, Lhs, Operand, Selector};
use crate::error::pointer_join;
use crate::field::FieldRef;
use crate::operators::Operator;
use crate::resource::{RESOURCE_GROUP_TYPE, RESOURCE_GROUP_TYPE_ARM};
use crate::scope::{self, Frame};

impl Compiler<'_> {
    pub(crate) fn leaf(&mut self, map: &Map<String, Value>, pointer: &str) -> Option<Leaf> {
        let mut sides = Vec::new();
        let mut operators = Vec::new();
        let faults_before = self.faults.len();
        let mut unknown = false;
        for (key, value) in map {
            if ["field", "value", "count"].iter().any(|s| s.eq_ignore_ascii_case(key)) {
                sides.push((key.as_str(), value));
            } else if let Some(op) = Operator::from_key(key) {
                operators.push((key.as_str(), op, value));
            } else {
                unknown = true;
                self.fault(&pointer_join(pointer, key), format!("unknown operator '{key}'"));
            }
        }
        match sides.as_slice() {
            [] => self.fault(pointer, "a condition needs a 'field', 'value' or 'count'"),
            [_] => {}
            [(a, _), (b, _), ..] => {
                self.fault(pointer, format!("a condition has one left side but this one has '{a}' and '{b}'"))
            }
        }
        match operators.as_slice() {
            // An unknown key was most likely meant as the operator: reported already.
            [] if unknown => {}
            [] => self.fault(pointer, "the condition has no operator"),
            [_] => {}
            [(a, ..), (b, ..), ..] => {
                self.fault(pointer, format!("two operators in one condition: '{a}' and '{b}'"));
            }
        }
        // Compile both sides even after a structural fault, to report their faults too.
        let lhs = match sides.first() {
            Some((key, value)) => self.lhs(key, value, &pointer_join(pointer, key)),
            None => None,
        };
        let (op, rhs) = match operators.first() {
            Some((key, op, value)) => (*op, self.rhs(*op, value, &pointer_join(pointer, key))),
            None => (Operator::Exists, None),
        };
        if self.faults.len() > faults_before {
            return None;
        }
        let (lhs, source, selector, location) = lhs?;
        let mut rhs = rhs?;
        if selector == Some(Selector::Type) {
            // DESIGN §3: both spellings of the resource-group type mean the same.
            if let Operand::Const(value) = &mut rhs {
                normalise_group_type(value);
            }
        }
        if matches!(lhs, Lhs::Count(_)) && op == Operator::Exists {
            self.fault(pointer, "'exists' cannot test a count");
            return None;
        }
        Some(Leaf { pointer: pointer.to_owned(), lhs, op, rhs, selector, location, source })
    }

    #[allow(clippy::type_complexity)]
    fn lhs(&mut self, key: &str, value: &Value, at: &str) -> Option<(Lhs, Value, Option<Selector>, bool)> {
        match key.to_ascii_lowercase().as_str() {
            "field" => {
                let text = self.constant_string(value, at, "a field name")?;
                let field = match scope::resolve_field(&text, &self.frames) {
                    Ok(field) => field,
                    Err(message) => {
                        self.fault(at, message);
                        return None;
                    }
                };
                // Only the resource's own type/name/kind decide applicability, not a count's.
                let selector = match (&field, self.frames.is_empty()) {
                    (FieldRef::Type, true) => Some(Selector::Type),
                    (FieldRef::Name, true) => Some(Selector::Name),
                    (FieldRef::Kind, true) => Some(Selector::Kind),
                    _ => None,
                };
                let location = field == FieldRef::Location;
                Some((Lhs::Field(field), Value::String(text), selector, location))
            }
            "value" => {
                let operand = self.operand(value, at)?;
                Some((Lhs::Value(operand), value.clone(), None, false))
            }
            _ => {
                let count = self.count(value, at)?;
                let source = value
                    .as_object()
                    .and_then(|m| {
                        m.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("field") || k.eq_ignore_ascii_case("value"))
                    })
                    .map_or(Value::Null, |(_, v)| v.clone());
                Some((Lhs::Count(Box::new(count)), source, None, false))
            }
        }
    }

    fn count(&mut self, value: &Value, at: &str) -> Option<Count> {
        let Value::Object(map) = value else {
            self.fault(at, "'count' must be an object");
            return None;
        };
        let (mut field, mut items, mut filter, mut name) = (None, None, None, None);
        for (key, v) in map {
            match key.to_ascii_lowercase().as_str() {
                "field" => field = Some((key, v)),
                "value" => items = Some((key, v)),
                "where" => filter = Some((key, v)),
                "name" => name = Some((key, v)),
                _ => self.fault(&pointer_join(at, key), format!("unknown key '{key}' in count")),
            }
        }
        let (source, frame) = match (field, items) {
            (Some((key, v)), None) => {
                if let Some((key, _)) = name {
                    self.fault(&pointer_join(at, key), "'name' is only for value counts");
                }
                let at = pointer_join(at, key);
                let text = self.constant_string(v, &at, "count.field")?;
                let field = match scope::resolve_field(&text, &self.frames) {
                    Ok(f) => f,
                    Err(message) => {
                        self.fault(&at, message);
                        return None;
                    }
                };
                let array = scope::array_of(field).filter(|_| text.trim_end().ends_with("[*]"));
                let prefix = array.as_ref().and_then(|a| scope::count_prefix(a, &self.frames));
                let (Some(array), Some(prefix)) = (array, prefix) else {
                    self.fault(&at, "count.field must be an array alias ending in '[*]'");
                    return None;
                };
                (CountSource::Field(array), Frame::Field { prefix })
            }
            (None, Some((key, v))) => {
                let operand = self.operand(v, &pointer_join(at, key))?;
                if let Operand::Const(c) = &operand {
                    if !c.is_array() {
                        self.fault(&pointer_join(at, key), "count.value must be an array");
                        return None;
                    }
                }
                let index_name = match name {
                    None => "default".to_owned(),
                    Some((_, Value::String(n)))
                        if !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()) =>
                    {
                        n.clone()
                    }
                    Some((key, _)) => {
                        self.fault(&pointer_join(at, key), "count.name must be letters and digits");
                        return None;
                    }
                };
                (CountSource::Value(operand), Frame::Value { name: index_name })
            }
            (None, None) => {
                self.fault(at, "count needs a 'field' or a 'value'");
                return None;
            }
            (Some(_), Some(_)) => {
                self.fault(at, "count takes a 'field' or a 'value', not both");
                return None;
            }
        };
        self.frames.push(frame);
        let filter = filter.map(|(key, v)| self.node(v, &pointer_join(at, key)));
        self.frames.pop();
        let filter = match filter {
            Some(node) => Some(node?),
            None => None,
        };
        Some(Count { source, filter })
    }

    fn rhs(&mut self, op: Operator, value: &Value, at: &str) -> Option<Operand> {
        if op == Operator::Exists {
            let flag = match value {
                Value::Bool(b) => Some(*b),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            };
            return match flag {
                Some(b) => Some(Operand::Const(Value::Bool(b))),
                None => {
                    self.fault(at, "'exists' needs true or false");
                    None
                }
            };
        }
        let operand = self.operand(value, at)?;
        let Operand::Const(constant) = &operand else {
            return Some(operand);
        };
        let wrong = match op {
            Operator::In | Operator::NotIn => (!constant.is_array()).then_some("an array"),
            Operator::Like
            | Operator::NotLike
            | Operator::Match
            | Operator::NotMatch
            | Operator::MatchInsensitively
            | Operator::NotMatchInsensitively
            | Operator::ContainsKey
            | Operator::NotContainsKey => (!constant.is_string()).then_some("a string"),
            Operator::Less | Operator::LessOrEquals | Operator::Greater | Operator::GreaterOrEquals => {
                (!(constant.is_string() || constant.is_number())).then_some("a string or a number")
            }
            _ => None,
        };
        match wrong {
            Some(kind) => {
                self.fault(at, format!("'{}' needs {kind}", op.name()));
                None
            }
            None => Some(operand),
        }
    }
}

/// Rewrites ARM's resource-group type (`Microsoft.Resources/resourceGroups`) to the spelling
/// rules see (`Microsoft.Resources/subscriptions/resourceGroups`), in a value or a list.
fn normalise_group_type(value: &mut Value) {
    match value {
        Value::String(s) if s.eq_ignore_ascii_case(RESOURCE_GROUP_TYPE_ARM) => {
            *s = RESOURCE_GROUP_TYPE.to_owned();
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_group_type),
        _ => {}
    }
}
