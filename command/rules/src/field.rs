//! Field names (`name`, `type`, `tags['k']`, aliases…) parsed once at compile time, and
//! their lookup in a resource at evaluation time.

use serde_json::Value;

use crate::aliases;
use crate::resource::ResourceContext;
use crate::value::{Val, get_ci};

/// One step of a property path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// An object property (matched case-insensitively).
    Key(String),
    /// `[*]`: every member of an array.
    Wildcard,
}

/// A compiled field reference.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldRef {
    Name,
    FullName,
    Type,
    Location,
    Id,
    Kind,
    /// The whole tags object.
    Tags,
    /// One tag, by name (case-insensitive).
    Tag(String),
    /// A path from the resource document root (`properties…`, `sku…`).
    Path(Vec<Segment>),
    /// A path from the array member a `count` is currently visiting (`level` counts from the
    /// outermost count). `collection` is set when the path as written selected a collection
    /// (it named the counted `[*]` array): it still does, one member at a time, so `field()`
    /// returns a one-member array, as Azure documents.
    Member {
        level: usize,
        rest: Vec<Segment>,
        collection: bool,
    },
}

/// Parses a field name as written in a rule.
pub(crate) fn parse(text: &str) -> Result<FieldRef, String> {
    let lower = text.to_ascii_lowercase();
    let field = match lower.as_str() {
        "name" => FieldRef::Name,
        "fullname" => FieldRef::FullName,
        "type" => FieldRef::Type,
        "location" => FieldRef::Location,
        "id" => FieldRef::Id,
        "kind" => FieldRef::Kind,
        "tags" => FieldRef::Tags,
        "identity.type" => FieldRef::Path(parse_path("identity.type")?),
        _ if lower.starts_with("tags[") || lower.starts_with("tags.") => FieldRef::Tag(tag_name(text)?),
        _ if text.contains('/') => FieldRef::Path(parse_path(&aliases::resolve(text))?),
        _ => return Err(format!("unknown field '{text}'")),
    };
    Ok(field)
}

/// `tags['k']` (with `''` for a quote), `tags[k]` or `tags.k`.
fn tag_name(text: &str) -> Result<String, String> {
    let rest = text.get(4..).unwrap_or_default();
    let name = if let Some(dotted) = rest.strip_prefix('.') {
        dotted.to_owned()
    } else {
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| format!("malformed tag field '{text}'"))?;
        match inner.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            Some(quoted) => quoted.replace("''", "'"),
            None => inner.to_owned(),
        }
    };
    if name.is_empty() {
        return Err(format!("tag field '{text}' names no tag"));
    }
    Ok(name)
}

/// `a.b[*].c` → `[Key(a), Key(b), Wildcard, Key(c)]`.
pub(crate) fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut brackets) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(format!("empty property name in '{path}'"));
        }
        segments.push(Segment::Key(key.to_owned()));
        while !brackets.is_empty() {
            match brackets.strip_prefix("[*]") {
                Some(rest) => {
                    segments.push(Segment::Wildcard);
                    brackets = rest;
                }
                None => return Err(format!("only '[*]' may follow a property name in '{path}'")),
            }
        }
    }
    Ok(segments)
}

/// Whether `path` starts with `prefix`, keys compared case-insensitively.
pub(crate) fn starts_with(path: &[Segment], prefix: &[Segment]) -> bool {
    path.len() >= prefix.len()
        && path.iter().zip(prefix).all(|(a, b)| match (a, b) {
            (Segment::Key(x), Segment::Key(y)) => x.eq_ignore_ascii_case(y),
            (Segment::Wildcard, Segment::Wildcard) => true,
            _ => false,
        })
}

/// What a field selects in one resource.
pub(crate) enum Selection<'a> {
    One(Val<'a>),
    Many(Vec<Val<'a>>),
}

/// Looks a field up. `members` holds the array members the enclosing counts are visiting.
pub(crate) fn select<'a>(
    field: &FieldRef,
    ctx: &'a ResourceContext<'a>,
    members: &[Val<'a>],
) -> Selection<'a> {
    let one = |v: Option<&'a Value>| Selection::One(v.map_or(Val::Missing, Val::Ref));
    match field {
        FieldRef::Name => Selection::One(Val::Str(&ctx.resource.name)),
        FieldRef::FullName => Selection::One(Val::Str(&ctx.full_name)),
        FieldRef::Type => Selection::One(Val::Str(&ctx.resource_type)),
        FieldRef::Location => Selection::One(Val::Str(&ctx.location)),
        FieldRef::Id => Selection::One(Val::Str(&ctx.resource.id)),
        FieldRef::Kind => Selection::One(match ctx.resource.kind.as_deref() {
            Some(kind) => Val::Str(kind),
            None => Val::Missing,
        }),
        FieldRef::Tags => Selection::One(Val::Ref(&ctx.tags)),
        FieldRef::Tag(name) => one(ctx.tags.as_object().and_then(|t| get_ci(t, name))),
        FieldRef::Path(segments) => {
            let (first, rest) = match segments.split_first() {
                Some((Segment::Key(first), rest)) => (first, rest),
                _ => return Selection::One(Val::Missing),
            };
            walk_from(Val::from_option(ctx.top_level(first)), rest)
        }
        FieldRef::Member { level, rest, collection } => match (members.get(*level), collection) {
            (Some(member), false) => walk_from(member.clone(), rest),
            (Some(member), true) => match walk_from(member.clone(), rest) {
                Selection::One(value) => Selection::Many(vec![value]),
                many => many,
            },
            (None, _) => Selection::One(Val::Missing),
        },
    }
}

impl<'a> Val<'a> {
    fn from_option(value: Option<&'a Value>) -> Self {
        value.map_or(Val::Missing, Val::Ref)
    }
}

fn walk_from<'a>(start: Val<'a>, segments: &[Segment]) -> Selection<'a> {
    let collection = segments.contains(&Segment::Wildcard);
    match start {
        Val::Ref(value) => {
            if collection {
                let mut out = Vec::new();
                walk_many(Some(value), segments, &mut out, &Val::Ref);
                Selection::Many(out)
            } else {
                Selection::One(Val::from_option(walk_one(Some(value), segments)))
            }
        }
        Val::Owned(value) => {
            // Members of a computed array (value count): clone what the path reaches.
            if collection {
                let mut out = Vec::new();
                walk_many(Some(&value), segments, &mut out, &|v: &Value| Val::Owned(v.clone()));
                Selection::Many(out)
            } else {
                let found = walk_one(Some(&value), segments).cloned();
                Selection::One(found.map_or(Val::Missing, Val::Owned))
            }
        }
        scalar @ (Val::Str(_) | Val::Missing) => {
            if segments.is_empty() {
                Selection::One(scalar)
            } else if collection {
                Selection::Many(Vec::new())
            } else {
                Selection::One(Val::Missing)
            }
        }
    }
}

fn walk_one<'v>(mut value: Option<&'v Value>, segments: &[Segment]) -> Option<&'v Value> {
    for segment in segments {
        value = match (segment, value) {
            (Segment::Key(key), Some(Value::Object(map))) => get_ci(map, key),
            _ => None,
        };
    }
    value
}

fn walk_many<'v, 'a>(
    value: Option<&'v Value>,
    segments: &[Segment],
    out: &mut Vec<Val<'a>>,
    wrap: &dyn Fn(&'v Value) -> Val<'a>,
) {
    let Some((segment, rest)) = segments.split_first() else {
        out.push(value.map_or(Val::Missing, wrap));
        return;
    };
    match (segment, value) {
        (Segment::Key(key), Some(Value::Object(map))) => walk_many(get_ci(map, key), rest, out, wrap),
        (Segment::Key(_), _) => walk_many(None, rest, out, wrap),
        (Segment::Wildcard, Some(Value::Array(items))) => {
            for item in items {
                walk_many(Some(item), rest, out, wrap);
            }
        }
        // A missing or non-array value has no members: an empty collection.
        (Segment::Wildcard, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_fields_parse_case_insensitively() {
        assert_eq!(parse("Location"), Ok(FieldRef::Location));
        assert_eq!(parse("fullName"), Ok(FieldRef::FullName));
    }

    #[test]
    fn every_tag_syntax_names_the_same_tag() {
        for text in ["tags['cost-center']", "tags[cost-center]", "tags.cost-center"] {
            assert_eq!(parse(text), Ok(FieldRef::Tag("cost-center".into())), "{text}");
        }
        assert_eq!(parse("tags['''quoted''']"), Ok(FieldRef::Tag("'quoted'".into())));
        assert_eq!(parse("tags[a.b]"), Ok(FieldRef::Tag("a.b".into())));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse("colour").is_err());
        assert!(parse("tags[]").is_err());
    }

    #[test]
    fn alias_paths_split_into_keys_and_wildcards() {
        assert_eq!(
            parse_path("properties.rules[*].ports[*]"),
            Ok(vec![
                Segment::Key("properties".into()),
                Segment::Key("rules".into()),
                Segment::Wildcard,
                Segment::Key("ports".into()),
                Segment::Wildcard,
            ])
        );
        assert!(parse_path("properties.rules[0]").is_err());
        assert!(parse_path("properties..x").is_err());
    }
}
