//! Query strings: every parameter is checked here, before any I/O, so that nothing a client
//! sends can reach SQL unvalidated. Each fault is a 400 naming the parameter by JSON
//! pointer into the query string read as an object (`/limit`; `/tag/1` for the second
//! `tag`), and every fault of a request is reported at once. Unknown parameters, a
//! single-valued parameter given twice, and empty values are faults.

use cortex_http::problem::{ApiError, FieldError, describe};

use crate::cursor::{self, CursorError, Scope, SortKey};

/// Longest filter value accepted (longer than any real name, id or tag).
pub const MAX_VALUE_LEN: usize = 512;
/// Page size bounds.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// A parsed query string and the faults found so far.
pub struct Params {
    pairs: Vec<(String, String)>,
    faults: Vec<FieldError>,
}

impl Params {
    /// Parses `raw`; any parameter not in `allowed` is a fault.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Self {
        let pairs: Vec<(String, String)> =
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        let mut faults = Vec::new();
        let mut reported: Vec<&str> = Vec::new();
        for (name, _) in &pairs {
            // `after` (read-your-writes) is every route's, read by `super::read_after`.
            if name != "after" && !allowed.contains(&name.as_str()) && !reported.contains(&name.as_str()) {
                reported.push(name);
                faults.push(fault(
                    name,
                    format!("unknown query parameter; this route accepts {}", list(allowed)),
                ));
            }
        }
        Self { pairs, faults }
    }

    fn values(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn fault(&mut self, pointer: &str, detail: impl Into<String>) {
        self.faults.push(FieldError { pointer: pointer.to_owned(), detail: detail.into() });
    }

    /// The value of a parameter that may appear once, not empty, at most [`MAX_VALUE_LEN`].
    pub fn single(&mut self, name: &str) -> Option<String> {
        let values = self.values(name);
        let value = match values.as_slice() {
            [] => return None,
            [value] => value.to_string(),
            _ => {
                self.faults.push(fault(name, "may be given only once"));
                return None;
            }
        };
        self.check_value(&format!("/{name}"), value)
    }

    /// Every value of a repeatable parameter, each with its pointer.
    pub fn repeated(&mut self, name: &str) -> Vec<(String, String)> {
        let values: Vec<String> = self.values(name).into_iter().map(str::to_owned).collect();
        values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let pointer = format!("/{name}/{i}");
                self.check_value(&pointer, v).map(|v| (pointer, v))
            })
            .collect()
    }

    fn check_value(&mut self, pointer: &str, value: String) -> Option<String> {
        if value.is_empty() {
            self.fault(pointer, "is empty; leave the parameter out instead");
            None
        } else if value.len() > MAX_VALUE_LEN {
            self.fault(pointer, format!("is longer than {MAX_VALUE_LEN} bytes"));
            None
        } else if value.chars().any(char::is_control) {
            self.fault(pointer, "contains control characters");
            None
        } else {
            Some(value)
        }
    }

    /// An integer parameter within `min..=max`, `default` when absent.
    pub fn bounded(&mut self, name: &str, min: u32, max: u32, default: u32) -> u32 {
        let Some(text) = self.single(name) else { return default };
        match text.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.faults
                    .push(fault(name, format!("must be an integer from {min} to {max}, not {text:?}")));
                default
            }
        }
    }

    /// `limit` (1..=500, default 50).
    pub fn limit(&mut self) -> u32 {
        self.bounded("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    }

    /// `cursor`, decoded within `scope`.
    pub fn cursor<K: SortKey>(&mut self, scope: Scope) -> Option<K> {
        let text = self.single("cursor")?;
        cursor::decode::<K>(scope, &text)
            .map_err(|e: CursorError| self.faults.push(fault("cursor", e.to_string())))
            .ok()
    }

    /// One of `choices`, by its exact spelling.
    pub fn choice<'c>(&mut self, name: &str, choices: &[&'c str]) -> Option<&'c str> {
        let text = self.single(name)?;
        let found = choices.iter().find(|c| **c == text).copied();
        if found.is_none() {
            self.faults.push(fault(name, format!("must be one of {}, not {text:?}", list(choices))));
        }
        found
    }

    /// `as_of`: an RFC 3339 time, not in the future (issue 23).
    pub fn as_of(&mut self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = self.single("as_of")?;
        match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(t) if t > chrono::Utc::now() => {
                self.faults.push(fault("as_of", format!("{text} is in the future")));
                None
            }
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                self.faults.push(fault(
                    "as_of",
                    format!("must be an RFC 3339 time (2026-12-01T00:00:00Z), not {text:?}: {e}"),
                ));
                None
            }
        }
    }

    /// Every fault as one 400, or nothing.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.faults.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid { detail: describe(&self.faults), errors: self.faults })
        }
    }
}

fn fault(name: &str, detail: impl Into<String>) -> FieldError {
    FieldError { pointer: format!("/{name}"), detail: detail.into() }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "no parameters".to_owned() } else { names.join(", ") }
}

/// A path segment that must be a UUID, or 400 naming it.
pub fn path_uuid(name: &str, text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::try_parse(text).map_err(|_| {
        ApiError::invalid_field(format!("/{name}"), format!("{name} in the path is not a UUID: {text:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(result: Result<(), ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Invalid { errors, .. }) => errors.into_iter().map(|e| e.pointer).collect(),
            other => panic!("expected faults, got {other:?}"),
        }
    }

    #[test]
    fn unknown_repeated_and_empty_parameters_are_each_named() {
        let mut p =
            Params::parse(Some("limit=1&limit=2&foo=1&foo=2&type=&tag=a&tag="), &["limit", "type", "tag"]);
        p.limit();
        p.single("type");
        p.repeated("tag");
        assert_eq!(pointers(p.finish()), ["/foo", "/limit", "/type", "/tag/1"]);
    }

    #[test]
    fn limits_are_bounded() {
        for (q, ok) in [
            ("limit=1", true),
            ("limit=500", true),
            ("limit=0", false),
            ("limit=501", false),
            ("limit=x", false),
            ("limit=-1", false),
        ] {
            let mut p = Params::parse(Some(q), &["limit"]);
            p.limit();
            assert_eq!(p.finish().is_ok(), ok, "{q}");
        }
        let mut p = Params::parse(None, &["limit"]);
        assert_eq!(p.limit(), DEFAULT_LIMIT);
    }

    #[test]
    fn values_are_percent_decoded() {
        let mut p = Params::parse(Some("tag=env%3Aprod&q=web+app"), &["tag", "q"]);
        assert_eq!(p.repeated("tag"), [("/tag/0".to_owned(), "env:prod".to_owned())]);
        assert_eq!(p.single("q").as_deref(), Some("web app"));
        assert!(p.finish().is_ok());
    }
}
