//! Compile-time scope of `count` expressions: which array a `where` condition is visiting,
//! so that field references to that array resolve to the current member.

use crate::field::{self, FieldRef, Segment};

/// One enclosing `count`, outermost first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// A field count over the array path `prefix` (ends with `[*]`).
    Field { prefix: Vec<Segment> },
    /// A value count whose members `current('name')` reads.
    Value { name: String },
}

/// Resolves a field name written inside the given counts: a path under a counted array
/// becomes a path from that array's current member (the innermost matching count wins).
pub(crate) fn resolve_field(text: &str, frames: &[Frame]) -> Result<FieldRef, String> {
    let parsed = field::parse(text)?;
    Ok(scoped(parsed, frames))
}

fn scoped(field: FieldRef, frames: &[Frame]) -> FieldRef {
    let FieldRef::Path(segments) = field else {
        return field;
    };
    for (level, frame) in frames.iter().enumerate().rev() {
        if let Frame::Field { prefix } = frame {
            if field::starts_with(&segments, prefix) {
                let rest = segments.get(prefix.len()..).unwrap_or_default().to_vec();
                return FieldRef::Member { level, rest, collection: true };
            }
        }
    }
    FieldRef::Path(segments)
}

/// Resolves `current()` / `current('name or alias')` to the member it reads.
pub(crate) fn resolve_current(arg: Option<&str>, frames: &[Frame]) -> Result<FieldRef, String> {
    let Some(arg) = arg else {
        return match frames.len() {
            0 => Err("current() is only available inside a count's where".to_owned()),
            n => Ok(FieldRef::Member { level: n - 1, rest: Vec::new(), collection: false }),
        };
    };
    for (level, frame) in frames.iter().enumerate().rev() {
        if let Frame::Value { name } = frame {
            if name.eq_ignore_ascii_case(arg) {
                return Ok(FieldRef::Member { level, rest: Vec::new(), collection: false });
            }
        }
    }
    if arg.contains('/') {
        // `current('alias[*]')` is the member itself, not a one-member collection.
        if let Ok(FieldRef::Member { level, rest, .. }) = resolve_field(arg, frames) {
            return Ok(FieldRef::Member { level, rest, collection: false });
        }
    }
    Err(format!("current('{arg}') names no enclosing count (use a value count's name or a counted alias)"))
}

/// A count enumerates array members: cut the path after its last `[*]`, so that aliases
/// whose `[*]` maps inside the member (`securityRules[*]` → `securityRules[*].properties`)
/// still enumerate the members themselves and `securityRules[*].name` stays reachable.
pub(crate) fn array_of(field: FieldRef) -> Option<FieldRef> {
    let cut = |segments: &[Segment]| {
        let last = segments.iter().rposition(|s| *s == Segment::Wildcard)?;
        segments.get(..=last).map(<[Segment]>::to_vec)
    };
    match field {
        FieldRef::Path(segments) => cut(&segments).map(FieldRef::Path),
        FieldRef::Member { level, rest, collection } => {
            cut(&rest).map(|rest| FieldRef::Member { level, rest, collection })
        }
        _ => None,
    }
}

/// The array path a field count enumerates, resolved in its own enclosing scope.
pub(crate) fn count_prefix(field: &FieldRef, outer: &[Frame]) -> Option<Vec<Segment>> {
    // The prefix used to match nested references is always the absolute path, so rebuild
    // it from the enclosing frame when the count field is itself relative to a member.
    match field {
        FieldRef::Path(segments) => Some(segments.clone()),
        FieldRef::Member { level, rest, .. } => match outer.get(*level) {
            Some(Frame::Field { prefix }) => {
                let mut full = prefix.clone();
                full.extend(rest.iter().cloned());
                Some(full)
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nsg_frame() -> Frame {
        Frame::Field {
            prefix: field::parse_path("properties.securityRules[*].properties").unwrap_or_default(),
        }
    }

    #[test]
    fn a_counted_alias_resolves_to_the_current_member() {
        let field =
            resolve_field("Microsoft.Network/networkSecurityGroups/securityRules[*].access", &[nsg_frame()]);
        assert_eq!(
            field,
            Ok(FieldRef::Member { level: 0, rest: vec![Segment::Key("access".into())], collection: true })
        );
    }

    #[test]
    fn fields_outside_the_counted_array_stay_absolute() {
        let field = resolve_field("tags.env", &[nsg_frame()]);
        assert_eq!(field, Ok(FieldRef::Tag("env".into())));
    }

    #[test]
    fn current_without_a_count_is_refused() {
        assert!(resolve_current(None, &[]).is_err());
        assert!(resolve_current(Some("pattern"), &[]).is_err());
    }

    #[test]
    fn current_finds_a_value_count_by_name() {
        let frames = [Frame::Value { name: "pattern".into() }];
        assert_eq!(
            resolve_current(Some("Pattern"), &frames),
            Ok(FieldRef::Member { level: 0, rest: vec![], collection: false })
        );
    }
}
